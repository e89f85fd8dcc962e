from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response, status
from pydantic import BaseModel, ConfigDict

from api.deps import OrderHandle, SessionDep, SettingsDep, TemporalDep, VisibleOrder, role
from api.errors import PROBLEM_JSON
from api.orders import act_on_order, book, read_order
from api.views import BookingCreated, OrderPublic, order_view, warranty_view
from core.tokens import mint_token
from models.order import Actor, Booking, CancelInput, Role, Stage, Text
from workflows.repair_order import RepairOrderWorkflow

router = APIRouter(prefix="/v1/orders", tags=["orders"])


def _problems(*codes: int) -> dict[int | str, dict[str, object]]:
    return {code: {"content": {PROBLEM_JSON: {}}, "description": "problem+json"} for code in codes}


Staff = Annotated[Actor, Depends(role(Role.STAFF))]
StaffOrCustomer = Annotated[Actor, Depends(role(Role.STAFF, Role.CUSTOMER))]
AnyRole = Annotated[Actor, Depends(role(*Role))]


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Text


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=_problems(401, 403, 409, 422, 503) | {200: {"model": BookingCreated}},
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
    assert settings.auth_secret is not None  # the app refuses to start without one
    token = mint_token(
        settings.auth_secret.get_secret_value(),
        subject=f"customer:{order_input.order_id}",
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


@router.get("/{order_id}", responses=_problems(401, 403, 404, 503))
async def get_order(order: VisibleOrder, caller: AnyRole) -> OrderPublic:
    """The whole order, as far as the caller may see it."""
    return order_view(order, caller)


@router.post("/{order_id}/cancel", responses=_problems(401, 403, 404, 409, 422, 503))
async def cancel_order(
    body: CancelBody, handle: OrderHandle, caller: StaffOrCustomer
) -> OrderPublic:
    """Cancel before check-in."""
    order = await act_on_order(
        handle, RepairOrderWorkflow.cancel, CancelInput(actor=caller, reason=body.reason), "cancel"
    )
    return order_view(order, caller)
