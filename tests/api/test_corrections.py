"""PATCH /v1/orders/{id}/details: a wrong phone number, address or fault description is
corrected until the work is finished; the next message goes to the corrected number."""

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col, select

from core.personal import Opener
from core.settings import Settings
from models.notification import Recipient
from models.records import NotificationRow
from tests.api.drive import Drive, problem, window
from tests.waiting import eventually

NEW_PHONE = "+86 139 1234 5678"


async def customer_messages(
    engine: AsyncEngine, settings: Settings, order_id: str
) -> list[tuple[str, str | None]]:
    """Each message to the customer, in order: its template and where it went, opened."""
    async with AsyncSession(engine) as session:
        rows = await session.scalars(
            select(NotificationRow)
            .where(
                col(NotificationRow.order_id) == order_id,
                col(NotificationRow.recipient) == Recipient.CUSTOMER,
            )
            .order_by(col(NotificationRow.id))
        )
        opener = Opener(session, settings.key_ring)
        return [(row.template, await opener.open(row.destination)) for row in rows.all()]


class TestCorrectDetails:
    async def test_staff_correct_the_phone_and_the_next_message_goes_to_it(
        self,
        api: httpx.AsyncClient,
        drive: Drive,
        records_engine: AsyncEngine,
        settings: Settings,
    ) -> None:
        order = await drive("assigned")
        body = {
            "customer": {"phone": NEW_PHONE, "address": "9 Binjiang Road, Pudong"},
            "fault": {"description": "the freezer, not the fridge, is warm"},
        }
        answer = await api.patch(f"{order.url}/details", json=body, headers=order.by("staff"))
        assert answer.status_code == 200, answer.text
        assert answer.json()["customer"]["phone"] == NEW_PHONE
        assert answer.json()["fault"] == "the freezer, not the fridge, is warm"

        shown = (await api.get(order.url, headers=order.by("staff"))).json()
        assert shown["customer"]["phone"] == NEW_PHONE
        assert shown["customer"]["address"] == "9 Binjiang Road, Pudong"
        assert shown["customer"]["name"] == "Li Wei"  # not given: unchanged
        assert shown["fault"] == "the freezer, not the fridge, is warm"
        entry = shown["timeline"][-1]
        assert entry["action"] == "details corrected"
        assert entry["detail"] == "customer phone, customer address, fault description"
        assert "1234" not in str(shown["timeline"])
        assert "Binjiang" not in str(shown["timeline"])

        confirmed = await api.post(
            f"{order.url}/appointment",
            json=window(),
            headers=order.by("technician"),
        )
        assert confirmed.status_code == 200, confirmed.text
        messages = await eventually(
            lambda: customer_messages(records_engine, settings, order.order_id),
            lambda sent: any(template == "appointment_confirmed" for template, _ in sent),
        )
        assert dict(messages)["appointment_confirmed"] == NEW_PHONE
        assert dict(messages)["booking_confirmed"] == "+86 138 0013 8000"  # sent before

    async def test_customer_corrects_their_own_contact_but_not_the_fault(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        order = await drive("booked")
        own = await api.patch(
            f"{order.url}/details",
            json={"customer": {"email": "li.wei@example.org"}},
            headers=order.by("customer"),
        )
        assert own.status_code == 200, own.text
        assert own.json()["customer"]["email"] == "li.wei@example.org"
        refused = await api.patch(
            f"{order.url}/details",
            json={"fault": {"description": "something else"}},
            headers=order.by("customer"),
        )
        assert "only their own contact" in problem(refused, 403)["detail"]
        technician = await api.patch(
            f"{order.url}/details",
            json={"customer": {"phone": NEW_PHONE}},
            headers=order.by("technician"),
        )
        assert problem(technician, 403)

    async def test_after_completion_it_is_refused_and_changes_nothing(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        order = await drive("completed")
        before = (await api.get(order.url, headers=order.by("staff"))).json()
        refused = await api.patch(
            f"{order.url}/details",
            json={"customer": {"phone": NEW_PHONE}},
            headers=order.by("staff"),
        )
        assert "awaiting_acceptance" in problem(refused, 409)["detail"]
        after = (await api.get(order.url, headers=order.by("staff"))).json()
        assert after["customer"] == before["customer"]
        assert after["timeline"] == before["timeline"]

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"customer": {}},
            {"customer": {"phone": "call me maybe"}},
            {"customer": {"region": "elsewhere"}},
            {"fault": {"description": ""}},
        ],
    )
    async def test_bad_body_is_422(
        self, api: httpx.AsyncClient, drive: Drive, body: dict[str, Any]
    ) -> None:
        order = await drive("booked")
        refused = await api.patch(f"{order.url}/details", json=body, headers=order.by("staff"))
        assert problem(refused, 422)
