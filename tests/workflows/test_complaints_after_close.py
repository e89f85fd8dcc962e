"""Complaints on closed and cancelled orders, through the real workflows on the time-skipping
test server: filed by the API's own function (api/complaints_after_close.py) at the server's
time, recorded in a real SQLite records store, messages to the harness's channel spy.
"""

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from activities.records import RecordActivities
from api.complaints_after_close import file_after_close
from api.errors import Conflict, TooMany
from core.db import create_engine, prepare_schema
from core.settings import Settings
from models.complaint import ComplaintFiling
from models.notification import Recipient, Template
from models.order import ActorInput, CancelInput, ComplaintState, Order, Stage
from models.records import ComplaintRow
from tests.harness import (
    ComplaintHandle,
    Handle,
    Harness,
    customer_of,
    details,
    order_harness,
    sent_eventually,
    staff,
)
from tests.waiting import eventually
from workflows.complaint import ComplaintWorkflow
from workflows.repair_order import RepairOrderWorkflow

FILING = ComplaintFiling(category="quality", description="it broke again", concerns_work=True)


@pytest.fixture
async def records(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'records.db'}")
    await prepare_schema(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def harness(
    time_skipping_env: WorkflowEnvironment, records: AsyncEngine
) -> AsyncIterator[Harness]:
    real = RecordActivities(records)
    async with order_harness(time_skipping_env, record_complaint=real.record_complaint) as made:
        yield made


async def cancelled_order(harness: Harness) -> tuple[Handle, Order]:
    handle = await harness.book()
    await handle.execute_update(
        RepairOrderWorkflow.cancel, CancelInput(actor=staff(), reason="no longer needed")
    )
    # Waited for without handle.result(), which would let the test server skip time ahead.
    await eventually(handle.describe, lambda d: d.status == WorkflowExecutionStatus.COMPLETED)
    order = await details(handle)
    assert order.stage == Stage.CANCELLED
    return handle, order


async def file(
    harness: Harness, records: AsyncEngine, handle: Handle, **kwargs: object
) -> ComplaintHandle:
    """File through the API's function, at the test server's time, as the order's customer."""
    settings = Settings(task_queue=harness.task_queue)
    async with AsyncSession(records, expire_on_commit=False) as session:  # as the API's
        complaint_id = await file_after_close(
            harness.env.client,
            session,
            settings,
            await details(handle),
            FILING,
            customer_of(handle.id),
            now=await harness.now(),
            **kwargs,  # type: ignore[arg-type]
        )
    harness.started.insert(0, complaint_id)  # ended before the orders at teardown
    return harness.env.client.get_workflow_handle_for(ComplaintWorkflow.run, complaint_id)


class TestAfterClose:
    async def test_a_complaint_30_days_after_closing_notifies_staff_and_escalates(
        self, harness: Harness, records: AsyncEngine
    ) -> None:
        handle, order = await cancelled_order(harness)
        await harness.env.sleep(timedelta(days=30))
        complaint = await file(harness, records, handle)
        assert complaint.id == f"{handle.id}-C1"

        (filed,) = await sent_eventually(harness, Template.COMPLAINT_FILED, handle.id)
        assert filed.recipient == Recipient.STAFF
        assert filed.params["complaint_id"] == complaint.id
        async with AsyncSession(records) as session:
            row = await session.get(ComplaintRow, complaint.id)
        assert row is not None
        assert (row.order_id, row.state, row.tier) == (handle.id, "open", 1)

        first_reply = (await complaint.query(ComplaintWorkflow.details)).deadlines.first_reply
        await harness.env.sleep(first_reply - await harness.now() + timedelta(minutes=1))
        (escalated,) = await sent_eventually(harness, Template.ESCALATION, handle.id)
        assert (escalated.recipient, escalated.params["reason"]) == (
            Recipient.SUPERVISOR,
            "complaint_first_reply_overdue",
        )
        assert (await complaint.query(ComplaintWorkflow.details)).tier == 2

        # The closed order stays closed: nothing was added to it.
        assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
        assert (await details(handle)).timeline == order.timeline

    async def test_the_customer_hears_back_at_the_orders_address(
        self, harness: Harness, records: AsyncEngine
    ) -> None:
        handle, order = await cancelled_order(harness)
        complaint = await file(harness, records, handle)
        await complaint.execute_update(ComplaintWorkflow.acknowledge, ActorInput(actor=staff()))
        (update,) = await sent_eventually(harness, Template.COMPLAINT_UPDATE, handle.id)
        assert (update.recipient, update.params["update"]) == (Recipient.CUSTOMER, "acknowledged")
        assert update.to.phone == order.customer.phone
        async with AsyncSession(records) as session:
            row = await session.get(ComplaintRow, complaint.id)
        assert row is not None
        assert row.state == ComplaintState.ACKNOWLEDGED

    async def test_after_the_window_it_is_refused_and_nothing_starts(
        self, harness: Harness, records: AsyncEngine
    ) -> None:
        handle, _ = await cancelled_order(harness)
        await harness.env.sleep(timedelta(days=91))
        with pytest.raises(Conflict, match="complaints are taken for 90d after it ended"):
            await file(harness, records, handle)
        async with AsyncSession(records) as session:
            assert await session.get(ComplaintRow, f"{handle.id}-C1") is None

    async def test_numbers_follow_on_and_a_day_takes_three(
        self, harness: Harness, records: AsyncEngine
    ) -> None:
        handle, _ = await cancelled_order(harness)
        ids = []
        for _ in range(3):
            ids.append((await file(harness, records, handle)).id)
            # the next number is read from the records store
            await sent_eventually(harness, Template.COMPLAINT_FILED, handle.id, count=len(ids))
        assert ids == [f"{handle.id}-C{n}" for n in (1, 2, 3)]
        with pytest.raises(TooMany, match="at most 3 complaints a day"):
            await file(harness, records, handle)

    async def test_a_retry_with_the_same_key_files_once(
        self, harness: Harness, records: AsyncEngine
    ) -> None:
        handle, _ = await cancelled_order(harness)
        first = await file(harness, records, handle, idempotency_key="k-1")
        await sent_eventually(harness, Template.COMPLAINT_FILED, handle.id)
        again = await file(harness, records, handle, idempotency_key="k-1")
        assert again.id == first.id
        other = await file(harness, records, handle, idempotency_key="k-2")
        assert other.id == f"{handle.id}-C2"
