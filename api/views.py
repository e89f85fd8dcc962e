"""What the API answers: the contract's shapes, built from the workflow's state, with personal
data only for the roles that need it."""

from datetime import date, datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel

from models.order import (
    Acceptance,
    Actor,
    Appliance,
    ChargeLine,
    ComplaintSummary,
    Customer,
    Diagnosis,
    Escalation,
    Offer,
    Order,
    PartRequest,
    PendingWrites,
    PricedItem,
    QuotePart,
    QuoteStatus,
    Role,
    ServiceRecord,
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


def customer_view(customer: Customer, *, personal: bool) -> CustomerPublic:
    public = CustomerPublic(region=customer.region, locale=customer.locale)
    if personal:
        public = public.model_copy(
            update=customer.model_dump(include={"name", "phone", "email", "address"})
        )
    return public


def warranty_view(warranty: Warranty) -> WarrantyPublic:
    return WarrantyPublic(status=warranty.status, product_until=warranty.product_until)


def order_view(order: Order, caller: Actor) -> OrderPublic:
    quote = order.quote
    return OrderPublic(
        order_id=order.order_id,
        stage=order.stage,
        priority=order.priority,
        channel=order.channel,
        category=order.category,
        region=order.region,
        warranty=warranty_view(order.warranty),
        customer=customer_view(order.customer, personal=sees_personal_data(caller, order)),
        appliance=order.appliance,
        fault=order.fault.description,
        booked_at=order.booked_at,
        claim_of=order.claim_of,
        preferred_window=order.preferred_window,
        technician_id=order.technician_id,
        offer=order.offer,
        appointment=order.appointment,
        diagnosis=order.diagnosis,
        quote=QuotePublic(
            items=list(quote.items),
            parts=list(quote.parts),
            visit_fee=quote.visit_fee,
            total=quote.total,
            status=quote.status,
        )
        if quote
        else None,
        parts_requested=list(order.parts_requested),
        service_record=order.service_record,
        hazard=order.hazard,
        charges=ChargesPublic(
            currency=order.charges.currency,
            lines=list(order.charges.lines),
            total=order.charges.total,
        ),
        sla={
            str(name): SlaClockPublic(
                started_at=clock.started_at,
                deadline=clock.deadline,
                stopped_at=clock.stopped_at,
                paused=clock.paused_at is not None,
                breached=clock.breached,
                breached_by=clock.breached_by,
            )
            for name, clock in order.sla.items()
        },
        sla_breached=order.sla_breached,
        escalations=order.escalations,
        rework_count=order.rework_count,
        needs_reassignment=order.needs_reassignment,
        acceptance=order.acceptance,
        survey=order.survey,
        warranty_window=WarrantyWindowPublic(ends_at=order.warranty_window_ends_at)
        if order.warranty_window_ends_at
        else None,
        claims=order.claims,
        open_claims=order.open_claims,
        complaints=order.complaints,
        closing=order.closing,
        cancellation_reason=order.cancellation_reason,
        timeline=order.timeline,
        pending_writes=order.pending_writes,
    )
