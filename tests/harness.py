"""The order harness for workflow tests on the time-skipping test server: a worker on a fresh
task queue with the order and complaint workflows, the records store, the channels and the
registry replaced by a spy (any of them swapped for the real activity by name), the orders a
test started, and the steps that move an order and its complaints along.

Time is moved with `harness.env.sleep`; effects are waited for with `order_eventually`,
`sent_eventually` and `settled` (all through `tests.waiting.eventually`), never with a sleep."""

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.workflow import UpdateMethodMultiParam

from models.catalog import Category
from models.complaint import (
    Complaint,
    ComplaintFiling,
    ComplaintOutcome,
    FileComplaintInput,
    FollowUpInput,
    ResolveInput,
)
from models.notification import NotificationInput, Template
from models.order import (
    AcceptanceInput,
    ActionDone,
    Actor,
    ActorInput,
    AssignInput,
    ClaimCreated,
    ClaimInput,
    ComplaintSnapshot,
    DiagnosisInput,
    ErasureInput,
    Exclusion,
    Order,
    OrderEvent,
    OrderInput,
    OrderOutcome,
    QuoteRequest,
    RecordInput,
    Role,
    ServiceRecordInput,
    WarrantyStatus,
    WindowInput,
)
from models.policy import Policy
from models.technician import Candidate, CandidateQuery
from tests.factories import (
    create_actor,
    create_appliance,
    create_booking,
    create_diagnosis,
    create_order_input,
    create_policy,
    create_service_record,
    create_window,
)
from tests.waiting import eventually
from workflows.complaint import ComplaintWorkflow
from workflows.repair_order import RepairOrderWorkflow

Handle = WorkflowHandle[RepairOrderWorkflow, OrderOutcome]
ComplaintHandle = WorkflowHandle[ComplaintWorkflow, ComplaintOutcome]
ArgT = TypeVar("ArgT")
ResultT = TypeVar("ResultT")

TECHNICIAN = "T-100"


@dataclass
class RecordsSpy:
    """Stands in for the records store and the channels: the workflow is under test here."""

    written: list[RecordInput] = field(default_factory=list)
    sent: list[NotificationInput] = field(default_factory=list)
    # The registry as dispatch sees it: empty unless a test registers technicians.
    candidates: list[Candidate] = field(default_factory=list)
    queries: list[CandidateQuery] = field(default_factory=list)

    @activity.defn(name="find_candidates")
    async def find_candidates(self, query: CandidateQuery) -> list[Candidate]:
        self.queries.append(query)
        return [c for c in self.candidates if c.technician_id not in query.exclude]

    # Event numbers the spy refuses once, as a store refuses a value it cannot hold.
    refused: set[int] = field(default_factory=set)

    @activity.defn(name="record_order_event")
    async def record_order_event(self, input: RecordInput) -> None:
        if input.event.seq in self.refused:
            self.refused.discard(input.event.seq)
            raise ApplicationError("refused by the spy", type="RecordRejected", non_retryable=True)
        self.written.append(input)

    @activity.defn(name="record_order_events")
    async def record_order_events(self, inputs: list[RecordInput]) -> list[OrderEvent]:
        """A batch lands whole or not at all, as one transaction does."""
        if refused := self.refused.intersection(input.event.seq for input in inputs):
            self.refused.difference_update(refused)
            raise ApplicationError("refused by the spy", type="RecordRejected", non_retryable=True)
        self.written.extend(inputs)
        return [input.event for input in inputs]

    @activity.defn(name="send_notification")
    async def send_notification(self, input: NotificationInput) -> None:
        self.sent.append(input)

    complaints: list[ComplaintSnapshot] = field(default_factory=list)

    @activity.defn(name="record_complaint")
    async def record_complaint(self, complaint: ComplaintSnapshot) -> None:
        self.complaints.append(complaint)

    erasures: list[ErasureInput] = field(default_factory=list)

    @activity.defn(name="schedule_erasure")
    async def schedule_erasure(self, input: ErasureInput) -> None:
        self.erasures.append(input)

    @activity.defn(name="erase_personal_data")
    async def erase_personal_data(self, order_id: str) -> None:
        raise ApplicationError("the spy schedules no erasure", non_retryable=True)

    def messages(self, template: Template, order_id: str | None = None) -> list[NotificationInput]:
        return [
            message
            for message in self.sent
            if message.template == template and order_id in (None, message.order_id)
        ]


@dataclass
class Harness:
    env: WorkflowEnvironment
    task_queue: str
    records: RecordsSpy
    started: list[str] = field(default_factory=list)

    async def order_input(self, **overrides: Any) -> OrderInput:
        """An order booked now, on the test server's clock."""
        now = await self.env.get_current_time()
        return create_order_input(f"RF-TEST-{uuid.uuid4().hex[:8]}", booked_at=now, **overrides)

    async def start(self, order_input: OrderInput | None = None) -> Handle:
        order_input = order_input or await self.order_input()
        self.started.append(order_input.order_id)
        return await self.env.client.start_workflow(
            RepairOrderWorkflow.run,
            order_input,
            id=order_input.order_id,
            task_queue=self.task_queue,
        )

    async def book(
        self,
        warranty: WarrantyStatus = WarrantyStatus.IN_WARRANTY,
        *,
        policy: Policy | None = None,
        category: Category = Category.REFRIGERATOR,
        **booking: Any,
    ) -> Handle:
        """Start an order booked now whose product warranty has the status asked for."""
        now = await self.env.get_current_time()
        appliance = create_appliance(warranty, booked_on=now.date(), category=category)
        return await self.start(
            await self.order_input(
                booking=create_booking(appliance=appliance, **booking),
                policy=policy or create_policy(),
            )
        )

    def handle(self, workflow_id: str) -> Handle:
        """A handle on an order this test did not start itself (a warranty-claim order).
        Unlike a started one, awaiting its result does not skip time."""
        self.started.append(workflow_id)
        return self.env.client.get_workflow_handle_for(RepairOrderWorkflow.run, workflow_id)

    async def now(self) -> datetime:
        return await self.env.get_current_time()


@asynccontextmanager
async def order_harness(
    env: WorkflowEnvironment,
    *,
    workflows: Sequence[type] = (RepairOrderWorkflow, ComplaintWorkflow),
    harness: Callable[[WorkflowEnvironment, str, RecordsSpy], Harness] = Harness,
    **activities: Callable[..., Any],
) -> AsyncIterator[Harness]:
    """A worker on a fresh task queue running `workflows` with the spy's activities, any of
    them replaced by name (`record_order_events=RecordActivities(engine).record_order_events`).

    Afterwards every order the test started is let drain and ended while the worker still runs:
    an order left running, or an activity left in flight by a stopped worker, holds the shared
    server's clock."""
    task_queue = f"tq-{uuid.uuid4().hex}"
    records = RecordsSpy()
    spied: dict[str, Callable[..., Any]] = {
        "record_order_event": records.record_order_event,
        "record_order_events": records.record_order_events,
        "send_notification": records.send_notification,
        "record_complaint": records.record_complaint,
        "find_candidates": records.find_candidates,
        "schedule_erasure": records.schedule_erasure,
        "erase_personal_data": records.erase_personal_data,
    }
    if unknown := activities.keys() - spied.keys():
        raise TypeError(f"no activity named {sorted(unknown)} to replace")
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=list(workflows),
        activities=list((spied | activities).values()),
    ):
        made = harness(env, task_queue, records)
        yield made
        for workflow_id in made.started:
            await finish_quietly(env.client.get_workflow_handle(workflow_id))


CLOSED = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
}
TASK_OPEN = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,  # tried again
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,  # tried again
}
# The attributes of an activity's last event, which name the event that scheduled it.
ACTIVITY_ENDED = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "activity_task_canceled_event_attributes",
}


async def worker_idle(handle: WorkflowHandle[Any, Any]) -> bool:
    """The worker has done all the server holds for the workflow: no workflow task waits and no
    activity is in flight, or the workflow is closed. Read from one copy of the history, so an
    activity scheduled meanwhile cannot slip between two reads."""
    events = (await handle.fetch_history()).events
    if events and events[-1].event_type in CLOSED:
        return True
    task_open = False
    activities: set[int] = set()
    for event in events:
        if event.event_type in TASK_OPEN:
            task_open = True
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            task_open = False
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            activities.add(event.event_id)
        elif event.event_type in ACTIVITY_ENDED:
            ended = getattr(event, ACTIVITY_ENDED[event.event_type])
            activities.discard(ended.scheduled_event_id)
    return not task_open and not activities


async def finish_quietly(handle: WorkflowHandle[Any, Any]) -> None:
    """Let the order's queued effects drain, then terminate it if it is still running."""
    with suppress(RPCError):
        with suppress(AssertionError):  # drained or not, it ends here
            await eventually(lambda: worker_idle(handle), bool)
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate(reason="test over")


async def update_events(handle: Handle) -> list[EventType.ValueType]:
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


async def accepted_update_ids(handle: Handle) -> set[str]:
    history = await handle.fetch_history()
    return {
        event.workflow_execution_update_accepted_event_attributes.accepted_request.meta.update_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    }


# ---- who acts ------------------------------------------------------------------------------


def technician(technician_id: str = TECHNICIAN) -> Actor:
    return create_actor(Role.TECHNICIAN, technician_id=technician_id)


def staff() -> Actor:
    return create_actor(Role.STAFF)


def supervisor() -> Actor:
    return create_actor(Role.SUPERVISOR)


def customer_of(order_id: str) -> Actor:
    return create_actor(Role.CUSTOMER, order_id=order_id)


# ---- reading and waiting -------------------------------------------------------------------


async def details(handle: Handle) -> Order:
    return await handle.query(RepairOrderWorkflow.details)


async def order_eventually(handle: Handle, expected: Callable[[Order], bool]) -> Order:
    """The order once it matches: a timer's effect reaches the query a moment after it fires."""
    return await eventually(
        lambda: details(handle),
        expected,
        explain=lambda order: f"the order is {order.stage}: {order.timeline}",
    )


async def sent_eventually(
    harness: Harness, template: Template, order_id: str, *, count: int = 1
) -> list[NotificationInput]:
    """The order's messages of a template once `count` of them have reached the channel spy."""

    async def messages() -> list[NotificationInput]:
        return harness.records.messages(template, order_id)

    return await eventually(
        messages,
        lambda sent: len(sent) >= count,
        explain=lambda sent: f"{len(sent)} {template} messages were sent, not {count}",
    )


async def settled(handle: Handle) -> Order:
    """The order once the worker has caught up with whatever the server has for it: what a
    negative assertion reads, so a timer that has fired cannot still be on its way."""
    await eventually(lambda: worker_idle(handle), bool, explain=lambda _: "the worker lags")
    return await details(handle)


async def assert_refused(
    handle: Handle,
    update: UpdateMethodMultiParam[[RepairOrderWorkflow, ArgT], ResultT],
    arg: ArgT,
    error_type: str,
    reason: str,
) -> ApplicationError:
    """The update fails with `error_type` naming `reason`, and leaves no trace in the order."""
    before = await details(handle)
    updates_before = await update_events(handle)
    update_id = f"refused-{uuid.uuid4().hex}"
    with pytest.raises(WorkflowUpdateFailedError) as refusal:
        await handle.execute_update(update, arg, id=update_id)
    cause = refusal.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == error_type, cause
    assert reason in cause.message
    assert cause.non_retryable
    after = await details(handle)
    assert after.timeline == before.timeline
    # Effects still being written drain meanwhile: they are not the order's state.
    assert after.model_dump(exclude={"pending_writes"}) == before.model_dump(
        exclude={"pending_writes"}
    )
    assert await update_events(handle) == updates_before
    assert update_id not in await accepted_update_ids(handle)
    return cause


# ---- moving an order along -----------------------------------------------------------------


async def act(
    handle: Handle,
    update: UpdateMethodMultiParam[[RepairOrderWorkflow, ArgT], ActionDone],
    arg: ArgT,
) -> Order:
    """Take the action; its answer names the order's stage and latest event, and the whole
    order (read after it) is what the test goes on to check."""
    done = await handle.execute_update(update, arg)
    order = await details(handle)
    assert (done.order_id, done.stage) == (order.order_id, order.stage)
    assert done.seq <= len(order.timeline)  # timers may have logged more since
    return order


async def assign(
    handle: Handle, technician_id: str = TECHNICIAN, *, actor: Actor | None = None
) -> Order:
    return await act(
        handle,
        RepairOrderWorkflow.assign,
        AssignInput(actor=actor or staff(), technician_id=technician_id),
    )


async def confirm_appointment(harness: Harness, handle: Handle, *, in_hours: int = 1) -> Order:
    window = create_window(await harness.now() + timedelta(hours=in_hours))
    return await act(
        handle,
        RepairOrderWorkflow.confirm_appointment,
        WindowInput(actor=technician(), window=window),
    )


async def check_in(handle: Handle) -> Order:
    return await act(handle, RepairOrderWorkflow.check_in, ActorInput(actor=technician()))


async def arrive(harness: Harness, handle: Handle) -> Order:
    """Assigned, appointment confirmed, checked in: the order is on site."""
    await assign(handle)
    await confirm_appointment(harness, handle)
    return await check_in(handle)


async def diagnose(
    handle: Handle, quote: QuoteRequest | None = None, exclusion: Exclusion | None = None
) -> Order:
    return await act(
        handle,
        RepairOrderWorkflow.diagnose,
        DiagnosisInput(
            actor=technician(),
            diagnosis=create_diagnosis(warranty_exclusion=exclusion),
            quote=quote,
        ),
    )


async def approve_quote(handle: Handle) -> Order:
    return await act(
        handle, RepairOrderWorkflow.approve_quote, ActorInput(actor=customer_of(handle.id))
    )


async def decline_quote(handle: Handle) -> Order:
    return await act(
        handle, RepairOrderWorkflow.decline_quote, ActorInput(actor=customer_of(handle.id))
    )


async def submit_service_record(handle: Handle) -> Order:
    return await act(
        handle,
        RepairOrderWorkflow.submit_service_record,
        ServiceRecordInput(actor=technician(), record=create_service_record()),
    )


async def complete(handle: Handle) -> Order:
    return await act(handle, RepairOrderWorkflow.complete, ActorInput(actor=technician()))


async def finish(handle: Handle) -> Order:
    """Service record written and work finished: the order awaits acceptance."""
    await submit_service_record(handle)
    return await complete(handle)


async def repair(harness: Harness, handle: Handle, *, quote: QuoteRequest | None = None) -> Order:
    """On site, diagnosed (quoted and approved when a quote is given) and finished."""
    await arrive(harness, handle)
    await diagnose(handle, quote=quote)
    if quote is not None:
        await approve_quote(handle)
    return await finish(handle)


async def accept(handle: Handle, *, actor: Actor | None = None) -> Order:
    return await act(
        handle,
        RepairOrderWorkflow.record_acceptance,
        AcceptanceInput(
            actor=actor or customer_of(handle.id), accepted=True, signature="sig-li-wei"
        ),
    )


async def reject(handle: Handle, reason: str = "still not cooling") -> Order:
    return await act(
        handle,
        RepairOrderWorkflow.record_acceptance,
        AcceptanceInput(actor=customer_of(handle.id), accepted=False, reason=reason),
    )


async def claim(handle: Handle, *, actor: Actor | None = None) -> ClaimCreated:
    return await handle.execute_update(
        RepairOrderWorkflow.claim_warranty,
        ClaimInput(actor=actor or customer_of(handle.id), description="not cooling again"),
    )


# ---- complaints ----------------------------------------------------------------------------


def filing(*, concerns_work: bool = True) -> ComplaintFiling:
    return ComplaintFiling(
        category="attitude",
        description="the technician left a mess and was rude",
        concerns_work=concerns_work,
    )


async def file_complaint(
    harness: Harness, handle: Handle, *, actor: Actor | None = None
) -> ComplaintHandle:
    filed = await handle.execute_update(
        RepairOrderWorkflow.file_complaint,
        FileComplaintInput(actor=actor or customer_of(handle.id), filing=filing()),
    )
    # Ended before its order at teardown: a complaint left running would hold the test clock.
    harness.started.insert(harness.started.index(handle.id), filed.complaint_id)
    return harness.env.client.get_workflow_handle_for(ComplaintWorkflow.run, filed.complaint_id)


async def acknowledge(handle: ComplaintHandle, actor: Actor) -> Complaint:
    return await handle.execute_update(ComplaintWorkflow.acknowledge, ActorInput(actor=actor))


async def resolve(
    handle: ComplaintHandle, actor: Actor, compensation: Decimal | None = None
) -> Complaint:
    return await handle.execute_update(
        ComplaintWorkflow.resolve,
        ResolveInput(actor=actor, resolution="apologised; cleaned up", compensation=compensation),
    )


async def follow_up(handle: ComplaintHandle, order_id: str, *, satisfied: bool) -> Complaint:
    return await handle.execute_update(
        ComplaintWorkflow.follow_up,
        FollowUpInput(actor=customer_of(order_id), satisfied=satisfied, comment="thanks"),
    )


async def close(handle: ComplaintHandle, order_id: str) -> None:
    """Resolved by a supervisor (who may act at any tier) and the customer satisfied."""
    await resolve(handle, supervisor())
    await follow_up(handle, order_id, satisfied=True)
