"""A closed order's personal data is erased once `privacy.erase_personal_data_after` has passed:
on the time-skipping server, with the real records store (SQLite, PostgreSQL) and outbox."""

from collections.abc import AsyncIterator
from contextlib import suppress
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col, select
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.erasure import ErasureActivities
from activities.notifications.delivery import NotificationActivities
from activities.records import RecordActivities
from api.views import order_view
from core import queries
from core.audit import replay
from core.personal import KeyPool, Opener, seal_customer, sealed_key_id
from core.settings import Settings
from models.notification import Recipient
from models.order import CancelInput, OrderInput, Role, Stage, erasure_workflow_id
from models.records import NotificationRow, OrderRow, PersonalDataKeyRow
from tests.factories import create_actor, create_customer, create_policy
from tests.harness import Handle, Harness, act, order_harness
from tests.waiting import eventually
from workflows.erasure import PersonalDataErasureWorkflow
from workflows.registry import WORKFLOWS
from workflows.repair_order import RepairOrderWorkflow

ERASE_AFTER = timedelta(days=30)
POLICY = create_policy(privacy={"erase_personal_data_after": "30d"})
RING = Settings().key_ring


@pytest.fixture
def records(records_store: AsyncEngine) -> AsyncEngine:
    """A fresh records store on SQLite and on PostgreSQL."""
    return records_store


@pytest.fixture
async def harness(
    time_skipping_env: WorkflowEnvironment, records: AsyncEngine
) -> AsyncIterator[Harness]:
    store = RecordActivities(records)
    async with order_harness(
        time_skipping_env,
        workflows=(RepairOrderWorkflow, PersonalDataErasureWorkflow),
        schedule_erasure=ErasureActivities(time_skipping_env.client).schedule_erasure,
        record_order_events=store.record_order_events,
        erase_personal_data=store.erase_personal_data,
        send_notification=NotificationActivities(records).send_notification,
    ) as harness:
        yield harness


async def book_sealed(harness: Harness, records: AsyncEngine) -> Handle:
    """An order booked as the API books it: the customer sealed with a key from the pool."""
    draft = await harness.order_input(policy=POLICY)
    customer = seal_customer(create_customer(), *await KeyPool(records, RING, batch=1).take())
    booking = draft.booking.model_copy(update={"customer": customer})
    return await harness.start(OrderInput(**(dict(draft) | {"booking": booking})))


async def staff_sees(handle: Handle, records: AsyncEngine) -> dict[str, object]:
    order = await handle.query(RepairOrderWorkflow.details)
    async with AsyncSession(records) as session:
        view = await order_view(order, create_actor(Role.STAFF), Opener(session, RING))
    return view.customer.model_dump()


async def started(handle: WorkflowHandle[Any, Any]) -> bool:
    with suppress(RPCError):
        await handle.describe()
        return True
    return False


async def ended(handle: WorkflowHandle[Any, Any]) -> bool:
    return (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED


async def key_row(records: AsyncEngine, key_id: str) -> PersonalDataKeyRow | None:
    async with AsyncSession(records) as session:
        return await session.get(PersonalDataKeyRow, key_id)


class TestErasure:
    async def test_personal_data_is_gone_from_every_store_once_the_period_has_passed(
        self, harness: Harness, records: AsyncEngine
    ) -> None:
        handle = await book_sealed(harness, records)
        order_id = handle.id
        key_id = sealed_key_id((await handle.query(RepairOrderWorkflow.details)).customer.phone)
        assert key_id is not None
        await act(handle, RepairOrderWorkflow.cancel, CancelInput(actor=create_actor(), reason="x"))
        # Waited for by reading, not by awaiting a result: that would let the server skip time.
        erasure = harness.env.client.get_workflow_handle(erasure_workflow_id(order_id))
        await eventually(lambda: started(erasure), bool)
        customer = create_customer()
        shown = await staff_sees(handle, records)
        assert (shown["name"], shown["phone"]) == (customer.name, customer.phone)

        await harness.env.sleep(ERASE_AFTER - timedelta(days=1))
        key = await key_row(records, key_id)
        assert key is not None
        assert key.wrapped is not None
        assert (await staff_sees(handle, records))["personal_data_erased"] is False

        await harness.env.sleep(timedelta(days=2))
        await eventually(lambda: ended(erasure), bool)
        timeline = (await handle.query(RepairOrderWorkflow.details)).timeline
        closed_at = next(e.at for e in timeline if e.action == f"stage:{Stage.CANCELLED}")
        erased_at = (await erasure.describe()).close_time
        assert erased_at is not None
        assert erased_at - closed_at >= ERASE_AFTER
        shown = await staff_sees(handle, records)
        assert shown["personal_data_erased"] is True
        assert [shown[field] for field in ("name", "phone", "email", "address")] == [None] * 4
        async with AsyncSession(records) as session:
            row = await session.get(OrderRow, order_id)
            assert row is not None
            assert (row.customer_name, row.customer_phone) == (None, None)
            destinations = list(
                await session.scalars(
                    select(NotificationRow.destination).where(
                        col(NotificationRow.order_id) == order_id,
                        col(NotificationRow.recipient) == Recipient.CUSTOMER,
                    )
                )
            )
            checked = await queries.order_events(session, order_id)
        assert destinations
        assert set(destinations) == {None}
        key = await key_row(records, key_id)
        assert key is not None
        assert key.wrapped is None
        assert key.erased_at is not None
        assert checked is not None
        assert checked.events
        assert checked.first_bad_seq is None
        [replayed] = await replay([await handle.fetch_history()], WORKFLOWS)
        assert replayed.deterministic, replayed.error
