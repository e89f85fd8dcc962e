"""The repair order: one durable workflow per order, id = order number."""

import asyncio
from collections import deque
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from models.order import (
        CANCELLABLE_STAGES,
        FINAL_STAGES,
        ORDER_CATEGORY,
        ORDER_PRIORITY,
        ORDER_REGION,
        ORDER_STAGE,
        SLA_BREACHED,
        TECHNICIAN_ID,
        Actor,
        CancelInput,
        Charges,
        Order,
        OrderEvent,
        OrderInput,
        OrderOutcome,
        RecordInput,
        Role,
        Stage,
    )

SYSTEM = "system"
RECORD_TIMEOUT = timedelta(seconds=30)
# The records store may be down for a while; events wait in order until it is back.
RECORD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)


def refuse(order: Order, action: str, reason: str) -> ApplicationError:
    """A refusal naming the stage and the reason; raised in validators, so nothing is written."""
    return ApplicationError(
        f"cannot {action}: order is {order.stage}; {reason}",
        type="ActionRefused",
        non_retryable=True,
    )


@workflow.defn
class RepairOrderWorkflow:
    @workflow.init
    def __init__(self, input: OrderInput) -> None:
        booking = input.booking
        self.order = Order(
            order_id=input.order_id,
            stage=Stage.BOOKED,
            priority=booking.priority,
            channel=booking.channel,
            category=booking.appliance.category,
            region=booking.customer.region,
            warranty=input.warranty,
            customer=booking.customer,
            appliance=booking.appliance,
            fault=booking.fault,
            booked_at=input.booked_at,
            preferred_window=booking.preferred_window,
            charges=Charges(currency=input.policy.charges.currency),
        )
        self.policy = input.policy
        self._unrecorded: deque[RecordInput] = deque()
        self._lock = asyncio.Lock()
        # Logged here, not in run: an update delivered with the start runs before run does.
        self._log(str(input.booked_by), "booked", f"{self.order.priority} {self.order.category}")

    @workflow.run
    async def run(self, input: OrderInput) -> OrderOutcome:
        recorder = asyncio.create_task(self._write_records())
        if self.order.stage == Stage.BOOKED:
            self._move_to(Stage.DISPATCHING, SYSTEM, "looking for a technician")
        await workflow.wait_condition(lambda: self.order.stage in FINAL_STAGES)
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() and not self._unrecorded
        )
        recorder.cancel()
        return OrderOutcome(order_id=self.order.order_id, stage=self.order.stage)

    @workflow.query
    def details(self) -> Order:
        return self.order

    @workflow.update
    async def cancel(self, input: CancelInput) -> Order:
        async with self._lock:
            self.order.cancellation_reason = input.reason
            self._move_to(Stage.CANCELLED, str(input.actor), input.reason)
        return self.order

    @cancel.validator
    def _may_cancel(self, input: CancelInput) -> None:
        self._check_party(input.actor)
        if self.order.stage not in CANCELLABLE_STAGES:
            raise refuse(self.order, "cancel", "an order can only be cancelled before check-in")

    def _check_party(self, actor: Actor) -> None:
        """The API checks roles; this holds even for a caller that goes around it."""
        if actor.role == Role.CUSTOMER and actor.order_id != self.order.order_id:
            raise ApplicationError(
                "not this customer's order", type="Forbidden", non_retryable=True
            )

    def _move_to(self, stage: Stage, actor: str, why: str) -> None:
        self.order.stage = stage
        self._log(actor, f"stage:{stage}", why)
        workflow.upsert_search_attributes(
            [
                ORDER_STAGE.value_set(stage),
                ORDER_PRIORITY.value_set(self.order.priority),
                ORDER_CATEGORY.value_set(self.order.category),
                ORDER_REGION.value_set(self.order.region),
                TECHNICIAN_ID.value_set(self.order.technician_id)
                if self.order.technician_id
                else TECHNICIAN_ID.value_unset(),
                SLA_BREACHED.value_set(self.order.sla_breached),
            ]
        )

    def _log(self, actor: str, action: str, detail: str = "") -> None:
        """Add to the timeline and queue the same event for the records store."""
        now = workflow.now()
        event = OrderEvent(
            order_id=self.order.order_id,
            seq=len(self.order.timeline) + 1,
            at=now,
            actor=actor,
            action=action,
            detail=detail,
        )
        self.order.timeline.append(event.timeline_entry())
        self._unrecorded.append(RecordInput(snapshot=self.order.snapshot(now), event=event))

    async def _write_records(self) -> None:
        """One writer, in sequence order, so the event log is appended exactly as it happened."""
        while True:
            await workflow.wait_condition(lambda: bool(self._unrecorded))
            await workflow.execute_activity(
                "record_order_event",
                self._unrecorded[0],
                start_to_close_timeout=RECORD_TIMEOUT,
                retry_policy=RECORD_RETRY,
            )
            self._unrecorded.popleft()
