"""Plain factories for what tests book and who acts."""

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from models.catalog import Category
from models.order import (
    Actor,
    Appliance,
    Booking,
    Channel,
    Customer,
    Diagnosis,
    Fault,
    OrderBooking,
    OrderEvent,
    OrderInput,
    OrderSnapshot,
    Priority,
    QuoteItem,
    QuoteRequest,
    RecordInput,
    Role,
    SealedCustomer,
    ServiceRecord,
    Stage,
    Survey,
    TimeWindow,
    WarrantyStatus,
    settle_warranty,
)
from models.policy import Policy
from models.technician import Candidate, Schedule

# When the orders the records factories describe were booked.
BOOKED_AT = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def create_booking_json(**overrides: Any) -> dict[str, Any]:
    booking: dict[str, Any] = {
        "customer": {
            "name": "Li Wei",
            "phone": "+86 138 0013 8000",
            "email": "li.wei@example.com",
            "address": "88 Century Avenue, Pudong",
            "region": "pudong",
        },
        "appliance": {
            "category": "refrigerator",
            "brand": "Haier",
            "purchase_date": "2026-06-01",
            "proof_of_purchase": True,
        },
        "fault": {"description": "not cooling"},
        "priority": "normal",
        "channel": "phone",
    }
    return booking | overrides


def create_booking(**overrides: Any) -> Booking:
    return Booking(
        customer=Customer(
            name="Li Wei", phone="+86 138 0013 8000", address="88 Century Ave", region="pudong"
        ),
        appliance=overrides.pop(
            "appliance",
            Appliance(
                category=Category.REFRIGERATOR,
                purchase_date=date(2026, 6, 1),
                proof_of_purchase=True,
            ),
        ),
        fault=Fault(description="not cooling"),
        priority=Priority.NORMAL,
        channel=Channel.PHONE,
    ).model_copy(update=overrides)


def order_booking(booking: Booking) -> OrderBooking:
    """The booking as the workflow takes it, the customer's details left in clear (as orders
    booked before sealing hold them): the API seals them (core/personal.py), which needs the
    records store these workflow tests do without."""
    if isinstance(booking, OrderBooking):
        return booking
    customer = SealedCustomer(**dict(booking.customer))
    return OrderBooking(**(dict(booking) | {"customer": customer}))


def create_actor(role: Role = Role.STAFF, **overrides: Any) -> Actor:
    return Actor(subject=f"test-{role}", role=role, **overrides)


def create_order_input(
    order_id: str, *, booked_at: datetime | None = None, **overrides: Any
) -> OrderInput:
    policy = overrides.pop("policy", None) or create_policy()
    booking = order_booking(overrides.pop("booking", create_booking()))
    booked_at = booked_at or datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    return OrderInput(
        order_id=order_id,
        booking=booking,
        booked_by=create_actor(),
        booked_at=booked_at,
        warranty=settle_warranty(booking.appliance, booked_at.date(), policy),
        policy=policy,
        **overrides,
    )


def create_customer(**overrides: Any) -> Customer:
    fields: dict[str, Any] = {
        "name": "Li Wei",
        "phone": "+86 138 0013 8000",
        "email": "li.wei@example.com",
        "address": "88 Century Ave",
        "region": "pudong",
    }
    return Customer(**(fields | overrides))


def create_appliance(
    warranty: WarrantyStatus = WarrantyStatus.IN_WARRANTY,
    *,
    booked_on: date | None = None,
    **overrides: Any,
) -> Appliance:
    """An appliance whose product warranty, on `booked_on`, has the status asked for."""
    booked_on = booked_on or date(2026, 11, 20)
    fields: dict[str, Any] = {"category": Category.REFRIGERATOR, "brand": "Haier"}
    if warranty == WarrantyStatus.IN_WARRANTY:
        fields |= {"purchase_date": booked_on - timedelta(days=30), "proof_of_purchase": True}
    elif warranty == WarrantyStatus.OUT_OF_WARRANTY:
        fields |= {"purchase_date": booked_on - timedelta(days=730), "proof_of_purchase": True}
    else:
        fields |= {"purchase_date": None, "proof_of_purchase": False}
    return Appliance(**(fields | overrides))


def create_window(start: datetime, *, hours: int = 2) -> TimeWindow:
    return TimeWindow(start=start, end=start + timedelta(hours=hours))


# The price list the test orders are quoted from (the built-in policy publishes none).
PRICE_LIST = {"replace thermostat": "120.00"}


def create_policy(**sections: Any) -> Policy:
    """A policy as the TOML file would give it, e.g. create_policy(visit={"max_rework": 0}),
    with the test price list unless `charges` says otherwise."""
    return Policy.model_validate({"charges": {"labour": PRICE_LIST}} | sections)


def create_diagnosis(**overrides: Any) -> Diagnosis:
    fields: dict[str, Any] = {"fault_cause": "thermostat failed", "plan": "replace thermostat"}
    return Diagnosis(**(fields | overrides))


def create_quote_request(**overrides: Any) -> QuoteRequest:
    fields: dict[str, Any] = {
        "items": (QuoteItem(description="replace thermostat"),),  # priced from the list
    }
    return QuoteRequest(**(fields | overrides))


def create_service_record(**overrides: Any) -> ServiceRecord:
    fields: dict[str, Any] = {
        "repair_item": "replace thermostat",
        "fault_cause": "thermostat failed",
        "method": "replaced the thermostat and tested cooling for 20 minutes",
        "labour_minutes": 45,
        "photos_before": ("photos/before-1.jpg",),
        "photos_after": ("photos/after-1.jpg",),
    }
    return ServiceRecord(**(fields | overrides))


def create_survey(**overrides: Any) -> Survey:
    fields: dict[str, Any] = {"attitude": 5, "quality": 4, "result": 5, "speed": 3}
    return Survey(**(fields | overrides))


def create_candidate(technician_id: str, **overrides: Any) -> Candidate:
    """A technician as dispatch ranks them: in the region, with no open orders, on duty
    around the clock."""
    fields: dict[str, Any] = {
        "technician_id": technician_id,
        "in_region": True,
        "open_orders": 0,
        "schedule": Schedule.model_validate({"shifts": ROUND_THE_CLOCK}),
    }
    return Candidate(**fields | overrides)


# On duty around the clock, so that offers go out whenever a test runs.
ROUND_THE_CLOCK = [
    {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00", "end": "00:00"}
]


def create_technician_json(**overrides: Any) -> dict[str, Any]:
    """A technician as the admin registers one, with certificates valid for another year, on
    duty around the clock."""
    next_year = (datetime.now(UTC) + timedelta(days=365)).date().isoformat()
    technician: dict[str, Any] = {
        "id": f"T-{uuid.uuid4().hex[:8]}",
        "name": "Zhang San",
        "phone": "+86 139 0000 1111",
        "skills": ["refrigerator", "gas_stove"],
        "regions": ["pudong"],
        "certificates": [
            {"type": "appliance_repair", "number": "AR-1", "valid_until": next_year},
            {"type": "gas", "number": "G-1", "valid_until": next_year},
        ],
        "shifts": ROUND_THE_CLOCK,
    }
    return technician | overrides


def create_record_input(
    seq: int, stage: Stage, *, order_id: str = "RF261120-ABC123", **snapshot: Any
) -> RecordInput:
    """Event `seq` of an order and the read model as it stands right after it."""
    at = BOOKED_AT + timedelta(minutes=seq)
    fields: dict[str, Any] = {
        "order_id": order_id,
        "stage": stage,
        "priority": Priority.NORMAL,
        "channel": Channel.PHONE,
        "category": Category.REFRIGERATOR,
        "region": "pudong",
        "technician_id": None,
        "warranty_status": WarrantyStatus.IN_WARRANTY,
        "sla_breached": False,
        "currency": "CNY",
        "total": Decimal("0.00"),
        "booked_at": BOOKED_AT,
        "updated_at": at,
        "customer_name": "Li Wei",
        "customer_phone": "+86 138 0013 8000",
    }
    return RecordInput(
        snapshot=OrderSnapshot(**(fields | snapshot)),
        event=OrderEvent(
            order_id=order_id, seq=seq, at=at, actor="system", action=f"stage:{stage}"
        ),
    )
