"""Order routes: each turns one call into a workflow start, an update or a query; lists and
the audit log read the records store."""

import base64
import binascii
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, Query, Response, status
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from sqlalchemy import and_, or_
from sqlmodel import col, select
from temporalio.client import WorkflowHandle
from temporalio.workflow import UpdateMethodMultiParam

from activities.dispatch import qualifications
from api.deps import (
    OrderHandle,
    OrderId,
    SessionDep,
    SettingsDep,
    TemporalDep,
    VisibleOrder,
    may,
    role,
)
from api.errors import Conflict, Forbidden, NotFound, Unprocessable, problems
from api.orders import act_on_order, book, read_order, update_id_for_key
from api.views import BookingCreated, ClaimCreatedPublic, OrderPublic, order_view, warranty_view
from core.settings import Settings
from core.tokens import mint_token
from models.catalog import Category
from models.fields import Moment, ShortText, Text
from models.order import (
    AcceptanceInput,
    Actor,
    ActorInput,
    AssignInput,
    Booking,
    CancelInput,
    Channel,
    ClaimInput,
    Diagnosis,
    DiagnosisInput,
    Exclusion,
    HazardInput,
    NoteInput,
    Order,
    PartRequest,
    PartsInput,
    Priority,
    QuoteRequest,
    ReasonInput,
    Role,
    ServiceRecord,
    ServiceRecordInput,
    Stage,
    Survey,
    SurveyInput,
    TimeWindow,
    WarrantyStatus,
    WindowInput,
    local_date,
    require_reason_if_rejected,
    visit_day,
    window_problem,
)
from models.records import EventRow, OrderRow, TechnicianRow, first_broken_seq
from models.technician import unqualified_because
from workflows.repair_order import RepairOrderWorkflow

router = APIRouter(prefix="/v1/orders", tags=["orders"])
ArgT = TypeVar("ArgT")


ACTION_PROBLEMS = problems(401, 403, 404, 409, 422, 503)

Staff = Annotated[Actor, Depends(role(Role.STAFF))]
AnyRole = Annotated[Actor, Depends(role(*Role))]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReasonBody(Body):
    reason: Text


class AssignBody(Body):
    technician_id: ShortText


class DiagnosisBody(Body):
    fault_cause: Text
    plan: Text
    warranty_exclusion: Exclusion | None = None
    quote: QuoteRequest | None = None


class PartsBody(Body):
    parts: tuple[PartRequest, ...] = Field(min_length=1)


class HazardBody(Body):
    description: Text


class NoteBody(Body):
    note: Text


class AcceptanceBody(Body):
    accepted: bool
    reason: Text | None = Field(default=None, validate_default=True)
    signature: ShortText | None = None

    @field_validator("reason")
    @classmethod
    def rejection_gives_a_reason(cls, reason: str | None, info: ValidationInfo) -> str | None:
        return require_reason_if_rejected(reason, info)


class ClaimBody(Body):
    description: Text


def check_window(window: TimeWindow, settings: Settings, field: str) -> None:
    """A visit window that is not over yet and starts within the policy's booking horizon.
    Checked here, not in the model: the workflow re-reads a booking long after "now"."""
    if problem := window_problem(window, datetime.now(UTC), settings.policy):
        part, reason = problem
        raise Unprocessable(f"{field}.{part}: {reason}")


async def check_qualified(
    session: SessionDep, settings: Settings, order: Order, technician_id: str, action: str
) -> None:
    """The technician must be registered and qualified on the visit day: a certificate that
    lapses before the appointment rules them out (409), as does a suspension."""
    technician = await session.get(TechnicianRow, technician_id)
    if technician is None:
        raise NotFound(f"no technician {technician_id}")
    reason = unqualified_because(
        qualifications(technician),
        order.category,
        order.appliance.gas_fired,
        visit_day(order, settings.policy),
    )
    if reason is not None:
        raise Conflict(f"cannot {action}: order is {order.stage}; {reason}")


async def _act(
    handle: WorkflowHandle[Any, Any],
    update: UpdateMethodMultiParam[[RepairOrderWorkflow, ArgT], Order],
    arg: ArgT,
    action: str,
    caller: Actor,
) -> OrderPublic:
    return order_view(await act_on_order(handle, update, arg, action), caller)


# ---- booking and reading -------------------------------------------------------------------


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=problems(401, 403, 409, 422, 503) | {200: {"model": BookingCreated}},
)
async def book_order(
    booking: Booking,
    caller: Staff,
    response: Response,
    temporal: TemporalDep,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> BookingCreated:
    """Book an order and start its workflow; the same Idempotency-Key books it once."""
    # Checked here, not in the model: the workflow re-reads the booking long after "now".
    now = datetime.now(UTC)
    if booking.preferred_window is not None:
        check_window(booking.preferred_window, settings, "body.preferred_window")
    purchased = booking.appliance.purchase_date
    if purchased is not None and purchased > local_date(now, settings.policy):
        raise Unprocessable("body.appliance.purchase_date: the purchase date is in the future")
    order_input, created = await book(
        booking,
        caller,
        idempotency_key=idempotency_key,
        temporal=temporal,
        session=session,
        settings=settings,
    )
    stage = Stage.BOOKED
    if not created:
        response.status_code = status.HTTP_200_OK
        stage = (await read_order(temporal.get_workflow_handle(order_input.order_id))).stage
    link_secret = settings.link_secret
    if link_secret is None:  # create_app refuses to start without one
        raise RuntimeError("no secret signs the customers' link tokens")
    token = mint_token(
        link_secret,
        subject=order_input.order_id,
        role=Role.CUSTOMER,
        ttl=timedelta(days=settings.customer_token_days),
        order_id=order_input.order_id,
    )
    return BookingCreated(
        order_id=order_input.order_id,
        stage=stage,
        warranty=warranty_view(order_input.warranty),
        customer_token=token,
    )


@router.get("/{order_id}", responses=problems(401, 403, 404, 503))
async def get_order(order: VisibleOrder, caller: AnyRole) -> OrderPublic:
    """The whole order, as far as the caller may see it."""
    return order_view(order, caller)


# ---- lists and the audit log, from the records store -------------------------------------------


class OrderListQuery(BaseModel):
    """Filters of GET /v1/orders, all optional and all applied together."""

    model_config = ConfigDict(extra="forbid")

    stage: Stage | None = None
    technician_id: ShortText | None = None
    priority: Priority | None = None
    region: ShortText | None = None
    sla_breached: bool | None = None
    booked_from: Moment | None = Field(
        default=None, alias="from", description="booked at or after (ISO 8601 with offset)"
    )
    booked_to: Moment | None = Field(
        default=None, alias="to", description="booked before (ISO 8601 with offset)"
    )
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(
        default=None, max_length=500, description="next_cursor of the previous page"
    )


class OrderCursor(BaseModel):
    """Where a page ended: the (booked_at, order_id) of its last order."""

    model_config = ConfigDict(extra="forbid")

    booked_at: Moment
    order_id: str = Field(min_length=1, max_length=40)

    def encode(self) -> str:
        return base64.urlsafe_b64encode(self.model_dump_json().encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> "OrderCursor":
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            return cls.model_validate_json(raw)
        except (ValueError, binascii.Error):  # pydantic's ValidationError is a ValueError
            raise Unprocessable("query.cursor: not a cursor this list gave out") from None


class OrderCharges(BaseModel):
    currency: str
    total: Decimal


class OrderListItem(BaseModel):
    """An order in a list: what staff screens and reports filter on, and no personal data."""

    order_id: str
    stage: Stage
    priority: Priority
    channel: Channel
    category: Category
    region: str
    technician_id: str | None
    warranty_status: WarrantyStatus
    sla_breached: bool
    charges: OrderCharges
    booked_at: datetime
    updated_at: datetime


class OrderList(BaseModel):
    items: list[OrderListItem]
    next_cursor: str | None


class EventPublic(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    detail: str
    prev_hash: str
    hash: str


class EventLog(BaseModel):
    events: list[EventPublic]
    chain_ok: bool
    first_bad_seq: int | None


@router.get("", responses=problems(401, 403, 422, 503))
async def list_orders(
    filters: Annotated[OrderListQuery, Query()],
    caller: Annotated[
        Actor, Depends(role(Role.STAFF, Role.SUPERVISOR, Role.AUDITOR, Role.TECHNICIAN))
    ],
    session: SessionDep,
) -> OrderList:
    """Orders from the records store, oldest booking first (ties by order id), `limit` at a
    time; `next_cursor` continues the listing and is null on the last page. Keyset paging:
    orders booked or changed while a client pages never make it skip or repeat one.
    `from` is inclusive, `to` exclusive. A technician lists only their own orders: leaving
    out `technician_id` means theirs, and another technician's id is 403."""
    technician_id = filters.technician_id
    if caller.role == Role.TECHNICIAN:
        if technician_id is not None and technician_id != caller.technician_id:
            raise Forbidden("a technician lists only their own orders")
        technician_id = caller.technician_id
    start, end = filters.booked_from, filters.booked_to
    if start is not None and end is not None and end <= start:
        raise Unprocessable("query.to: must be after query.from")
    query = select(OrderRow)
    for column, value in (
        (OrderRow.stage, filters.stage),
        (OrderRow.technician_id, technician_id),
        (OrderRow.priority, filters.priority),
        (OrderRow.region, filters.region),
        (OrderRow.sla_breached, filters.sla_breached),
    ):
        if value is not None:
            query = query.where(col(column) == value)
    booked_at, order_id = col(OrderRow.booked_at), col(OrderRow.order_id)
    if start is not None:
        query = query.where(booked_at >= start)
    if end is not None:
        query = query.where(booked_at < end)
    if filters.cursor is not None:
        after = OrderCursor.decode(filters.cursor)
        query = query.where(
            or_(
                booked_at > after.booked_at,
                and_(booked_at == after.booked_at, order_id > after.order_id),
            )
        )
    query = query.order_by(booked_at, order_id).limit(filters.limit + 1)
    rows = (await session.scalars(query)).all()
    page = rows[: filters.limit]
    more = len(rows) > filters.limit
    return OrderList(
        items=[
            OrderListItem(
                order_id=row.order_id,
                stage=Stage(row.stage),
                priority=Priority(row.priority),
                channel=Channel(row.channel),
                category=Category(row.category),
                region=row.region,
                technician_id=row.technician_id,
                warranty_status=WarrantyStatus(row.warranty_status),
                sla_breached=row.sla_breached,
                charges=OrderCharges(currency=row.currency, total=row.total),
                booked_at=row.booked_at,
                updated_at=row.updated_at,
            )
            for row in page
        ],
        next_cursor=(
            OrderCursor(booked_at=page[-1].booked_at, order_id=page[-1].order_id).encode()
            if more
            else None
        ),
    )


@router.get("/{order_id}/events", responses=problems(401, 403, 404, 503))
async def get_order_events(
    order_id: OrderId,
    caller: Annotated[Actor, Depends(role(Role.AUDITOR, Role.SUPERVISOR))],
    session: SessionDep,
) -> EventLog:
    """The order's event log from the records store, with its hash chain checked: a row
    edited, deleted or added behind the service's back makes `chain_ok` false and
    `first_bad_seq` the first sequence number at which the chain no longer holds."""
    order = await session.get(OrderRow, order_id)
    events = (
        await session.scalars(
            select(EventRow).where(EventRow.order_id == order_id).order_by(col(EventRow.seq))
        )
    ).all()
    if order is None and not events:
        raise NotFound("no such order")
    first_bad = first_broken_seq(
        events,
        last_seq=order.last_seq if order is not None else 0,
        last_hash=order.last_hash if order is not None else None,
    )
    return EventLog(
        events=[EventPublic.model_validate(row, from_attributes=True) for row in events],
        chain_ok=first_bad is None,
        first_bad_seq=first_bad,
    )


# ---- before check-in -------------------------------------------------------------------------


@router.post("/{order_id}/reschedule", responses=ACTION_PROBLEMS)
async def reschedule(
    body: TimeWindow,
    handle: OrderHandle,
    caller: Annotated[Actor, Depends(may("reschedule"))],
    session: SessionDep,
    settings: SettingsDep,
) -> OrderPublic:
    """Move the visit window; the technician must confirm the new time."""
    check_window(body, settings, "body")
    order = await read_order(handle)
    if order.technician_id is not None:
        moved = order.model_copy(update={"appointment": None, "preferred_window": body})
        await check_qualified(session, settings, moved, order.technician_id, "reschedule")
    update = WindowInput(actor=caller, window=body)
    return await _act(handle, RepairOrderWorkflow.reschedule, update, "reschedule", caller)


@router.post("/{order_id}/cancel", responses=ACTION_PROBLEMS)
async def cancel(
    body: ReasonBody, handle: OrderHandle, caller: Annotated[Actor, Depends(may("cancel"))]
) -> OrderPublic:
    """Cancel before check-in (a supervisor also during a safety stop)."""
    update = CancelInput(actor=caller, reason=body.reason)
    return await _act(handle, RepairOrderWorkflow.cancel, update, "cancel", caller)


@router.post("/{order_id}/assign", responses=ACTION_PROBLEMS)
async def assign(
    body: AssignBody,
    handle: OrderHandle,
    caller: Annotated[Actor, Depends(may("assign"))],
    session: SessionDep,
    settings: SettingsDep,
) -> OrderPublic:
    """Assign or reassign the order to a registered technician qualified for it."""
    order = await read_order(handle)
    await check_qualified(session, settings, order, body.technician_id, "assign")
    update = AssignInput(actor=caller, technician_id=body.technician_id)
    return await _act(handle, RepairOrderWorkflow.assign, update, "assign", caller)


@router.post("/{order_id}/offer/accept", responses=ACTION_PROBLEMS)
async def accept_offer(
    handle: OrderHandle, caller: Annotated[Actor, Depends(may("accept the offer"))]
) -> OrderPublic:
    """The technician holding the offer takes the job."""
    update = ActorInput(actor=caller)
    return await _act(handle, RepairOrderWorkflow.accept_offer, update, "accept the offer", caller)


@router.post("/{order_id}/offer/decline", responses=ACTION_PROBLEMS)
async def decline_offer(
    body: ReasonBody,
    handle: OrderHandle,
    caller: Annotated[Actor, Depends(may("decline the offer"))],
) -> OrderPublic:
    """The technician holding the offer turns it down; the next candidate is asked."""
    update = ReasonInput(actor=caller, reason=body.reason)
    return await _act(
        handle, RepairOrderWorkflow.decline_offer, update, "decline the offer", caller
    )


@router.post("/{order_id}/appointment", responses=ACTION_PROBLEMS)
async def confirm_appointment(
    body: TimeWindow,
    handle: OrderHandle,
    caller: Annotated[Actor, Depends(may("confirm appointment"))],
    session: SessionDep,
    settings: SettingsDep,
) -> OrderPublic:
    """The assigned technician confirms the time agreed with the customer."""
    check_window(body, settings, "body")
    order = await read_order(handle)
    if order.technician_id is not None and order.technician_id == caller.technician_id:
        agreed = order.model_copy(update={"appointment": body})
        await check_qualified(session, settings, agreed, order.technician_id, "confirm appointment")
    update = WindowInput(actor=caller, window=body)
    return await _act(
        handle, RepairOrderWorkflow.confirm_appointment, update, "confirm appointment", caller
    )


# ---- on site ---------------------------------------------------------------------------------


@router.post("/{order_id}/check-in", responses=ACTION_PROBLEMS)
async def check_in(
    handle: OrderHandle, caller: Annotated[Actor, Depends(may("check in"))]
) -> OrderPublic:
    """The technician has arrived."""
    return await _act(
        handle, RepairOrderWorkflow.check_in, ActorInput(actor=caller), "check in", caller
    )


@router.post("/{order_id}/diagnosis", responses=ACTION_PROBLEMS)
async def diagnose(
    body: DiagnosisBody, handle: OrderHandle, caller: Annotated[Actor, Depends(may("diagnose"))]
) -> OrderPublic:
    """The fault found, the plan and, where the customer pays, the quote to approve."""
    update = DiagnosisInput(
        actor=caller,
        diagnosis=Diagnosis(
            fault_cause=body.fault_cause, plan=body.plan, warranty_exclusion=body.warranty_exclusion
        ),
        quote=body.quote,
    )
    return await _act(handle, RepairOrderWorkflow.diagnose, update, "diagnose", caller)


@router.post("/{order_id}/quote/approve", responses=ACTION_PROBLEMS)
async def approve_quote(
    handle: OrderHandle, caller: Annotated[Actor, Depends(may("approve the quote"))]
) -> OrderPublic:
    """The customer consents to the quote."""
    update = ActorInput(actor=caller)
    return await _act(
        handle, RepairOrderWorkflow.approve_quote, update, "approve the quote", caller
    )


@router.post("/{order_id}/quote/decline", responses=ACTION_PROBLEMS)
async def decline_quote(
    handle: OrderHandle, caller: Annotated[Actor, Depends(may("decline the quote"))]
) -> OrderPublic:
    """The customer declines: only the visit fee is due and the order closes."""
    update = ActorInput(actor=caller)
    return await _act(
        handle, RepairOrderWorkflow.decline_quote, update, "decline the quote", caller
    )


@router.post("/{order_id}/parts", responses=ACTION_PROBLEMS)
async def request_parts(
    body: PartsBody, handle: OrderHandle, caller: Annotated[Actor, Depends(may("request parts"))]
) -> OrderPublic:
    """A part is needed; the order waits for it."""
    update = PartsInput(actor=caller, parts=body.parts)
    return await _act(handle, RepairOrderWorkflow.request_parts, update, "request parts", caller)


@router.post("/{order_id}/parts/arrived", responses=ACTION_PROBLEMS)
async def parts_arrived(
    handle: OrderHandle, caller: Annotated[Actor, Depends(may("record parts arrival"))]
) -> OrderPublic:
    """The parts are here; back on site."""
    update = ActorInput(actor=caller)
    return await _act(
        handle, RepairOrderWorkflow.parts_arrived, update, "record parts arrival", caller
    )


@router.post("/{order_id}/workshop", responses=ACTION_PROBLEMS)
async def to_workshop(
    handle: OrderHandle, caller: Annotated[Actor, Depends(may("take to the workshop"))]
) -> OrderPublic:
    """A complex fault: the device goes to the workshop."""
    update = ActorInput(actor=caller)
    return await _act(
        handle, RepairOrderWorkflow.to_workshop, update, "take to the workshop", caller
    )


@router.post("/{order_id}/workshop/return", responses=ACTION_PROBLEMS)
async def back_from_workshop(
    handle: OrderHandle, caller: Annotated[Actor, Depends(may("return from the workshop"))]
) -> OrderPublic:
    """The device is back on site."""
    update = ActorInput(actor=caller)
    return await _act(
        handle, RepairOrderWorkflow.back_from_workshop, update, "return from the workshop", caller
    )


@router.post("/{order_id}/hazard", responses=ACTION_PROBLEMS)
async def report_hazard(
    body: HazardBody, handle: OrderHandle, caller: Annotated[Actor, Depends(may("report a hazard"))]
) -> OrderPublic:
    """Gas, live electricity, structural danger: all work stops."""
    update = HazardInput(actor=caller, description=body.description)
    return await _act(handle, RepairOrderWorkflow.report_hazard, update, "report a hazard", caller)


@router.post("/{order_id}/hazard/clear", responses=ACTION_PROBLEMS)
async def clear_hazard(
    body: NoteBody, handle: OrderHandle, caller: Annotated[Actor, Depends(may("clear the hazard"))]
) -> OrderPublic:
    """A supervisor declares the site safe again."""
    update = NoteInput(actor=caller, note=body.note)
    return await _act(handle, RepairOrderWorkflow.clear_hazard, update, "clear the hazard", caller)


@router.post("/{order_id}/service-record", responses=ACTION_PROBLEMS)
async def submit_service_record(
    body: ServiceRecord,
    handle: OrderHandle,
    caller: Annotated[Actor, Depends(may("submit the service record"))],
) -> OrderPublic:
    """What was repaired, how, with which parts, in how long, with photos."""
    update = ServiceRecordInput(actor=caller, record=body)
    return await _act(
        handle,
        RepairOrderWorkflow.submit_service_record,
        update,
        "submit the service record",
        caller,
    )


@router.post("/{order_id}/complete", responses=ACTION_PROBLEMS)
async def complete(
    handle: OrderHandle, caller: Annotated[Actor, Depends(may("complete"))]
) -> OrderPublic:
    """Work finished: needs the service record and, where there is a quote, its approval."""
    return await _act(
        handle, RepairOrderWorkflow.complete, ActorInput(actor=caller), "complete", caller
    )


# ---- after the work --------------------------------------------------------------------------


@router.post("/{order_id}/acceptance", responses=ACTION_PROBLEMS)
async def record_acceptance(
    body: AcceptanceBody,
    handle: OrderHandle,
    caller: Annotated[Actor, Depends(may("record acceptance"))],
) -> OrderPublic:
    """The customer accepts the work, or rejects it with a reason (rework)."""
    update = AcceptanceInput(
        actor=caller, accepted=body.accepted, reason=body.reason, signature=body.signature
    )
    return await _act(
        handle, RepairOrderWorkflow.record_acceptance, update, "record acceptance", caller
    )


@router.post("/{order_id}/survey", responses=ACTION_PROBLEMS)
async def answer_survey(
    body: Survey, handle: OrderHandle, caller: Annotated[Actor, Depends(may("answer the survey"))]
) -> OrderPublic:
    """Satisfaction, 1-5 on attitude, quality, result and speed."""
    update = SurveyInput(actor=caller, survey=body)
    return await _act(
        handle, RepairOrderWorkflow.answer_survey, update, "answer the survey", caller
    )


@router.post(
    "/{order_id}/warranty-claims",
    status_code=status.HTTP_201_CREATED,
    responses=ACTION_PROBLEMS | problems(429),
)
async def claim_warranty(
    body: ClaimBody,
    handle: OrderHandle,
    caller: Annotated[Actor, Depends(may("claim warranty"))],
    session: SessionDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> ClaimCreatedPublic:
    """The same fault is back within the warranty window: a free re-repair order is started.
    A retry with the same Idempotency-Key answers the claim the first call made."""
    update = ClaimInput(actor=caller, description=body.description)
    created = await act_on_order(
        handle,
        RepairOrderWorkflow.claim_warranty,
        update,
        "claim warranty",
        update_id=await update_id_for_key(
            session, "claim-warranty", handle.id, idempotency_key, body
        ),
    )
    return ClaimCreatedPublic(claim_order_id=created.claim_order_id)
