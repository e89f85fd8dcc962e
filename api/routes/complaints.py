"""Complaint routes: filing one on an order (an order update that starts the complaint's own
workflow), reading one (a query), working one (updates) and listing them (the records store)."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import structlog
from fastapi import APIRouter, Depends, Header, Query, status
from pydantic import BaseModel, ConfigDict
from temporalio.client import WorkflowHandle
from temporalio.workflow import UpdateMethodMultiParam

from api.complaints_after_close import file_after_close
from api.deps import (
    CallerDep,
    OrderHandle,
    SessionDep,
    SettingsDep,
    TemporalDep,
    find_order,
    may,
    role,
)
from api.errors import Conflict, Forbidden, NotFound, Unprocessable, engine_errors, problems
from api.orders import act_on_order, update_id_for_key
from core import queries
from core.cursor import BadCursor
from models.actions import Action
from models.complaint import (
    Complaint,
    ComplaintCategory,
    ComplaintDeadlines,
    ComplaintFiled,
    ComplaintFiling,
    FileComplaintInput,
    FollowUpInput,
    ResolveInput,
    complaint_order_id,
)
from models.fields import Money, Text
from models.order import (
    FINAL_STAGES,
    Actor,
    ActorInput,
    ComplaintState,
    Role,
    TimelineEntry,
    owns_order,
)
from workflows.complaint import ComplaintWorkflow

router = APIRouter(tags=["complaints"])
ArgT = TypeVar("ArgT")

ACTION_PROBLEMS = problems(401, 403, 404, 409, 422, 503)
OFFICE = (Role.STAFF, Role.SUPERVISOR)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ComplaintBody(Body):
    category: ComplaintCategory
    description: Text
    concerns_work: bool


class ResolveBody(Body):
    resolution: Text
    compensation: Money | None = None


class FollowUpBody(Body):
    satisfied: bool
    comment: Text | None = None


class ComplaintCreated(BaseModel):
    complaint_id: str


class ComplaintPublic(BaseModel):
    complaint_id: str
    order_id: str
    state: ComplaintState
    tier: int
    category: str
    description: str
    concerns_work: bool
    technician_id: str | None
    filed_at: datetime
    deadlines: ComplaintDeadlines
    overdue: bool
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    resolution: str | None
    compensation: Decimal | None
    timeline: list[TimelineEntry]


class ComplaintListItem(BaseModel):
    complaint_id: str
    order_id: str
    state: ComplaintState
    tier: int
    category: str
    concerns_work: bool
    technician_id: str | None
    filed_at: datetime
    deadlines: ComplaintDeadlines
    overdue: bool
    compensation: Decimal | None
    updated_at: datetime


class ComplaintList(BaseModel):
    items: list[ComplaintListItem]
    next_cursor: str | None


def is_overdue(
    state: ComplaintState, first_reply_due: datetime, resolution_due: datetime, now: datetime
) -> bool:
    """Past a deadline it has not met: a first reply while open, a resolution until resolved."""
    replying = state == ComplaintState.OPEN and first_reply_due <= now
    resolving = state in (ComplaintState.OPEN, ComplaintState.ACKNOWLEDGED)
    return replying or (resolving and resolution_due <= now)


def complaint_view(complaint: Complaint) -> ComplaintPublic:
    now = datetime.now(UTC)
    return ComplaintPublic(
        **complaint.model_dump(exclude={"overdue", "timeline", "deadlines"}),
        deadlines=complaint.deadlines,
        timeline=complaint.timeline,
        overdue=is_overdue(
            complaint.state, complaint.deadlines.first_reply, complaint.deadlines.resolution, now
        ),
    )


def complaint_handle(
    complaint_id: str, caller: CallerDep, temporal: TemporalDep
) -> WorkflowHandle[Any, Any]:
    order_id = complaint_order_id(complaint_id)
    if order_id is None:
        raise NotFound("no such complaint")
    structlog.contextvars.bind_contextvars(order_id=order_id, complaint_id=complaint_id)
    if caller.role == Role.CUSTOMER and not owns_order(caller, order_id):
        raise Forbidden("this token belongs to another order")
    return temporal.get_workflow_handle(complaint_id)


ComplaintHandle = Annotated[WorkflowHandle[Any, Any], Depends(complaint_handle)]


async def read_complaint(handle: WorkflowHandle[Any, Any]) -> Complaint:
    with engine_errors(not_found="no such complaint"):
        return await handle.query(ComplaintWorkflow.details)


async def act_on_complaint(
    handle: WorkflowHandle[Any, Any],
    update: UpdateMethodMultiParam[[ComplaintWorkflow, ArgT], Complaint],
    arg: ArgT,
    action: str,
) -> ComplaintPublic:
    try:
        with engine_errors(not_found="no such complaint"):
            return complaint_view(await handle.execute_update(update, arg))
    except NotFound:
        # The engine answers "not found" for unknown complaints and for closed ones alike.
        complaint = await read_complaint(handle)
        raise Conflict(f"cannot {action}: complaint is {complaint.state}; it is finished") from None


# ---- filing ----------------------------------------------------------------------------------


@router.post(
    "/v1/orders/{order_id}/complaints",
    status_code=status.HTTP_201_CREATED,
    responses=ACTION_PROBLEMS | problems(429),
)
async def file_complaint(
    body: ComplaintBody,
    handle: OrderHandle,
    caller: Annotated[Actor, Depends(may(Action.FILE_COMPLAINT))],
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> ComplaintCreated:
    """File a complaint; it starts at tier 1 and tier-1 staff are told at once. On a closed or
    cancelled order it is taken within `complaint.window_after_close` of its end (409 after).
    A retry with the same Idempotency-Key answers the complaint the first call filed."""
    filing = ComplaintFiling(**body.model_dump())
    order = (await find_order(handle, session)).order
    if order.stage in FINAL_STAGES:
        complaint_id = await file_after_close(
            temporal,
            session,
            settings,
            order,
            filing,
            caller,
            now=datetime.now(UTC),
            idempotency_key=idempotency_key,
            body=body,
        )
        return ComplaintCreated(complaint_id=complaint_id)
    filed = await act_on_order(
        handle,
        Action.FILE_COMPLAINT,
        FileComplaintInput(actor=caller, filing=filing),
        result_type=ComplaintFiled,
        update_id=await update_id_for_key(
            session, "file-complaint", handle.id, idempotency_key, body
        ),
    )
    return ComplaintCreated(complaint_id=filed.complaint_id)


# ---- reading ---------------------------------------------------------------------------------


@router.get("/v1/complaints", responses=problems(401, 403, 422, 503))
async def list_complaints(
    caller: Annotated[Actor, Depends(role(Role.STAFF, Role.SUPERVISOR, Role.AUDITOR))],
    session: SessionDep,
    state: ComplaintState | None = None,
    tier: Annotated[int | None, Query(ge=1, le=3)] = None,
    overdue: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> ComplaintList:
    """Complaints from the records store, oldest filing first; `cursor` continues a listing."""
    now = datetime.now(UTC)
    try:
        page = await queries.list_complaints(
            session, state=state, tier=tier, overdue=overdue, now=now, limit=limit, cursor=cursor
        )
    except BadCursor:
        raise Unprocessable("query.cursor: not a cursor this list gave out") from None
    return ComplaintList(
        items=[
            ComplaintListItem(
                complaint_id=row.complaint_id,
                order_id=row.order_id,
                state=ComplaintState(row.state),
                tier=row.tier,
                category=row.category,
                concerns_work=row.concerns_work,
                technician_id=row.technician_id,
                filed_at=row.filed_at,
                deadlines=ComplaintDeadlines(
                    first_reply=row.first_reply_due, resolution=row.resolution_due
                ),
                overdue=is_overdue(
                    ComplaintState(row.state), row.first_reply_due, row.resolution_due, now
                ),
                compensation=row.compensation,
                updated_at=row.updated_at,
            )
            for row in page.rows
        ],
        next_cursor=page.next_cursor,
    )


@router.get("/v1/complaints/{complaint_id}", responses=problems(401, 403, 404, 503))
async def get_complaint(
    handle: ComplaintHandle,
    caller: Annotated[
        Actor, Depends(role(Role.STAFF, Role.SUPERVISOR, Role.AUDITOR, Role.CUSTOMER))
    ],
) -> ComplaintPublic:
    """The complaint, its tier, deadlines and history."""
    return complaint_view(await read_complaint(handle))


# ---- working a complaint -----------------------------------------------------------------------


@router.post("/v1/complaints/{complaint_id}/acknowledge", responses=ACTION_PROBLEMS)
async def acknowledge(
    handle: ComplaintHandle, caller: Annotated[Actor, Depends(role(*OFFICE))]
) -> ComplaintPublic:
    """The first reply: staff at tier 1, a supervisor at any tier."""
    return await act_on_complaint(
        handle, ComplaintWorkflow.acknowledge, ActorInput(actor=caller), "acknowledge"
    )


@router.post("/v1/complaints/{complaint_id}/resolve", responses=ACTION_PROBLEMS)
async def resolve(
    body: ResolveBody, handle: ComplaintHandle, caller: Annotated[Actor, Depends(role(*OFFICE))]
) -> ComplaintPublic:
    """Resolve it, with an optional compensation (a decimal string, e.g. "88.50")."""
    update = ResolveInput(actor=caller, resolution=body.resolution, compensation=body.compensation)
    return await act_on_complaint(handle, ComplaintWorkflow.resolve, update, "resolve")


@router.post("/v1/complaints/{complaint_id}/follow-up", responses=ACTION_PROBLEMS)
async def follow_up(
    body: FollowUpBody,
    handle: ComplaintHandle,
    caller: Annotated[Actor, Depends(role(*OFFICE, Role.CUSTOMER))],
) -> ComplaintPublic:
    """The customer's answer on the call-back; unsatisfied reopens it one tier higher."""
    update = FollowUpInput(actor=caller, satisfied=body.satisfied, comment=body.comment)
    return await act_on_complaint(handle, ComplaintWorkflow.follow_up, update, "follow up")
