"""What the API answers: the contract's shapes, built from the workflow's state, with personal
data only for the roles that need it."""

from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from pydantic import BaseModel, Field, TypeAdapter, create_model

from core.personal import Opener
from models.order import (
    ANSWERED_PARTS,
    Acceptance,
    ActionDone,
    Actor,
    Appliance,
    ChargeLine,
    Clock,
    ComplaintSummary,
    Diagnosis,
    Escalation,
    Offer,
    Order,
    OrderSource,
    PartRequest,
    PendingWrites,
    PricedItem,
    Quote,
    QuotePart,
    QuoteStatus,
    Role,
    SealedCustomer,
    ServiceRecord,
    SlaClock,
    Stage,
    Survey,
    TimelineEntry,
    TimeWindow,
    Warranty,
    WarrantyStatus,
    owns_order,
)


class WarrantyPublic(BaseModel):
    status: WarrantyStatus
    product_until: date | None = None


class CustomerPublic(BaseModel):
    region: str
    locale: str
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    address: str | None = None
    # Shown to the roles that see personal data: true once the order's personal data is erased
    # (privacy.erase_personal_data_after), and the four fields above are then null.
    personal_data_erased: bool | None = None


class QuotePublic(BaseModel):
    items: list[PricedItem]
    parts: list[QuotePart]
    visit_fee: Decimal | None
    total: Decimal
    status: QuoteStatus


class ChargesPublic(BaseModel):
    currency: str
    lines: list[ChargeLine]
    total: Decimal


class SlaClockPublic(BaseModel):
    started_at: datetime
    deadline: datetime
    stopped_at: datetime | None = None
    paused: bool
    breached: bool
    breached_by: timedelta | None = None


class WarrantyWindowPublic(BaseModel):
    ends_at: datetime


class OrderPublic(BaseModel):
    order_id: str
    stage: Stage
    priority: str
    channel: str
    category: str
    region: str
    warranty: WarrantyPublic
    customer: CustomerPublic
    appliance: Appliance
    fault: str
    booked_at: datetime
    claim_of: str | None
    preferred_window: TimeWindow | None
    technician_id: str | None
    offer: Offer | None
    appointment: TimeWindow | None
    diagnosis: Diagnosis | None
    quote: QuotePublic | None
    parts_requested: list[PartRequest]
    service_record: ServiceRecord | None
    hazard: str | None
    charges: ChargesPublic
    sla: dict[str, SlaClockPublic]
    sla_breached: bool
    escalations: list[Escalation]
    rework_count: int
    needs_reassignment: bool
    acceptance: Acceptance | None
    survey: Survey | None
    warranty_window: WarrantyWindowPublic | None
    claims: list[str]
    open_claims: list[str]
    complaints: list[ComplaintSummary]
    closing: str | None
    cancellation_reason: str | None
    timeline: list[TimelineEntry]
    pending_writes: PendingWrites
    source: OrderSource = Field(
        default=OrderSource.ENGINE,
        description="engine: read from the order's workflow; archive: a closed order the "
        "engine no longer holds, as it was when archived",
    )


class BookingCreated(BaseModel):
    order_id: str
    stage: Stage
    warranty: WarrantyPublic
    customer_token: str


class ClaimCreatedPublic(BaseModel):
    claim_order_id: str


def sees_personal_data(caller: Actor, order: Order) -> bool:
    match caller.role:
        case Role.STAFF | Role.SUPERVISOR:
            return True
        case Role.CUSTOMER:
            return owns_order(caller, order.order_id)
        case Role.TECHNICIAN:
            return caller.technician_id is not None and caller.technician_id == order.technician_id
        case _:
            return False


async def customer_view(
    customer: SealedCustomer, *, personal: bool, opener: Opener
) -> CustomerPublic:
    public = CustomerPublic(region=customer.region, locale=customer.locale)
    if not personal:
        return public
    if await opener.erased(customer.name):
        return public.model_copy(update={"personal_data_erased": True})
    return public.model_copy(
        update={
            "name": await opener.open(customer.name),
            "phone": await opener.open(customer.phone),
            "email": await opener.open(customer.email),
            "address": await opener.open(customer.address),
            "personal_data_erased": False,
        }
    )


def warranty_view(warranty: Warranty) -> WarrantyPublic:
    return WarrantyPublic(status=warranty.status, product_until=warranty.product_until)


def quote_view(quote: Quote | None) -> QuotePublic | None:
    if quote is None:
        return None
    return QuotePublic(
        items=list(quote.items),
        parts=list(quote.parts),
        visit_fee=quote.visit_fee,
        total=quote.total,
        status=quote.status,
    )


def sla_view(sla: dict[Clock, SlaClock]) -> dict[str, SlaClockPublic]:
    return {
        str(name): SlaClockPublic(
            started_at=clock.started_at,
            deadline=clock.deadline,
            stopped_at=clock.stopped_at,
            paused=clock.paused_at is not None,
            breached=clock.breached,
            breached_by=clock.breached_by,
        )
        for name, clock in sla.items()
    }


# How each part of the order is shown: Order field -> (public field -> its view). A field not
# named here is shown as it is, under its own name.
VIEWS: dict[str, dict[str, Callable[[Order], Any]]] = {
    "warranty": {"warranty": lambda order: warranty_view(order.warranty)},
    "fault": {"fault": lambda order: order.fault.description},
    "quote": {"quote": lambda order: quote_view(order.quote)},
    "parts_requested": {"parts_requested": lambda order: list(order.parts_requested)},
    "charges": {
        "charges": lambda order: ChargesPublic(
            currency=order.charges.currency,
            lines=list(order.charges.lines),
            total=order.charges.total,
        )
    },
    "sla": {
        "sla": lambda order: sla_view(order.sla),
        "sla_breached": lambda order: order.sla_breached,
    },
    "warranty_window_ends_at": {
        "warranty_window": lambda order: (
            WarrantyWindowPublic(ends_at=order.warranty_window_ends_at)
            if order.warranty_window_ends_at
            else None
        )
    },
}


def part_views(order: Order, parts: Iterable[str]) -> dict[str, Any]:
    """The public fields that show these parts of the order."""
    shown: dict[str, Any] = {}
    for part in parts:
        views = VIEWS.get(part, {part: lambda order, part=part: getattr(order, part)})
        shown.update((field, view(order)) for field, view in views.items())
    return shown


async def order_view(
    order: Order, caller: Actor, opener: Opener, *, source: OrderSource = OrderSource.ENGINE
) -> OrderPublic:
    personal = sees_personal_data(caller, order)
    return OrderPublic(
        source=source,
        **part_views(order, ANSWERED_PARTS),
        order_id=order.order_id,
        stage=order.stage,
        customer=await customer_view(order.customer, personal=personal, opener=opener),
        timeline=order.timeline,
        pending_writes=order.pending_writes,
    )


def _summary_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {"seq": (int, ...)}
    for name, field in OrderPublic.model_fields.items():
        if name == "source":  # an action is always answered by the workflow
            continue
        annotation: Any = field.annotation
        fields[name] = (
            (annotation, ...)
            if name in {"order_id", "stage"}
            else (
                annotation | None,
                None,
            )
        )
    return fields


# An action's answer: the order's summary and the parts the action changed (api.md).
OrderSummary = create_model(
    "OrderSummary",
    __doc__="The order's summary after an action: `order_id`, `stage`, `seq` (its latest "
    "event) and the parts of the order the action changed; with `Prefer: "
    "return=representation`, the whole order.",
    **_summary_fields(),
)
PART_TYPES: dict[str, TypeAdapter[Any]] = {
    part: TypeAdapter(cast(Any, Order.model_fields[part].annotation)) for part in ANSWERED_PARTS
}


def summary_view(done: ActionDone) -> dict[str, Any]:
    """What an action answers, built from the update's result alone."""
    parts = {part: PART_TYPES[part].validate_python(value) for part, value in done.changed.items()}
    partial = Order.model_construct(**parts)
    return {
        "order_id": done.order_id,
        "stage": done.stage,
        "seq": done.seq,
        **part_views(partial, parts),
    }
