"""What the API answers: the contract's shapes, built from the workflow's state, with personal
data only for the roles that need it."""

from datetime import date, datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel

from models.order import (
    Actor,
    ChargeLine,
    Customer,
    Order,
    Role,
    Stage,
    TimelineEntry,
    TimeWindow,
    Warranty,
    WarrantyStatus,
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


class ChargesPublic(BaseModel):
    currency: str
    lines: list[ChargeLine]
    total: Decimal


class SlaClockPublic(BaseModel):
    started_at: datetime
    deadline: datetime
    stopped_at: datetime | None = None
    breached: bool
    breached_by: timedelta | None = None


class OrderPublic(BaseModel):
    order_id: str
    stage: Stage
    priority: str
    channel: str
    category: str
    region: str
    warranty: WarrantyPublic
    customer: CustomerPublic
    technician_id: str | None = None
    appointment: TimeWindow | None = None
    charges: ChargesPublic
    sla: dict[str, SlaClockPublic]
    rework_count: int
    booked_at: datetime
    timeline: list[TimelineEntry]


class BookingCreated(BaseModel):
    order_id: str
    stage: Stage
    warranty: WarrantyPublic
    customer_token: str


def sees_personal_data(caller: Actor, order: Order) -> bool:
    match caller.role:
        case Role.STAFF | Role.SUPERVISOR:
            return True
        case Role.CUSTOMER:
            return caller.order_id == order.order_id
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
    return OrderPublic(
        order_id=order.order_id,
        stage=order.stage,
        priority=order.priority,
        channel=order.channel,
        category=order.category,
        region=order.region,
        warranty=warranty_view(order.warranty),
        customer=customer_view(order.customer, personal=sees_personal_data(caller, order)),
        technician_id=order.technician_id,
        appointment=order.appointment,
        charges=ChargesPublic(
            currency=order.charges.currency,
            lines=list(order.charges.lines),
            total=order.charges.total,
        ),
        sla={name: SlaClockPublic(**clock.model_dump()) for name, clock in order.sla.items()},
        rework_count=order.rework_count,
        booked_at=order.booked_at,
        timeline=order.timeline,
    )
