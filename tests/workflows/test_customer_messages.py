"""The customer is kept informed through the visit: reminded the day before, told when parts
are awaited, when the appliance goes to the workshop and comes back, and when work stops for
safety and may go on. Each message is sent once, in the customer's language.

On the time-skipping test server with the harness's spies (tests/harness.py); the texts in zh
and en are checked in tests/activities/test_notifications.py.
"""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from models.notification import NotificationInput, Recipient, Template
from models.order import (
    ActorInput,
    Clock,
    HazardInput,
    NoteInput,
    PartRequest,
    PartsInput,
    WindowInput,
)
from models.policy import Policy
from tests.factories import create_customer, create_window
from tests.harness import (
    TECHNICIAN,
    Handle,
    Harness,
    act,
    arrive,
    assert_refused,
    assign,
    customer_of,
    sent_eventually,
    settled,
    supervisor,
    technician,
)
from workflows.repair_order import RepairOrderWorkflow

ZONE = ZoneInfo(Policy().timezone)
PARTS = (PartRequest(part_no="TH-220", description="thermostat", qty=1),)


def local_text(moment: datetime) -> str:
    return f"{moment.astimezone(ZONE):%Y-%m-%d %H:%M}"


def at_local(day_offset: int, hour: int, now: datetime) -> datetime:
    """`hour` o'clock, operator's time, `day_offset` days after today."""
    day = now.astimezone(ZONE).date() + timedelta(days=day_offset)
    return datetime.combine(day, time(hour), ZONE)


def to_customer(harness: Harness, handle: Handle, template: Template) -> list[NotificationInput]:
    return [
        m
        for m in harness.records.messages(template, handle.id)
        if m.recipient == Recipient.CUSTOMER
    ]


async def confirm_for(harness: Harness, handle: Handle, start: datetime) -> None:
    await act(
        handle,
        RepairOrderWorkflow.confirm_appointment,
        WindowInput(actor=technician(), window=create_window(start)),
    )


class TestReminderTheDayBefore:
    async def test_customer_is_reminded_once_at_opening_time_the_day_before(
        self, harness: Harness
    ) -> None:
        """A visit on day 3 at 14:00 is recalled on day 2 at 09:00, once, with who comes."""
        handle = await harness.book(customer=create_customer(locale="en"))
        await assign(handle)
        now = await harness.now()
        visit = at_local(3, 14, now)
        await confirm_for(harness, handle, visit)
        remind_at = at_local(2, 9, now)
        await harness.env.sleep(remind_at - await harness.now() - timedelta(minutes=10))
        await settled(handle)
        assert to_customer(harness, handle, Template.APPOINTMENT_REMINDER) == []
        await harness.env.sleep(timedelta(minutes=20))
        (reminder,) = await sent_eventually(harness, Template.APPOINTMENT_REMINDER, handle.id)
        assert reminder.locale == "en"
        assert reminder.params["technician_id"] == TECHNICIAN
        assert reminder.params["window"] == (
            f"{local_text(visit)} - {local_text(visit + timedelta(hours=2))}"
        )
        await harness.env.sleep(timedelta(days=1))
        await settled(handle)
        assert len(to_customer(harness, handle, Template.APPOINTMENT_REMINDER)) == 1

    async def test_a_moved_visit_is_reminded_on_its_new_eve_only(self, harness: Harness) -> None:
        """Rescheduled from day 3 to day 5 and confirmed again: one reminder, on day 4."""
        handle = await harness.book()
        await assign(handle)
        now = await harness.now()
        await confirm_for(harness, handle, at_local(3, 14, now))
        moved = create_window(at_local(5, 10, now))
        await act(
            handle,
            RepairOrderWorkflow.reschedule,
            WindowInput(actor=customer_of(handle.id), window=moved),
        )
        await confirm_for(harness, handle, moved.start)
        await harness.env.sleep(at_local(4, 8, now) - await harness.now())
        await settled(handle)
        assert to_customer(harness, handle, Template.APPOINTMENT_REMINDER) == []
        await harness.env.sleep(timedelta(hours=2))
        (reminder,) = await sent_eventually(harness, Template.APPOINTMENT_REMINDER, handle.id)
        assert reminder.params["window"].startswith(local_text(moved.start))

    async def test_a_visit_confirmed_after_its_eve_gets_no_reminder(self, harness: Harness) -> None:
        """A visit in an hour: the confirmation itself is the notice, no reminder follows."""
        handle = await harness.book()
        await arrive(harness, handle)  # confirmed for an hour from now, then checked in
        await harness.env.sleep(timedelta(days=2))
        await settled(handle)
        assert to_customer(harness, handle, Template.APPOINTMENT_REMINDER) == []

    async def test_a_visit_moved_and_not_yet_confirmed_is_not_reminded(
        self, harness: Harness
    ) -> None:
        """The customer moved the visit; until the technician confirms the new time, the old
        one's eve passes without a reminder."""
        handle = await harness.book()
        await assign(handle)
        now = await harness.now()
        await confirm_for(harness, handle, at_local(3, 14, now))
        await handle.execute_update(
            RepairOrderWorkflow.reschedule,
            WindowInput(actor=customer_of(handle.id), window=create_window(at_local(6, 10, now))),
        )
        await harness.env.sleep(timedelta(days=3))
        await settled(handle)
        assert to_customer(harness, handle, Template.APPOINTMENT_REMINDER) == []


class TestOnSiteNews:
    async def test_parts_awaited_names_the_time_the_technician_expects(
        self, harness: Harness
    ) -> None:
        handle = await harness.book()
        await arrive(harness, handle)
        expected = await harness.now() + timedelta(days=2)
        await act(
            handle,
            RepairOrderWorkflow.request_parts,
            PartsInput(actor=technician(), parts=PARTS, expected_by=expected),
        )
        (told,) = await sent_eventually(harness, Template.PARTS_AWAITED, handle.id)
        assert told.recipient == Recipient.CUSTOMER
        assert told.params["expected"] == local_text(expected)

    async def test_parts_awaited_without_a_time_names_the_dispatch_deadline(
        self, harness: Harness
    ) -> None:
        handle = await harness.book()
        await arrive(harness, handle)
        order = await act(
            handle, RepairOrderWorkflow.request_parts, PartsInput(actor=technician(), parts=PARTS)
        )
        (told,) = await sent_eventually(harness, Template.PARTS_AWAITED, handle.id)
        assert told.params["expected"] == local_text(order.sla[Clock.PARTS_DISPATCH].deadline)

    async def test_parts_expected_in_the_past_are_refused(self, harness: Harness) -> None:
        handle = await harness.book()
        await arrive(harness, handle)
        await assert_refused(
            handle,
            RepairOrderWorkflow.request_parts,
            PartsInput(
                actor=technician(), parts=PARTS, expected_by=await harness.now() - timedelta(1)
            ),
            "ActionRefused",
            "expected_by is not in the future",
        )

    async def test_workshop_trip_is_told_both_ways(self, harness: Harness) -> None:
        """Out with the date it is due back (3 working days), and back again."""
        handle = await harness.book(customer=create_customer(locale="en"))
        await arrive(harness, handle)
        order = await act(handle, RepairOrderWorkflow.to_workshop, ActorInput(actor=technician()))
        (out,) = await sent_eventually(harness, Template.DEVICE_TO_WORKSHOP, handle.id)
        assert out.params["expected"] == local_text(order.sla[Clock.WORKSHOP_REPAIR].deadline)
        assert out.locale == "en"
        await act(handle, RepairOrderWorkflow.back_from_workshop, ActorInput(actor=technician()))
        (back,) = await sent_eventually(harness, Template.DEVICE_BACK, handle.id)
        assert back.recipient == Recipient.CUSTOMER
        await settled(handle)
        assert len(to_customer(harness, handle, Template.DEVICE_TO_WORKSHOP)) == 1

    async def test_safety_stop_and_its_clearance_are_told(self, harness: Harness) -> None:
        handle = await harness.book()
        await arrive(harness, handle)
        await act(
            handle,
            RepairOrderWorkflow.report_hazard,
            HazardInput(actor=technician(), description="gas smell in the kitchen"),
        )
        (stop,) = await sent_eventually(harness, Template.SAFETY_STOP, handle.id)
        assert stop.recipient == Recipient.CUSTOMER
        assert "gas smell" not in str(stop.params)  # the technician's words stay internal
        assert to_customer(harness, handle, Template.SAFETY_CLEARED) == []
        await act(
            handle,
            RepairOrderWorkflow.clear_hazard,
            NoteInput(actor=supervisor(), note="supply shut off and checked"),
        )
        (cleared,) = await sent_eventually(harness, Template.SAFETY_CLEARED, handle.id)
        assert cleared.recipient == Recipient.CUSTOMER
        await settled(handle)
        assert len(to_customer(harness, handle, Template.SAFETY_STOP)) == 1
        keys = [m.key for m in harness.records.sent]
        assert len(keys) == len(set(keys))
