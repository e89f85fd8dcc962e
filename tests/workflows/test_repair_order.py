import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.notification import NotificationInput
from models.order import CancelInput, OrderInput, OrderOutcome, RecordInput, Role, Stage
from tests.factories import create_actor, create_order_input
from workflows.repair_order import RepairOrderWorkflow


@dataclass
class RecordsSpy:
    """Stands in for the records store and the channels: the workflow is under test here."""

    written: list[RecordInput] = field(default_factory=list)
    sent: list[NotificationInput] = field(default_factory=list)

    @activity.defn(name="record_order_event")
    async def record_order_event(self, input: RecordInput) -> None:
        self.written.append(input)

    @activity.defn(name="send_notification")
    async def send_notification(self, input: NotificationInput) -> None:
        self.sent.append(input)


@dataclass
class Harness:
    env: WorkflowEnvironment
    task_queue: str
    records: RecordsSpy

    async def order_input(self, **overrides: Any) -> OrderInput:
        """An order booked now, on the test server's clock."""
        now = await self.env.get_current_time()
        return create_order_input(f"RF-TEST-{uuid.uuid4().hex[:8]}", booked_at=now, **overrides)

    async def start(
        self, order_input: OrderInput | None = None
    ) -> WorkflowHandle[RepairOrderWorkflow, OrderOutcome]:
        order_input = order_input or await self.order_input()
        return await self.env.client.start_workflow(
            RepairOrderWorkflow.run,
            order_input,
            id=order_input.order_id,
            task_queue=self.task_queue,
        )


@pytest.fixture
async def harness(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Harness]:
    task_queue = f"tq-{uuid.uuid4().hex}"
    records = RecordsSpy()
    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[RepairOrderWorkflow],
        activities=[records.record_order_event, records.send_notification],
    ):
        yield Harness(time_skipping_env, task_queue, records)


async def update_events(
    handle: WorkflowHandle[RepairOrderWorkflow, OrderOutcome],
) -> list[EventType.ValueType]:
    history = await handle.fetch_history()
    return [
        event.event_type
        for event in history.events
        if event.event_type
        in (
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
        )
    ]


class TestBooking:
    async def test_new_order_goes_to_dispatching(self, harness: Harness) -> None:
        """A booked order starts looking for a technician at once, and says who booked it."""
        handle = await harness.start()
        order = await handle.query(RepairOrderWorkflow.details)
        assert order.stage == Stage.DISPATCHING
        assert [(e.actor, e.action) for e in order.timeline] == [
            ("staff:test-staff", "booked"),
            ("system", "stage:dispatching"),
        ]

    async def test_every_event_reaches_the_records_store_in_order(self, harness: Harness) -> None:
        """The event log gets each event once, numbered as it happened, with the read model."""
        handle = await harness.start()
        await handle.execute_update(
            RepairOrderWorkflow.cancel, CancelInput(actor=create_actor(), reason="no longer needed")
        )
        await handle.result()
        assert [r.event.seq for r in harness.records.written] == [1, 2, 3]
        assert [r.event.action for r in harness.records.written] == [
            "booked",
            "stage:dispatching",
            "stage:cancelled",
        ]
        assert harness.records.written[-1].snapshot.stage == Stage.CANCELLED


class TestCancel:
    async def test_staff_cancel_before_check_in_ends_the_order(self, harness: Harness) -> None:
        """Cancelling while dispatching ends the order as cancelled, with the reason kept."""
        handle = await harness.start()
        order = await handle.execute_update(
            RepairOrderWorkflow.cancel,
            CancelInput(actor=create_actor(), reason="customer fixed it"),
        )
        assert order.stage == Stage.CANCELLED
        assert order.cancellation_reason == "customer fixed it"
        outcome = await handle.result()
        assert outcome.stage == Stage.CANCELLED

    async def test_customer_of_another_order_is_refused_and_nothing_is_written(
        self, harness: Harness
    ) -> None:
        """A customer token for another order cannot cancel; the history shows no trace of it."""
        handle = await harness.start()
        stranger = create_actor(Role.CUSTOMER, order_id="RF-SOMEONE-ELSE")
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                RepairOrderWorkflow.cancel, CancelInput(actor=stranger, reason="mischief")
            )
        assert isinstance(refused.value.cause, ApplicationError)
        assert refused.value.cause.type == "Forbidden"
        order = await handle.query(RepairOrderWorkflow.details)
        assert order.stage == Stage.DISPATCHING
        assert await update_events(handle) == []

    async def test_own_customer_may_cancel(self, harness: Harness) -> None:
        """The customer holding this order's token can cancel it."""
        handle = await harness.start()
        customer = create_actor(Role.CUSTOMER, order_id=handle.id)
        order = await handle.execute_update(
            RepairOrderWorkflow.cancel, CancelInput(actor=customer, reason="bought a new one")
        )
        assert order.stage == Stage.CANCELLED
        assert order.timeline[-1].actor == f"customer:{customer.subject}"

    async def test_cancel_sent_with_the_booking_stays_cancelled(self, harness: Harness) -> None:
        """A cancel that reaches the order in the same instant as its booking is not undone."""
        order_input = await harness.order_input()
        start = WithStartWorkflowOperation(
            RepairOrderWorkflow.run,
            order_input,
            id=order_input.order_id,
            task_queue=harness.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
        await harness.env.client.execute_update_with_start_workflow(
            RepairOrderWorkflow.cancel,
            CancelInput(actor=create_actor(), reason="changed my mind"),
            start_workflow_operation=start,
        )
        outcome = await (await start.workflow_handle()).result()
        assert outcome.stage == Stage.CANCELLED
        assert [r.event.action for r in harness.records.written] == ["booked", "stage:cancelled"]
