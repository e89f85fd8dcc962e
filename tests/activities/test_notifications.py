import io
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.notifications import (
    MISSING,
    Locale,
    Message,
    NotDelivered,
    NotificationActivities,
    Route,
    render,
    route,
)
from models.notification import Contact, NotificationInput, Recipient, Template
from models.records import NotificationRow, TechnicianRow

PHONE = "+86 138 0013 8000"
EMAIL = "li.wei@example.com"
# One value for every placeholder any template uses.
PARAMS = {
    "order_id": "RF261120-ABC123",
    "technician_id": "T-0042",
    "window": "2026-11-21 09:00 - 11:00",
    "total": "180.00 CNY",
    "reason": "no one at home",
    "ends_at": "2027-02-19",
    "deadline": "2026-11-20 10:15",
    "complaint_id": "RF261120-ABC123-C1",
    "update": "acknowledged",
    "fee": "50.00 CNY",
    "category": "gas_stove",
    "region": "pudong",
    "expected": "2026-11-22 18:00",
    "technician_name": "Wang Fang",
}
CJK = re.compile(r"[\u4e00-\u9fff]")


def create_notification_input(**overrides: Any) -> NotificationInput:
    fields: dict[str, Any] = {
        "key": "RF261120-ABC123:1:booking_confirmed:customer",
        "order_id": "RF261120-ABC123",
        "template": Template.BOOKING_CONFIRMED,
        "recipient": Recipient.CUSTOMER,
        "to": Contact(phone=PHONE, email=EMAIL),
    }
    return NotificationInput(**(fields | overrides))


async def send(activities: NotificationActivities, input: NotificationInput) -> None:
    await ActivityEnvironment().run(activities.send_notification, input)


async def notification_rows(engine: AsyncEngine) -> list[NotificationRow]:
    async with AsyncSession(engine) as session:
        return list(
            await session.scalars(select(NotificationRow).order_by(col(NotificationRow.id)))
        )


def sent_lines(output: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in output.getvalue().splitlines()]
    return [line for line in lines if line["event"].startswith("notification sent")]


@dataclass
class RecordingChannel:
    """A provider that takes every message. It can be told to turn the first few away, or to
    take the first few and then lose the connection before confirming (outcome unknown)."""

    failures: int = 0
    cut_offs: int = 0
    deduplicates: bool = False
    delivered: list[Message] = field(default_factory=list)

    async def deliver(self, message: Message) -> None:
        if self.failures:
            self.failures -= 1
            raise NotDelivered("provider unavailable")
        self.delivered.append(message)
        if self.cut_offs:
            self.cut_offs -= 1
            raise ConnectionResetError("connection reset by peer")


class TestRender:
    @pytest.mark.parametrize("locale", ["zh", "en"])
    @pytest.mark.parametrize("template", list(Template))
    def test_every_template_reads_whole_in_both_languages(
        self, template: Template, locale: Locale
    ) -> None:
        """Each message comes out complete in Chinese and in English: no gaps, no braces."""
        text = render(template, locale, PARAMS)
        for part in (text.subject, text.body):
            assert part
            assert not re.search(r"[{}]", part)
            assert MISSING not in part
            assert bool(CJK.search(part)) == (locale == "zh")
        assert PARAMS["order_id"] in text.body
        assert text.missing == ()

    def test_missing_param_shows_a_dash_and_is_named(self) -> None:
        """A message the workflow forgot a value for is still sent, with a dash in its place."""
        text = render(Template.ORDER_CANCELLED, "zh", {"order_id": "RF261120-ABC123"})
        assert text.body == (
            "您的报修单 RF261120-ABC123 已取消，原因：—。如需再次报修，欢迎随时联系我们。"  # noqa: RUF001
        )
        assert text.missing == ("reason",)

    @pytest.mark.parametrize(
        ("locale", "wording"),
        [("zh", "已改派其他师傅"), ("en", "it was reassigned to another technician")],
    )
    def test_reason_codes_are_put_into_words(self, locale: Locale, wording: str) -> None:
        """A technician reads why a job was taken away in their language, not as a code."""
        text = render(Template.JOB_WITHDRAWN, locale, PARAMS | {"reason": "reassigned"})
        assert wording in text.body
        assert "reassigned)" not in text.body


class TestSendNotification:
    async def test_customer_message_lands_in_the_outbox_in_chinese(
        self, engine: AsyncEngine
    ) -> None:
        """A customer is written to in Chinese by default, by SMS to their phone."""
        await send(NotificationActivities(engine), create_notification_input())
        (row,) = await notification_rows(engine)
        assert (row.status, row.channel, row.destination, row.locale) == (
            "sent",
            "sms",
            PHONE,
            "zh",
        )
        assert row.subject == "报修已受理"
        assert row.body == (
            "您的报修单 RF261120-ABC123 已受理，我们正在为您安排维修师傅，请保持电话畅通。"  # noqa: RUF001
        )
        assert (row.template, row.recipient, row.error) == ("booking_confirmed", "customer", None)
        assert row.created_at is not None

    async def test_customer_is_told_the_name_and_work_id_of_who_comes(
        self, engine: AsyncEngine
    ) -> None:
        """The registry's name goes with the work ID; the order's history holds only the ID."""
        now = datetime.now(UTC)
        async with AsyncSession(engine) as session, session.begin():
            session.add(
                TechnicianRow(
                    id="T-0042",
                    name="Wang Fang",
                    phone="+86 139 0000 0000",
                    skills=["refrigerator"],
                    regions=["pudong"],
                    certificates=[],
                    created_at=now,
                    updated_at=now,
                )
            )
        input = create_notification_input(
            key="RF261120-ABC123:5:technician_assigned:customer",
            template=Template.TECHNICIAN_ASSIGNED,
            locale="en",
            params={"technician_id": "T-0042"},
        )
        await send(NotificationActivities(engine), input)
        (row,) = await notification_rows(engine)
        assert row.body.startswith(
            "Wang Fang (work ID T-0042) has taken repair order RF261120-ABC123"
        )

    async def test_unknown_technician_leaves_a_dash_for_the_name(self, engine: AsyncEngine) -> None:
        input = create_notification_input(
            template=Template.APPOINTMENT_REMINDER, params={"technician_id": "T-0404"}
        )
        await send(NotificationActivities(engine), input)
        (row,) = await notification_rows(engine)
        assert f"{MISSING}（工号 T-0404）" in row.body  # noqa: RUF001
        assert row.status == "sent"

    async def test_english_speaking_customer_reads_english(self, engine: AsyncEngine) -> None:
        """A customer who chose English gets the English wording."""
        await send(NotificationActivities(engine), create_notification_input(locale="en"))
        (row,) = await notification_rows(engine)
        assert row.locale == "en"
        assert row.subject == "Repair request received"
        assert row.body.startswith("Your repair order RF261120-ABC123 has been received.")

    async def test_retried_message_is_sent_once(
        self, engine: AsyncEngine, log_output: io.StringIO
    ) -> None:
        """The same message delivered twice (an activity retry) is sent and logged once."""
        channel = RecordingChannel()
        activities = NotificationActivities(engine, {"sms": channel})
        await send(activities, create_notification_input())
        await send(activities, create_notification_input())
        assert len(await notification_rows(engine)) == 1
        assert len(channel.delivered) == 1
        assert len(sent_lines(log_output)) == 1

    async def test_another_key_is_another_message(self, engine: AsyncEngine) -> None:
        """Two messages with the same words but different keys are both sent."""
        activities = NotificationActivities(engine)
        await send(activities, create_notification_input(key="RF261120-ABC123:1"))
        await send(activities, create_notification_input(key="RF261120-ABC123:2"))
        assert [row.key for row in await notification_rows(engine)] == [
            "RF261120-ABC123:1",
            "RF261120-ABC123:2",
        ]

    async def test_log_line_names_the_message_but_not_the_person(
        self, engine: AsyncEngine, log_output: io.StringIO
    ) -> None:
        """Operators see which message went where by channel; no phone, email or text leaks."""
        input = create_notification_input(
            template=Template.ORDER_CANCELLED,
            params={"reason": "Mrs Wang moved to 12 Lane 5, Hongkou"},
        )
        await send(NotificationActivities(engine), input)
        (line,) = sent_lines(log_output)
        assert {key: line[key] for key in ("key", "order_id", "template", "recipient")} == {
            "key": input.key,
            "order_id": input.order_id,
            "template": "order_cancelled",
            "recipient": "customer",
        }
        assert line["channel"] == "sms"
        (row,) = await notification_rows(engine)
        logged = log_output.getvalue()
        for secret in (PHONE, EMAIL, "Mrs Wang", "Hongkou", row.subject, row.body):
            assert secret not in logged

    @pytest.mark.parametrize(
        ("recipient", "to", "channel", "destination"),
        [
            (Recipient.CUSTOMER, Contact(phone=PHONE, email=EMAIL), "sms", PHONE),
            (Recipient.CUSTOMER, Contact(email=EMAIL), "email", EMAIL),
            (Recipient.TECHNICIAN, Contact(technician_id="T-0042"), "internal", "T-0042"),
            (Recipient.SUPERVISOR, Contact(technician_id="T-0042"), "internal", "supervisor"),
        ],
    )
    async def test_message_goes_where_its_recipient_is_reached(
        self,
        engine: AsyncEngine,
        recipient: Recipient,
        to: Contact,
        channel: str,
        destination: str,
    ) -> None:
        """Customers by SMS (email if that is all we have); technicians and staff internally."""
        await send(
            NotificationActivities(engine), create_notification_input(recipient=recipient, to=to)
        )
        (row,) = await notification_rows(engine)
        assert (row.channel, row.destination) == (channel, destination)

    async def test_configured_provider_gets_the_rendered_message(self, engine: AsyncEngine) -> None:
        """A provider registered for a channel receives exactly what the outbox records."""
        email = RecordingChannel()
        activities = NotificationActivities(engine, {"email": email})
        await send(activities, create_notification_input(to=Contact(email=EMAIL), locale="en"))
        (message,) = email.delivered
        (row,) = await notification_rows(engine)
        assert (message.key, message.channel, message.destination) == (row.key, "email", EMAIL)
        assert (message.subject, message.body) == (row.subject, row.body)

    async def test_failed_delivery_is_sent_again_on_retry(self, engine: AsyncEngine) -> None:
        """A provider outage leaves the message pending, and the retried activity sends it."""
        sms = RecordingChannel(failures=1)
        activities = NotificationActivities(engine, {"sms": sms})
        with pytest.raises(ApplicationError) as failed:
            await send(activities, create_notification_input())
        assert (failed.value.type, failed.value.non_retryable) == (
            "NotificationNotDelivered",
            False,
        )
        assert [(row.status, row.error) for row in await notification_rows(engine)] == [
            ("pending", "provider unavailable")
        ]
        await send(activities, create_notification_input())
        assert len(sms.delivered) == 1
        assert [(row.status, row.error) for row in await notification_rows(engine)] == [
            ("sent", None)
        ]

    async def test_delivery_cut_off_is_not_repeated_to_a_person(self, engine: AsyncEngine) -> None:
        """A provider that may have taken the message when the line dropped is not asked again:
        the message is marked unconfirmed, and the order is told it may not have arrived."""
        sms = RecordingChannel(cut_offs=1)
        activities = NotificationActivities(engine, {"sms": sms})
        input = create_notification_input()
        with pytest.raises(ApplicationError) as failed:
            await send(activities, input)
        assert (failed.value.type, failed.value.non_retryable) == (
            "NotificationOutcomeUnknown",
            False,
        )
        assert [row.status for row in await notification_rows(engine)] == ["sending"]
        for _ in range(2):  # the retry, and the same key again later
            with pytest.raises(ApplicationError) as failed:
                await send(activities, input)
            assert (failed.value.type, failed.value.non_retryable) == (
                "UndeliverableNotification",
                True,
            )
            assert "may not have arrived" in failed.value.message
        assert len(sms.delivered) == 1
        (row,) = await notification_rows(engine)
        assert row.status == "unconfirmed"

    async def test_delivery_cut_off_is_repeated_to_a_deduplicating_receiver(
        self, engine: AsyncEngine
    ) -> None:
        """A receiver that acts on a key once gets the same message again, key and time alike."""
        webhook = RecordingChannel(cut_offs=1, deduplicates=True)
        activities = NotificationActivities(engine, {"webhook": webhook}, {"customer": "webhook"})
        input = create_notification_input()
        with pytest.raises(ApplicationError):
            await send(activities, input)
        await send(activities, input)
        first, second = webhook.delivered
        assert first == second
        assert first.key == input.key
        assert [(row.status, row.channel) for row in await notification_rows(engine)] == [
            ("sent", "webhook")
        ]

    async def test_customer_without_phone_or_email_fails_for_good(
        self, engine: AsyncEngine
    ) -> None:
        """A customer we cannot reach is a permanent failure, recorded, and never retried."""
        activities = NotificationActivities(engine)
        input = create_notification_input(to=Contact())
        for _ in range(2):  # the first attempt, then the same key again
            with pytest.raises(ApplicationError) as failed:
                await send(activities, input)
            assert failed.value.type == "UndeliverableNotification"
            assert failed.value.non_retryable
            assert input.key in failed.value.message
            assert "booking_confirmed" in failed.value.message
        (row,) = await notification_rows(engine)
        assert (row.status, row.destination) == ("failed", None)
        assert row.error == "no contact for the customer"


class TestRoute:
    def test_template_choice_beats_recipient_choice(self) -> None:
        """An operator can send one message type another way than the rest of its recipient's."""
        routes: dict[str, Any] = {"customer": "email", "work_done": "webhook"}
        work_done = create_notification_input(template=Template.WORK_DONE)
        booking = create_notification_input()
        assert route(work_done, routes) == Route("webhook", None)
        assert route(booking, routes) == Route("email", EMAIL)

    def test_chosen_channel_that_cannot_reach_falls_back(self) -> None:
        """Email chosen for customers still reaches one who only gave a phone, by SMS."""
        input = create_notification_input(to=Contact(phone=PHONE))
        assert route(input, {"customer": "email"}) == Route("sms", PHONE)

    def test_staff_chosen_sms_uses_the_phone_given(self) -> None:
        """Technicians can be texted when configured so and their phone is passed."""
        input = create_notification_input(
            recipient=Recipient.TECHNICIAN, to=Contact(phone=PHONE, technician_id="T-0042")
        )
        assert route(input) == Route("internal", "T-0042")
        assert route(input, {"technician": "sms"}) == Route("sms", PHONE)


class TestCategoryNames:
    def test_offer_names_the_appliance_in_the_reader_language(self) -> None:
        """A technician reads "燃气灶" in Chinese and "gas stove" in English, not a code."""
        zh = render(Template.JOB_OFFERED, "zh", PARAMS)
        en = render(Template.JOB_OFFERED, "en", PARAMS)
        assert "燃气灶" in zh.body
        assert "gas stove" in en.body
        assert "gas_stove" not in zh.body + en.body
