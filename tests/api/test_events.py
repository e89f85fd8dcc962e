"""GET /v1/orders/{id}/events: the records store's event log, its hash chain checked."""

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import ActivityEnvironment

from activities.records import RecordActivities
from models.catalog import Category
from models.order import (
    Channel,
    OrderEvent,
    OrderSnapshot,
    Priority,
    RecordInput,
    Stage,
    WarrantyStatus,
)
from tests.api.client import Auth
from tests.factories import create_booking_json
from tests.waiting import eventually

ORDER_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
BOOKED_AT = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def new_order_id() -> str:
    return "RF261120-" + "".join(random.choices(ORDER_ID_ALPHABET, k=6))  # noqa: S311


async def record_events(engine: AsyncEngine, order_id: str, count: int) -> None:
    """Write `count` events of one order through the real activity, as the workflow does."""
    activities = RecordActivities(engine)
    for seq in range(1, count + 1):
        at = BOOKED_AT + timedelta(minutes=seq)
        snapshot = OrderSnapshot(
            order_id=order_id,
            stage=Stage.DISPATCHING,
            priority=Priority.NORMAL,
            channel=Channel.PHONE,
            category=Category.REFRIGERATOR,
            region="pudong",
            technician_id=None,
            warranty_status=WarrantyStatus.IN_WARRANTY,
            sla_breached=False,
            currency="CNY",
            total=Decimal("0.00"),
            booked_at=BOOKED_AT,
            updated_at=at,
            customer_name="Li Wei",
            customer_phone="+86 138 0013 8000",
        )
        event = OrderEvent(
            order_id=order_id,
            seq=seq,
            at=at,
            actor="staff:test",
            action=f"step-{seq}",
            detail=f"what happened at step {seq}",
        )
        await ActivityEnvironment().run(
            activities.record_order_event, RecordInput(snapshot=snapshot, event=event)
        )


async def tamper(engine: AsyncEngine, statement: str, **params: Any) -> None:
    """Someone with database access, behind the service's back."""
    async with engine.begin() as connection:
        await connection.execute(text(statement), params)


async def events_of(
    api: httpx.AsyncClient, auth: Auth, order_id: str, role: str = "auditor"
) -> httpx.Response:
    return await api.get(f"/v1/orders/{order_id}/events", headers=auth(role))


class TestOrderEvents:
    async def test_auditor_sees_an_intact_chain(
        self, api: httpx.AsyncClient, auth: Auth, records_engine: AsyncEngine
    ) -> None:
        """Every event with its hash, chained one to the next; the chain is intact."""
        order_id = new_order_id()
        await record_events(records_engine, order_id, 4)
        response = await events_of(api, auth, order_id)
        assert response.status_code == 200, response.text
        log = response.json()
        assert (log["chain_ok"], log["first_bad_seq"]) == (True, None)
        assert [e["seq"] for e in log["events"]] == [1, 2, 3, 4]
        first = log["events"][0]
        assert first["at"] == "2026-11-20T02:01:00Z"
        assert (first["actor"], first["action"]) == ("staff:test", "step-1")
        assert first["detail"] == "what happened at step 1"
        assert first["prev_hash"] == "0" * 64
        for before, after in zip(log["events"], log["events"][1:], strict=False):
            assert after["prev_hash"] == before["hash"]
        assert len({e["hash"] for e in log["events"]}) == 4

    async def test_edited_row_breaks_the_chain_at_that_row(
        self, api: httpx.AsyncClient, auth: Auth, records_engine: AsyncEngine
    ) -> None:
        """An event's text changed in the database: chain_ok is false and names that event."""
        order_id = new_order_id()
        await record_events(records_engine, order_id, 5)
        await tamper(
            records_engine,
            "UPDATE order_events SET detail = 'nothing happened' WHERE order_id = :o AND seq = 3",
            o=order_id,
        )
        log = (await events_of(api, auth, order_id)).json()
        assert (log["chain_ok"], log["first_bad_seq"]) == (False, 3)
        assert log["events"][2]["detail"] == "nothing happened"

    async def test_deleted_row_breaks_the_chain_where_it_was(
        self, api: httpx.AsyncClient, auth: Auth, records_engine: AsyncEngine
    ) -> None:
        """An event deleted from the database: the first missing number is named."""
        order_id = new_order_id()
        await record_events(records_engine, order_id, 5)
        await tamper(
            records_engine,
            "DELETE FROM order_events WHERE order_id = :o AND seq = 2",
            o=order_id,
        )
        log = (await events_of(api, auth, order_id)).json()
        assert (log["chain_ok"], log["first_bad_seq"]) == (False, 2)
        assert [e["seq"] for e in log["events"]] == [1, 3, 4, 5]

    async def test_deleted_newest_row_is_noticed(
        self, api: httpx.AsyncClient, auth: Auth, records_engine: AsyncEngine
    ) -> None:
        """Deleting the last event leaves no gap, but the order row still knows it existed."""
        order_id = new_order_id()
        await record_events(records_engine, order_id, 3)
        await tamper(
            records_engine,
            "DELETE FROM order_events WHERE order_id = :o AND seq = 3",
            o=order_id,
        )
        log = (await events_of(api, auth, order_id)).json()
        assert (log["chain_ok"], log["first_bad_seq"]) == (False, 3)

    async def test_other_orders_are_untouched_by_tampering(
        self, api: httpx.AsyncClient, auth: Auth, records_engine: AsyncEngine
    ) -> None:
        """Tampering with one order's log does not taint another's."""
        tampered, clean = new_order_id(), new_order_id()
        await record_events(records_engine, tampered, 2)
        await record_events(records_engine, clean, 2)
        await tamper(
            records_engine, "UPDATE order_events SET actor = 'x' WHERE order_id = :o", o=tampered
        )
        assert (await events_of(api, auth, tampered)).json()["first_bad_seq"] == 1
        assert (await events_of(api, auth, clean)).json()["chain_ok"] is True

    async def test_a_booked_order_has_an_intact_chain(
        self, api: httpx.AsyncClient, auth: Auth
    ) -> None:
        """An order booked and cancelled through the API: its events are logged and chained."""
        response = await api.post("/v1/orders", json=create_booking_json(), headers=auth("staff"))
        order_id = response.json()["order_id"]
        await api.post(
            f"/v1/orders/{order_id}/cancel", json={"reason": "moved"}, headers=auth("staff")
        )
        order = (await api.get(f"/v1/orders/{order_id}", headers=auth("staff"))).json()
        # The worker writes the records a moment after the update answers.
        answer = await eventually(
            lambda: events_of(api, auth, order_id, role="supervisor"),
            lambda answer: len(answer.json().get("events", [])) == len(order["timeline"]),
        )
        log = answer.json()
        assert [e["action"] for e in log["events"]] == [e["action"] for e in order["timeline"]]
        assert (log["chain_ok"], log["first_bad_seq"]) == (True, None)

    @pytest.mark.parametrize("role", ["staff", "technician", "customer", "admin"])
    async def test_only_auditors_and_supervisors_read_it(
        self, api: httpx.AsyncClient, auth: Auth, records_engine: AsyncEngine, role: str
    ) -> None:
        """Other roles are refused with 403, even for their own order."""
        order_id = new_order_id()
        await record_events(records_engine, order_id, 1)
        claims = {"technician": {"technician_id": "T-1"}, "customer": {"order_id": order_id}}
        response = await api.get(
            f"/v1/orders/{order_id}/events", headers=auth(role, **claims.get(role, {}))
        )
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"

    @pytest.mark.parametrize("order_id", ["RF261120-ZZZZZZ", "not-an-order"])
    async def test_unknown_order_is_404(
        self, api: httpx.AsyncClient, auth: Auth, order_id: str
    ) -> None:
        """An order the records store has never seen is not found."""
        response = await events_of(api, auth, order_id)
        assert response.status_code == 404
        assert response.json()["status"] == 404

    async def test_no_token_is_401(self, api: httpx.AsyncClient) -> None:
        """The audit log is never anonymous."""
        response = await api.get(f"/v1/orders/{new_order_id()}/events")
        assert response.status_code == 401
