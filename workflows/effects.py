"""What an order does to the world: its timeline, its records events, its messages and the
operators' search attributes.

Runs inside the order workflow. Events and messages are queued as they happen and written by
one writer per queue, in order, through activities; nothing here decides the process.
"""

import asyncio
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from models.notification import Contact, NotificationInput, Recipient, Template
    from models.order import (
        ORDER_CATEGORY,
        ORDER_PRIORITY,
        ORDER_REGION,
        ORDER_STAGE,
        SLA_BREACHED,
        TECHNICIAN_ID,
        WRITES_STALLED,
        ComplaintSnapshot,
        Order,
        OrderEvent,
        PendingWrites,
        RecordInput,
        TimeWindow,
        local_time_text,
    )
    from models.policy import Policy

SYSTEM = "system"
ACTIVITY_TIMEOUT = timedelta(seconds=30)
# The records store or a provider may be down for a while: the engine retries an effect for a
# few minutes; one that still fails, or that the store refuses outright, comes back to the
# order, which shows the write stalled and tries it again after a pause, in order, until it
# succeeds. Its retries stay visible on the order and in /readyz rather than silent.
EFFECT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=10,
    non_retryable_error_types=["UndeliverableNotification"],
)
STALLED_WRITE_PAUSE = timedelta(minutes=10)
LOCAL_RETRY_THRESHOLD = timedelta(seconds=2)


async def run_locally(activity: str, arg: Any) -> None:
    """An effect as a local activity, retried by EFFECT_RETRY."""
    await workflow.execute_local_activity(
        activity,
        arg,
        start_to_close_timeout=ACTIVITY_TIMEOUT,
        retry_policy=EFFECT_RETRY,
        # Longer waits between tries are timers: the workflow task is not held open (nor the
        # order's actions kept waiting) while the store or a provider is down.
        local_retry_threshold=LOCAL_RETRY_THRESHOLD,
    )


def reason(error: ActivityError | ApplicationError) -> BaseException | None:
    """What failed: a local activity's failure may come as the activity's own error."""
    return error.cause if isinstance(error, ActivityError) else error


def undeliverable(error: ActivityError | ApplicationError) -> bool:
    """A message that no retry can deliver: it is written off on the timeline, not retried."""
    cause = reason(error)
    return isinstance(cause, ApplicationError) and cause.type == "UndeliverableNotification"


class Effects:
    def __init__(
        self, order: Order, policy: Policy, *, batched_records: bool, local_messages: bool
    ) -> None:
        self.order = order
        self.policy = policy
        # Orders booked before records were written in batches keep writing one event at a
        # time, through the engine, as their histories say.
        self.batched_records = batched_records
        # Orders booked before messages were sent from the worker without a round trip through
        # the engine keep sending them as activities, as their histories say.
        self.local_messages = local_messages
        self._records: deque[RecordInput] = deque()
        self._messages: deque[NotificationInput] = deque()
        # A stall sets WritesStalled and its end unsets it; orders that never stalled never
        # write it (nor did orders booked before it existed).
        self._published: dict[str, Any] = {WRITES_STALLED.name: None}
        self._stalled: dict[str, datetime] = {}  # writer (activity name) -> failing since
        self._publishing = False

    # ---- the writers ---------------------------------------------------------------------------

    def start_writing(self) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(
                self._drain_in_batches(self._records)
                if self.batched_records
                else self._drain(self._records, "record_order_event")
            ),
            asyncio.create_task(
                self._drain(self._messages, "send_notification", local=self.local_messages)
            ),
        ]

    @property
    def written(self) -> bool:
        """Every event and message queued so far has been handed over."""
        return not self._records and not self._messages

    def pending_writes(self) -> PendingWrites:
        return PendingWrites(
            records=len(self._records),
            notifications=len(self._messages),
            stalled_since=min(self._stalled.values(), default=None),
        )

    async def _drain(self, queue: "deque[Any]", activity: str, *, local: bool = False) -> None:
        """One writer per queue, in order: the event log is appended exactly as it happened.
        A write that keeps failing stays first in its queue, so nothing is lost or reordered:
        the order shows it stalled (and WritesStalled is set) until a later try succeeds."""
        while True:
            await workflow.wait_condition(lambda: bool(queue))
            try:
                await self._hand_over(activity, queue[0], local=local)
            except (ActivityError, ApplicationError) as error:
                if not undeliverable(error):
                    await self._stall(activity, error)
                    continue
                self.log(SYSTEM, "notification failed", f"{queue[0].template}: {reason(error)}")
            queue.popleft()
            self._resumed(activity)

    async def _drain_in_batches(self, queue: "deque[RecordInput]") -> None:
        """The records events logged since the last write, all at once and in order, in one
        transaction: no round trip through the engine per event, and the action that logged
        them answers once they are in the store."""
        activity = "record_order_events"
        while True:
            await workflow.wait_condition(lambda: bool(queue))
            batch = list(queue)
            try:
                await self._hand_over(activity, batch, local=True)
            except (ActivityError, ApplicationError) as error:
                await self._stall(activity, error)
                continue
            for _ in batch:
                queue.popleft()
            self._resumed(activity)

    async def _hand_over(self, activity: str, arg: Any, *, local: bool) -> None:
        """Run the write; a local activity runs in this worker, with no round trip through the
        engine, and may fail with the activity's own error rather than an ActivityError."""
        if not local:
            await workflow.execute_activity(
                activity, arg, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=EFFECT_RETRY
            )
            return
        await run_locally(activity, arg)

    def _resumed(self, activity: str) -> None:
        if self._stalled.pop(activity, None) is not None:
            workflow.logger.info("write resumed", extra={"activity": activity})
            self.publish()

    async def _stall(self, activity: str, error: ActivityError | ApplicationError) -> None:
        """Show the write stalled, then wait before it is tried again."""
        if activity not in self._stalled:
            self._stalled[activity] = workflow.now()
            self.publish()
        # The error names the event or message and the kind of failure, never its values.
        workflow.logger.warning(
            "write stalled; tried again later",
            extra={"activity": activity, "error": str(reason(error))},
        )
        await workflow.sleep(STALLED_WRITE_PAUSE)

    # ---- search attributes -------------------------------------------------------------------

    def start_publishing(self) -> None:
        self._publishing = True
        self.publish()

    def publish(self) -> None:
        """Keep the operators' search attributes current; only what changed is written.
        (Until the workflow runs, the ones set at its start stand.)"""
        if not self._publishing:
            return
        current: list[tuple[SearchAttributeKey[Any], Any]] = [
            (ORDER_STAGE, self.order.stage.value),
            (ORDER_PRIORITY, self.order.priority.value),
            (ORDER_CATEGORY, self.order.category.value),
            (ORDER_REGION, self.order.region),
            (TECHNICIAN_ID, self.order.technician_id),
            (SLA_BREACHED, self.order.sla_breached),
            (WRITES_STALLED, True if self._stalled else None),
        ]
        changed = [
            (key, value) for key, value in current if self._published.get(key.name, ...) != value
        ]
        if changed:
            workflow.upsert_search_attributes(
                [
                    key.value_set(value) if value is not None else key.value_unset()
                    for key, value in changed
                ]
            )
            self._published.update((key.name, value) for key, value in changed)

    # ---- the timeline and messages ---------------------------------------------------------

    def log(
        self,
        actor: str,
        action: str,
        detail: str = "",
        *,
        complaint: ComplaintSnapshot | None = None,
    ) -> None:
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
        self._records.append(
            RecordInput(
                snapshot=self.order.snapshot(now, self.policy), event=event, complaint=complaint
            )
        )

    def notify(self, template: Template, recipient: Recipient, **params: Any) -> None:
        """Queue a message; its key is this order's event number, so it is sent once."""
        technician_id = params.pop("technician_id", self.order.technician_id)
        to = (
            Contact(phone=self.order.customer.phone, email=self.order.customer.email)
            if recipient == Recipient.CUSTOMER
            else Contact(technician_id=technician_id)
        )
        text = {name: str(value) for name, value in params.items()}
        text.setdefault("order_id", self.order.order_id)
        if technician_id:
            text.setdefault("technician_id", technician_id)
        if self.order.appointment:
            text.setdefault("window", self.window_text(self.order.appointment))
        self._messages.append(
            NotificationInput(
                key=":".join(
                    [self.order.order_id, str(len(self.order.timeline)), template, recipient]
                    + (
                        [technician_id]
                        if recipient == Recipient.TECHNICIAN and technician_id
                        else []
                    )
                ),
                order_id=self.order.order_id,
                template=template,
                recipient=recipient,
                locale=self.order.customer.locale if recipient == Recipient.CUSTOMER else "zh",
                to=to,
                params=text,
            )
        )

    def local(self, moment: datetime) -> str:
        return local_time_text(moment, self.policy)

    def window_text(self, window: TimeWindow) -> str:
        return f"{self.local(window.start)} - {self.local(window.end)}"
