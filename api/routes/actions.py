"""The order actions over HTTP, generated from the action table (models.actions).

Each action is one row here: its path, what it does, its body and how the body becomes the
workflow update's input. The route is written once per kind of body: none (the input is the
caller alone), the input's own fields minus the caller, or one model the input wraps.
"""

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Response, status
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import WorkflowHandle

from api.deps import OrderHandle, SessionDep, SettingsDep, may
from api.errors import Conflict, Forbidden, NotFound, Unprocessable, problems
from api.orders import act_on_order, check_window, read_order, update_id_for_key
from api.views import (
    ClaimCreatedPublic,
    OrderSummary,
    customer_view,
    order_view,
    sees_personal_data,
    summary_view,
)
from core.personal import Opener, seal, sealed_key_id
from core.queries import technician_qualifications
from core.settings import Settings
from models.actions import ACTIONS, Action
from models.fields import Moment, ShortText, Text
from models.order import (
    AcceptanceInput,
    ActionDone,
    Actor,
    ActorInput,
    AssignInput,
    CancelInput,
    ClaimCreated,
    ClaimInput,
    ContactCorrection,
    DetailsInput,
    Diagnosis,
    DiagnosisInput,
    Email,
    Exclusion,
    Fault,
    HazardInput,
    NoteInput,
    Order,
    PartRequest,
    PartsInput,
    Phone,
    QuoteRequest,
    ReasonInput,
    Role,
    ServiceRecord,
    ServiceRecordInput,
    Survey,
    SurveyInput,
    TimeWindow,
    WindowInput,
    require_reason_if_rejected,
    visit_day,
)
from models.technician import unqualified_because

router = APIRouter(prefix="/v1/orders", tags=["orders"])

ACTION_PROBLEMS = problems(401, 403, 404, 409, 422, 503)
PREFER = (
    "`return=representation` answers the whole order, as GET /v1/orders/{order_id} does, "
    "instead of its summary"
)


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
    expected_by: Moment | None = Field(
        default=None,
        description="when the parts should arrive, as the customer is told; by default the"
        " parts-dispatch deadline",
    )


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


# ---- checks against the world outside the order, before the update is sent ----------------


@dataclass(frozen=True)
class ActionCall:
    handle: WorkflowHandle[Any, Any]
    caller: Actor
    body: Any
    session: AsyncSession
    settings: Settings


async def check_qualified(
    call: ActionCall, order: Order, technician_id: str, action: Action
) -> None:
    """The technician must be registered and qualified on the visit day: a certificate that
    lapses before the appointment rules them out (409), as does a suspension."""
    qualifications = await technician_qualifications(call.session, technician_id)
    if qualifications is None:
        raise NotFound(f"no technician {technician_id}")
    reason = unqualified_because(
        qualifications,
        order.category,
        order.appliance.gas_fired,
        visit_day(order, call.settings.policy),
    )
    if reason is not None:
        raise Conflict(f"cannot {ACTIONS[action].wording}: order is {order.stage}; {reason}")


async def window_fits(call: ActionCall) -> None:
    """A rescheduled window must suit the assigned technician's qualifications on its day."""
    check_window(call.body, call.settings, "body")
    order = await read_order(call.handle)
    if order.technician_id is not None:
        moved = order.model_copy(update={"appointment": None, "preferred_window": call.body})
        await check_qualified(call, moved, order.technician_id, Action.RESCHEDULE)


async def appointment_fits(call: ActionCall) -> None:
    check_window(call.body, call.settings, "body")
    order = await read_order(call.handle)
    technician_id = order.technician_id
    if technician_id is not None and technician_id == call.caller.technician_id:
        agreed = order.model_copy(update={"appointment": call.body})
        await check_qualified(call, agreed, technician_id, Action.CONFIRM_APPOINTMENT)


async def parts_expected_later(call: ActionCall) -> None:
    expected_by = call.body.expected_by
    if expected_by is not None and expected_by <= datetime.now(UTC):
        raise Unprocessable("body.expected_by: must be in the future")


async def technician_fits(call: ActionCall) -> None:
    order = await read_order(call.handle)
    await check_qualified(call, order, call.body.technician_id, Action.ASSIGN)


# ---- the routes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionRoute:
    action: Action
    path: str
    description: str
    body: type[BaseModel] | None
    to_input: Callable[[Actor, Any], BaseModel]
    check: Callable[[ActionCall], Awaitable[None]] | None = None


def caller_only(actor: Actor, _: None) -> BaseModel:
    return ActorInput(actor=actor)


def fields_of(input_type: type[BaseModel]) -> Callable[[Actor, Any], BaseModel]:
    """The body is the input's own fields; the caller is added."""
    return lambda actor, body: input_type(actor=actor, **dict(body))


def wrapping(input_type: type[BaseModel], field: str) -> Callable[[Actor, Any], BaseModel]:
    """The body is one model the input holds next to the caller."""
    return lambda actor, body: input_type(**{"actor": actor, field: body})


def diagnosis(actor: Actor, body: DiagnosisBody) -> BaseModel:
    found = Diagnosis(
        fault_cause=body.fault_cause, plan=body.plan, warranty_exclusion=body.warranty_exclusion
    )
    return DiagnosisInput(actor=actor, diagnosis=found, quote=body.quote)


ROUTES = (
    ActionRoute(
        Action.RESCHEDULE,
        "/reschedule",
        "Move the visit window; the technician must confirm the new time.",
        TimeWindow,
        wrapping(WindowInput, "window"),
        window_fits,
    ),
    ActionRoute(
        Action.CANCEL,
        "/cancel",
        "Cancel before check-in (a supervisor also during a safety stop).",
        ReasonBody,
        fields_of(CancelInput),
    ),
    ActionRoute(
        Action.ASSIGN,
        "/assign",
        "Assign or reassign the order to a registered technician qualified for it.",
        AssignBody,
        fields_of(AssignInput),
        technician_fits,
    ),
    ActionRoute(
        Action.ACCEPT_OFFER,
        "/offer/accept",
        "The technician holding the offer takes the job.",
        None,
        caller_only,
    ),
    ActionRoute(
        Action.DECLINE_OFFER,
        "/offer/decline",
        "The technician holding the offer turns it down; the next candidate is asked.",
        ReasonBody,
        fields_of(ReasonInput),
    ),
    ActionRoute(
        Action.CONFIRM_APPOINTMENT,
        "/appointment",
        "The assigned technician confirms the time agreed with the customer.",
        TimeWindow,
        wrapping(WindowInput, "window"),
        appointment_fits,
    ),
    ActionRoute(Action.CHECK_IN, "/check-in", "The technician has arrived.", None, caller_only),
    ActionRoute(
        Action.DIAGNOSE,
        "/diagnosis",
        "The fault found, the plan and, where the customer pays, the quote to approve.",
        DiagnosisBody,
        diagnosis,
    ),
    ActionRoute(
        Action.AUTHORIZE_QUOTE,
        "/quote/authorize",
        "A supervisor accepts a quote's labour prices that are off the price list; only then"
        " is it put to the customer.",
        None,
        caller_only,
    ),
    ActionRoute(
        Action.APPROVE_QUOTE,
        "/quote/approve",
        "The customer consents to the quote.",
        None,
        caller_only,
    ),
    ActionRoute(
        Action.DECLINE_QUOTE,
        "/quote/decline",
        "The customer declines: on a free order only the extras are dropped and the repair"
        " goes on; otherwise only the visit fee is due and the order closes.",
        None,
        caller_only,
    ),
    ActionRoute(
        Action.REQUEST_PARTS,
        "/parts",
        "A part is needed; the order waits for it.",
        PartsBody,
        fields_of(PartsInput),
        parts_expected_later,
    ),
    ActionRoute(
        Action.PARTS_ARRIVED,
        "/parts/arrived",
        "The parts are here; back on site.",
        None,
        caller_only,
    ),
    ActionRoute(
        Action.TO_WORKSHOP,
        "/workshop",
        "A complex fault: the device goes to the workshop.",
        None,
        caller_only,
    ),
    ActionRoute(
        Action.BACK_FROM_WORKSHOP,
        "/workshop/return",
        "The device is back on site.",
        None,
        caller_only,
    ),
    ActionRoute(
        Action.REPORT_HAZARD,
        "/hazard",
        "Gas, live electricity, structural danger: all work stops.",
        HazardBody,
        fields_of(HazardInput),
    ),
    ActionRoute(
        Action.CLEAR_HAZARD,
        "/hazard/clear",
        "A supervisor declares the site safe again.",
        NoteBody,
        fields_of(NoteInput),
    ),
    ActionRoute(
        Action.SUBMIT_SERVICE_RECORD,
        "/service-record",
        "What was repaired, how, with which parts, in how long, with photos.",
        ServiceRecord,
        wrapping(ServiceRecordInput, "record"),
    ),
    ActionRoute(
        Action.COMPLETE,
        "/complete",
        "Work finished: needs the service record and, where there is a quote, its approval.",
        None,
        caller_only,
    ),
    ActionRoute(
        Action.RECORD_ACCEPTANCE,
        "/acceptance",
        "The customer accepts the work, or rejects it with a reason (rework).",
        AcceptanceBody,
        fields_of(AcceptanceInput),
    ),
    ActionRoute(
        Action.ANSWER_SURVEY,
        "/survey",
        "Satisfaction, 1-5 on attitude, quality, result and speed.",
        Survey,
        wrapping(SurveyInput, "survey"),
    ),
)


def add_action_route(route: ActionRoute) -> None:
    async def act(
        handle: OrderHandle,
        session: SessionDep,
        settings: SettingsDep,
        response: Response,
        caller: Actor = Depends(may(route.action)),  # noqa: B008 (each route's own roles)
        prefer: Annotated[str | None, Header(description=PREFER)] = None,
        body: Any = None,
    ) -> dict[str, Any]:
        if route.check is not None:
            await route.check(ActionCall(handle, caller, body, session, settings))
        done = await act_on_order(
            handle, route.action, route.to_input(caller, body), result_type=ActionDone
        )
        if prefer is None or "return=representation" not in prefer:
            return summary_view(done)
        # The whole order costs a query more: only for a caller who asks.
        order = await read_order(handle)
        response.headers["Preference-Applied"] = "return=representation"
        opened = await order_view(order, caller, Opener(session, settings.key_ring))
        return opened.model_dump() | {"seq": len(order.timeline)}

    # FastAPI reads the body's model from the signature: this route's own, or none at all.
    signature = inspect.signature(act)
    parameters = [p for p in signature.parameters.values() if p.name != "body"]
    if route.body is not None:
        parameters.append(
            inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=route.body)
        )
    act.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    router.add_api_route(
        "/{order_id}" + route.path,
        act,
        methods=["POST"],
        name=route.action.value,
        description=route.description,
        responses=ACTION_PROBLEMS,
        response_model=OrderSummary,
        response_model_exclude_unset=True,
    )


for route in ROUTES:
    add_action_route(route)


@router.post(
    "/{order_id}/warranty-claims",
    status_code=status.HTTP_201_CREATED,
    responses=ACTION_PROBLEMS | problems(429),
)
async def claim_warranty(
    body: ClaimBody,
    handle: OrderHandle,
    caller: Annotated[Actor, Depends(may(Action.CLAIM_WARRANTY))],
    session: SessionDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> ClaimCreatedPublic:
    """The same fault is back within the warranty window: a free re-repair order is started.
    A retry with the same Idempotency-Key answers the claim the first call made."""
    update = ClaimInput(actor=caller, description=body.description)
    created = await act_on_order(
        handle,
        Action.CLAIM_WARRANTY,
        update,
        result_type=ClaimCreated,
        update_id=await update_id_for_key(
            session, "claim-warranty", handle.id, idempotency_key, body
        ),
    )
    return ClaimCreatedPublic(claim_order_id=created.claim_order_id)


class ContactPatch(Body):
    name: ShortText | None = None
    phone: Phone | None = None
    email: Email | None = None
    address: Text | None = None


class DetailsPatch(Body):
    customer: ContactPatch | None = None
    fault: Fault | None = None


@router.patch("/{order_id}/details", responses=ACTION_PROBLEMS)
async def correct_details(
    body: DetailsPatch,
    handle: OrderHandle,
    caller: Annotated[Actor, Depends(may(Action.CORRECT_DETAILS))],
    session: SessionDep,
    settings: SettingsDep,
) -> OrderSummary:
    """Correct the customer's contact details and address, or the fault description, until the
    work is finished: staff all of them, the customer their own contact details. The corrected
    contact is sealed with the order's own personal-data key, as the booking's was; the next
    message goes to it. The timeline names what changed, not the values."""
    if caller.role == Role.CUSTOMER and body.fault is not None:
        raise Forbidden("a customer corrects only their own contact details")
    contact = body.customer.model_dump(exclude_none=True) if body.customer else {}
    if not contact and body.fault is None:
        raise Unprocessable("body: give customer fields or fault to correct")
    opener = Opener(session, settings.key_ring)
    sealed = None
    if contact:
        order = await read_order(handle)
        key_id = sealed_key_id(order.customer.phone)
        key = await opener.key(key_id) if key_id is not None else None
        if key_id is None or key is None:
            raise Conflict(
                f"cannot correct the details: order is {order.stage}; its personal data is "
                "erased or was booked unsealed"
            )
        sealed = ContactCorrection(
            **{field: seal(value, key_id, key) for field, value in contact.items()}
        )
    done = await act_on_order(
        handle,
        Action.CORRECT_DETAILS,
        DetailsInput(actor=caller, customer=sealed, fault=body.fault),
        result_type=ActionDone,
    )
    answer = summary_view(done)
    if sealed is not None:
        order = await read_order(handle)
        personal = sees_personal_data(caller, order)
        answer["customer"] = await customer_view(order.customer, personal=personal, opener=opener)
    return OrderSummary.model_validate(answer)
