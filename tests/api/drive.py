"""Driving orders and complaints through the HTTP API as the staff console, the technicians'
app and the customer's link do: the bodies they send, booking, moving an order up to a step
with the header of each party, and reading what a refusal answers."""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col, select

from models.records import NotificationRow
from tests.api.client import Auth
from tests.factories import create_booking_json, create_technician_json
from tests.waiting import eventually

Json = dict[str, Any]
Headers = dict[str, str]
Role = Literal["staff", "supervisor", "technician", "customer", "auditor", "admin"]
Step = Literal[
    "booked",
    "assigned",
    "appointment",
    "checked_in",
    "diagnosed",
    "quote_approved",
    "service_record",
    "completed",
    "accepted",
]
STEPS: tuple[Step, ...] = get_args(Step)
PROBLEM_JSON = "application/problem+json"
OUT_OF_WARRANTY = {
    "category": "refrigerator",
    "purchase_date": "2019-03-15",
    "proof_of_purchase": True,
}
QUOTE: Json = {
    "items": [{"description": "replace thermostat", "amount": "80.00"}],
    "parts": [{"part_no": "TH-220", "description": "thermostat", "qty": 1, "unit_cost": "45.00"}],
}
SERVICE_RECORD: Json = {
    "repair_item": "thermostat",
    "fault_cause": "thermostat stuck open",
    "method": "replaced the thermostat and tested cooling",
    "parts_replaced": [{"part_no": "TH-220", "qty": 1, "unit_cost": "45.00"}],
    "labour_minutes": 45,
    "photos_before": ["photo://before-1"],
    "photos_after": ["photo://after-1"],
}
DIAGNOSIS: Json = {"fault_cause": "thermostat stuck open", "plan": "replace the thermostat"}
COMPLAINT: Json = {
    "category": "attitude",
    "description": "the technician left a mess",
    "concerns_work": True,
}


def window(days: int = 1, hours: int = 2) -> Json:
    """A visit window in the future, with a UTC offset, as a client sends it."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)
    return {"start": start.isoformat(), "end": (start + timedelta(hours=hours)).isoformat()}


async def new_technician_id(api: httpx.AsyncClient, auth: Auth) -> str:
    """A technician registered for the appliances these tests book, in their region."""
    technician = create_technician_json(
        id=f"T-{uuid.uuid4().hex[:10].upper()}",
        skills=["refrigerator", "washing_machine", "gas_stove", "air_conditioner"],
    )
    response = await api.post("/v1/technicians", json=technician, headers=auth("admin"))
    assert response.status_code == 201, response.text
    return str(technician["id"])


@dataclass(frozen=True)
class Driven:
    """An order moved through the API, with the Authorization header of each party."""

    order_id: str
    technician_id: str
    headers: dict[Role, Headers]
    answer: Json  # the last answer on the way

    @property
    def url(self) -> str:
        return f"/v1/orders/{self.order_id}"

    def by(self, role: Role) -> Headers:
        """The caller of a role: the assigned technician, the order's own customer link."""
        return self.headers[role]


Drive = Callable[..., Awaitable[Driven]]


async def book(api: httpx.AsyncClient, auth: Auth, **overrides: Any) -> Json:
    response = await api.post(
        "/v1/orders", json=create_booking_json(**overrides), headers=auth("staff")
    )
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


def driver(api: httpx.AsyncClient, auth: Auth) -> Drive:
    """Book an order and move it through the API up to and including a step.

    Confirming a time is its own step: check-in needs only the assignment, so the drive
    confirms an appointment only when asked to (or when driving to "appointment").
    Out-of-warranty orders are quoted at diagnosis and the customer approves the quote; a
    supervisor first authorizes a quote with labour off the price list (the built-in policy
    publishes none, so every amount is off it).
    """

    async def to(
        until: Step,
        *,
        appointment: bool = False,
        out_of_warranty: bool = False,
        quote: Json | None = None,
        **booking: Any,
    ) -> Driven:
        if out_of_warranty:
            booking.setdefault("appliance", OUT_OF_WARRANTY)
        created = await book(api, auth, **booking)
        order_id, technician_id = created["order_id"], await new_technician_id(api, auth)
        # Dispatch starts on its own: let its first step (an offer, or an escalation when
        # nobody qualifies) land, so the checks that a refusal changed nothing compare
        # like with like.
        settled = await eventually(
            lambda: api.get(f"/v1/orders/{order_id}", headers=auth("staff")),
            lambda response: bool(response.json()["offer"] or response.json()["escalations"]),
        )
        assert settled.status_code == 200, settled.text
        headers: dict[Role, Headers] = {
            "staff": auth("staff"),
            "supervisor": auth("supervisor"),
            "technician": auth("technician", technician_id=technician_id),
            "customer": {"Authorization": f"Bearer {created['customer_token']}"},
            "auditor": auth("auditor"),
            "admin": auth("admin"),
        }
        chargeable = created["warranty"]["status"] != "in_warranty"
        quote = quote if quote is not None else (QUOTE if chargeable else None)
        actions: dict[Step, tuple[str, Role, Json | None]] = {
            "assigned": ("assign", "staff", {"technician_id": technician_id}),
            "appointment": ("appointment", "technician", window()),
            "checked_in": ("check-in", "technician", None),
            "diagnosed": (
                "diagnosis",
                "technician",
                DIAGNOSIS | ({"quote": quote} if quote else {}),
            ),
            "quote_approved": ("quote/approve", "customer", None),
            "service_record": ("service-record", "technician", SERVICE_RECORD),
            "completed": ("complete", "technician", None),
            "accepted": ("acceptance", "customer", {"accepted": True, "signature": "sig-1"}),
        }
        answer: Json = created
        for step in STEPS[1 : STEPS.index(until) + 1]:
            if step == "quote_approved" and quote is None:
                continue
            if step == "appointment" and not (appointment or until == "appointment"):
                continue
            path, role, body = actions[step]
            response = await api.post(
                f"/v1/orders/{order_id}/{path}", json=body, headers=headers[role]
            )
            assert response.status_code == 200, f"{step}: {response.text}"
            answer = response.json()
            if awaits_supervisor(answer):
                response = await api.post(
                    f"/v1/orders/{order_id}/quote/authorize", headers=headers["supervisor"]
                )
                assert response.status_code == 200, f"authorize the quote: {response.text}"
                answer = response.json()
        return Driven(order_id, technician_id, headers, answer)

    return to


def awaits_supervisor(answer: Json) -> bool:
    quote = answer.get("quote")  # an action answers the parts it changed
    return quote is not None and quote["status"] == "awaiting_supervisor"


async def state(api: httpx.AsyncClient, order: Driven) -> tuple[str, int]:
    """What a refusal must leave alone: the stage and the timeline's length."""
    response = await api.get(order.url, headers=order.by("staff"))
    assert response.status_code == 200, response.text
    body: Json = response.json()
    # A notification that could not be delivered is logged later, by the workflow itself.
    timeline = [e for e in body["timeline"] if e["action"] != "notification failed"]
    return body["stage"], len(timeline)


def problem(response: httpx.Response, status: int) -> Json:
    """The answer is problem+json with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: Json = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


async def refused(
    api: httpx.AsyncClient,
    order: Driven,
    path: str,
    *,
    by: Headers,
    status: int,
    json: Json | None = None,
) -> Json:
    """Post an action that must be refused; the order is the same afterwards."""
    before = await state(api, order)
    response = await api.post(f"{order.url}/{path}", json=json, headers=by)
    body = problem(response, status)
    assert await state(api, order) == before, f"{path} changed the order although refused"
    return body


async def act(
    api: httpx.AsyncClient, complaint_id: str, action: str, headers: Headers, **body: Any
) -> httpx.Response:
    """Take an action on a complaint (acknowledge, resolve, follow-up)."""
    return await api.post(f"/v1/complaints/{complaint_id}/{action}", json=body, headers=headers)


async def messages_sent(engine: AsyncEngine, order_id: str, template: str) -> list[NotificationRow]:
    """The order's messages of a template, as the records store keeps them."""
    async with AsyncSession(engine) as session:
        rows = await session.scalars(
            select(NotificationRow).where(
                col(NotificationRow.order_id) == order_id,
                col(NotificationRow.template) == template,
            )
        )
        return list(rows.all())
