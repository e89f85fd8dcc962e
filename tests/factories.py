"""Plain factories for what tests book and who acts."""

from datetime import UTC, date, datetime
from typing import Any

from models.catalog import Category
from models.order import (
    Actor,
    Appliance,
    Booking,
    Channel,
    Customer,
    Fault,
    OrderInput,
    Priority,
    Role,
    settle_warranty,
)
from models.policy import Policy


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


def create_actor(role: Role = Role.STAFF, **overrides: Any) -> Actor:
    return Actor(subject=f"test-{role}", role=role, **overrides)


def create_order_input(
    order_id: str, *, booked_at: datetime | None = None, **overrides: Any
) -> OrderInput:
    policy = overrides.pop("policy", Policy())
    booking = overrides.pop("booking", create_booking())
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
