"""Talking to order workflows: start one, read one, send it an action."""

import hashlib
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.errors import (
    Conflict,
    NotFound,
    OrderStuck,
    Unavailable,
    Unprocessable,
    engine_errors,
)
from core.personal import KeyPool, order_key, seal_customer
from core.queries import remember_key
from core.settings import Settings
from models.actions import ACTIONS, Action
from models.order import (
    ORDER_CATEGORY,
    ORDER_PRIORITY,
    ORDER_REGION,
    ORDER_STAGE,
    SLA_BREACHED,
    Actor,
    Booking,
    Order,
    OrderBooking,
    OrderInput,
    SealedCustomer,
    Stage,
    TimeWindow,
    local_date,
    new_order_id,
    order_workflow_id,
    settle_warranty,
    window_problem,
)
from models.policy import Policy
from models.records import IdempotencyKeyRow
from workflows.repair_order import RepairOrderWorkflow

NEW_ID_ATTEMPTS = 5
# As many failed tries of a workflow task as make the engine flag the workflow (the dev
# command sets system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute to it).
STUCK_AFTER_ATTEMPTS = 2
ResultT = TypeVar("ResultT")


async def read_order(handle: WorkflowHandle[Any, Any]) -> Order:
    try:
        with engine_errors():
            return await handle.query(RepairOrderWorkflow.details)
    except Unavailable:
        await raise_if_stuck(handle)
        raise


async def current_stage(handle: WorkflowHandle[Any, Any]) -> Stage:
    """The order's stage as the engine keeps it (its OrderStage search attribute): no query,
    so many callers at once do not queue on the order's workflow."""
    with engine_errors():
        description = await handle.describe()
    stage = description.typed_search_attributes.get(ORDER_STAGE)
    return Stage(stage) if stage is not None else (await read_order(handle)).stage


async def raise_if_stuck(handle: WorkflowHandle[Any, Any]) -> None:
    """An order whose workflow task keeps failing says so, rather than a bare 503: nothing
    is lost, but it cannot move until its workflow code is fixed and the worker redeployed."""
    try:
        description = await handle.describe()
    except (RPCError, RuntimeError):  # the engine is unreachable: the plain 503 stands
        return
    task = description.raw_description.pending_workflow_task
    if description.raw_description.HasField("pending_workflow_task") and (
        task.attempt >= STUCK_AFTER_ATTEMPTS
    ):
        raise OrderStuck(
            f"order {handle.id} is stuck: its workflow task has failed {task.attempt - 1} "
            "time(s) in a row, so it can neither be read nor changed; nothing is lost, and "
            "it moves on once the worker can run it (operators: see /readyz and the worker log)",
            workflow_task_failing=True,
            workflow_task_attempts=task.attempt,
        )


async def act_on_order(
    handle: WorkflowHandle[Any, Any],
    action: Action,
    arg: BaseModel,
    *,
    result_type: type[ResultT],
    update_id: str | None = None,
) -> ResultT:
    """Send the update; a repeated `update_id` returns the first call's result (the engine
    deduplicates updates by id), so a client's retry does not act twice."""
    try:
        with engine_errors():
            result: ResultT = await handle.execute_update(
                action.value, arg, id=update_id, result_type=result_type
            )
            return result
    except Unavailable:
        await raise_if_stuck(handle)
        raise
    except NotFound:
        # The engine answers "not found" for unknown orders and for finished ones alike.
        order = await read_order(handle)
        raise Conflict(
            f"cannot {ACTIONS[action].wording}: order is {order.stage}; the order is finished"
        ) from None


def check_window(window: TimeWindow, settings: Settings, field: str) -> None:
    """A visit window that is not over yet and starts within the policy's booking horizon.
    Checked here, not in the model: the workflow re-reads a booking long after "now"."""
    if problem := window_problem(window, datetime.now(UTC), settings.policy):
        part, reason = problem
        raise Unprocessable(f"{field}.{part}: {reason}")


def request_hash(body: BaseModel) -> str:
    return hashlib.sha256(body.model_dump_json().encode()).hexdigest()


async def update_id_for_key(
    session: AsyncSession, action: str, order_id: str, key: str | None, body: BaseModel
) -> str | None:
    """The update id an Idempotency-Key stands for: the engine runs an update id once, so a
    retry answers the first call's result. The key is remembered with the body's hash, so the
    same key with another body is refused (409) rather than taken for the first request."""
    if key is None:
        return None
    scoped = f"{action}:" + hashlib.sha256(f"{order_id}\n{key}".encode()).hexdigest()
    digest = request_hash(body)
    kept = await remember_key(
        session,
        IdempotencyKeyRow(
            key=scoped, request_hash=digest, order_id=order_id, created_at=datetime.now(UTC)
        ),
    )
    if kept.request_hash != digest:
        raise Conflict("this Idempotency-Key was already used for a different request")
    return scoped


async def book(
    booking: Booking,
    caller: Actor,
    *,
    idempotency_key: str | None,
    temporal: Client,
    session: AsyncSession,
    settings: Settings,
    keys: KeyPool,
) -> tuple[OrderInput, bool]:
    """Start the order's workflow. Returns its input and whether this call created it.

    With an Idempotency-Key, the key is committed before the workflow starts: a retry after
    any failure finds the key and finishes starting the same order, never a second one. Such
    an order's personal data is sealed with a key named after it, so that a retry seals alike;
    any other takes a key from the pool.
    """
    booked_at = datetime.now(UTC)
    policy = settings.policy
    if idempotency_key is not None:
        order_id = new_order_id(local_date(booked_at, policy))
        # The key is made before the Idempotency-Key is claimed: a request that loses that race
        # holds the store's write lock until it returns, and then only reads the winner's key.
        key = await order_key(session, order_id, settings.key_ring)
        kept = await remember_key(
            session,
            IdempotencyKeyRow(
                key=idempotency_key,
                request_hash=request_hash(booking),
                order_id=order_id,
                created_at=booked_at,
            ),
        )
        existing = kept if kept.order_id != order_id else None
        if existing is not None:
            if existing.request_hash != request_hash(booking):
                raise Conflict("this Idempotency-Key was already used for a different booking")
            key = await order_key(session, existing.order_id, settings.key_ring)
            sealed = seal_customer(booking.customer, existing.order_id, key)
            order_input = _order_input(
                existing.order_id, booking, sealed, caller, booked_at, policy
            )
            await _start(temporal, order_input, settings)
            return order_input, False
        sealed = seal_customer(booking.customer, order_id, key)
        order_input = _order_input(order_id, booking, sealed, caller, booked_at, policy)
        await _start(temporal, order_input, settings)
        return order_input, True

    sealed = seal_customer(booking.customer, *await keys.take())
    for _ in range(NEW_ID_ATTEMPTS):
        order_id = new_order_id(local_date(booked_at, policy))
        order_input = _order_input(order_id, booking, sealed, caller, booked_at, policy)
        if await _start(temporal, order_input, settings):
            return order_input, True
    raise RuntimeError("could not draw an unused order number")


def _order_input(
    order_id: str,
    booking: Booking,
    customer: SealedCustomer,
    caller: Actor,
    booked_at: datetime,
    policy: Policy,
) -> OrderInput:
    return OrderInput(
        order_id=order_id,
        booking=OrderBooking(**(dict(booking) | {"customer": customer})),
        booked_by=caller,
        booked_at=booked_at,
        warranty=settle_warranty(booking.appliance, local_date(booked_at, policy), policy),
        policy=policy,
    )


async def _start(temporal: Client, order_input: OrderInput, settings: Settings) -> bool:
    """Start the workflow; False if one with this id already exists."""
    appliance, customer = order_input.booking.appliance, order_input.booking.customer
    try:
        with engine_errors():
            await temporal.start_workflow(
                RepairOrderWorkflow.run,
                order_input,
                id=order_workflow_id(order_input.order_id),
                task_queue=settings.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(ORDER_STAGE, Stage.BOOKED),
                        SearchAttributePair(ORDER_PRIORITY, order_input.booking.priority),
                        SearchAttributePair(ORDER_CATEGORY, appliance.category),
                        SearchAttributePair(ORDER_REGION, customer.region),
                        SearchAttributePair(SLA_BREACHED, False),
                    ]
                ),
            )
    except WorkflowAlreadyStartedError:
        return False
    return True
