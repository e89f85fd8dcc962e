"""Order routes: each turns one call into a workflow start, an update or a query; lists and
the audit log read the records store."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Header, Query, Response, status
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)

from api.deps import (
    KeyPoolDep,
    OpenerDep,
    OrderId,
    SessionDep,
    SettingsDep,
    TemporalDep,
    VisibleOrder,
    role,
)
from api.errors import Forbidden, NotFound, Unprocessable, problems
from api.orders import book, check_window, current_stage
from api.views import BookingCreated, OrderPublic, order_view, warranty_view
from core import queries
from core.cursor import BadCursor
from core.tokens import mint_token
from models.catalog import Category
from models.fields import Moment, ShortText
from models.order import (
    Actor,
    Booking,
    Channel,
    Priority,
    Role,
    Stage,
    WarrantyStatus,
    local_date,
)

router = APIRouter(prefix="/v1/orders", tags=["orders"])
ArgT = TypeVar("ArgT")


ACTION_PROBLEMS = problems(401, 403, 404, 409, 422, 503)

Staff = Annotated[Actor, Depends(role(Role.STAFF))]
AnyRole = Annotated[Actor, Depends(role(*Role))]


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
    keys: KeyPoolDep,
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
        keys=keys,
    )
    stage = Stage.BOOKED
    if not created:
        response.status_code = status.HTTP_200_OK
        stage = await current_stage(temporal.get_workflow_handle(order_input.order_id))
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
async def get_order(found: VisibleOrder, caller: AnyRole, opener: OpenerDep) -> OrderPublic:
    """The whole order, as far as the caller may see it. A closed order the engine no longer
    holds (after the namespace's retention) is answered from the archive: `source` says so."""
    return await order_view(found.order, caller, opener, source=found.source)


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
    try:
        page = await queries.list_orders(
            session,
            stage=filters.stage,
            technician_id=technician_id,
            priority=filters.priority,
            region=filters.region,
            sla_breached=filters.sla_breached,
            booked_from=start,
            booked_to=end,
            limit=filters.limit,
            cursor=filters.cursor,
        )
    except BadCursor:
        raise Unprocessable("query.cursor: not a cursor this list gave out") from None
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
            for row in page.rows
        ],
        next_cursor=page.next_cursor,
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
    checked = await queries.order_events(session, order_id)
    if checked is None:
        raise NotFound("no such order")
    return EventLog(
        events=[EventPublic.model_validate(row, from_attributes=True) for row in checked.events],
        chain_ok=checked.first_bad_seq is None,
        first_bad_seq=checked.first_bad_seq,
    )
