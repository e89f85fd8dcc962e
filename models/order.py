"""What crosses the order workflow's boundary: its input, its updates and what it answers.

Pure data and pure rules; imported by workflows (passed through the sandbox), so no I/O here.
"""

import re
import secrets
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from temporalio.common import SearchAttributeKey

from models.catalog import Category
from models.fields import MAX_LINES, Moment, Money, PastDate, ShortText, Text
from models.policy import Policy


class Stage(StrEnum):
    BOOKED = "booked"
    DISPATCHING = "dispatching"
    SCHEDULED = "scheduled"
    ON_SITE = "on_site"
    WAITING_PARTS = "waiting_parts"
    IN_WORKSHOP = "in_workshop"
    SAFETY_STOP = "safety_stop"
    AWAITING_ACCEPTANCE = "awaiting_acceptance"
    IN_WARRANTY = "in_warranty"
    CLOSED = "closed"
    CANCELLED = "cancelled"


CANCELLABLE_STAGES = frozenset({Stage.BOOKED, Stage.DISPATCHING, Stage.SCHEDULED})
FINAL_STAGES = frozenset({Stage.CLOSED, Stage.CANCELLED})
# A technician holds an order from assignment until the customer accepts it.
OPEN_STAGES = frozenset(
    {
        Stage.SCHEDULED,
        Stage.ON_SITE,
        Stage.WAITING_PARTS,
        Stage.IN_WORKSHOP,
        Stage.SAFETY_STOP,
        Stage.AWAITING_ACCEPTANCE,
    }
)


class Priority(StrEnum):
    EMERGENCY = "emergency"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class Channel(StrEnum):
    PHONE = "phone"
    WEB = "web"
    APP = "app"


class Role(StrEnum):
    STAFF = "staff"
    TECHNICIAN = "technician"
    CUSTOMER = "customer"
    SUPERVISOR = "supervisor"
    AUDITOR = "auditor"
    ADMIN = "admin"


class WarrantyStatus(StrEnum):
    IN_WARRANTY = "in_warranty"
    OUT_OF_WARRANTY = "out_of_warranty"
    NO_PROOF = "no_proof"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Phone = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9 \-]{5,19}$")
]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
]


class Actor(Strict):
    """Who did something: the token's subject and role (never a name or a phone number)."""

    subject: str
    role: Role
    technician_id: str | None = None
    order_id: str | None = None  # a customer's token is scoped to one order

    def __str__(self) -> str:
        return f"{self.role}:{self.subject}"


class Customer(Strict):
    name: ShortText
    phone: Phone
    email: Email | None = None
    address: Text
    region: ShortText
    locale: Literal["zh", "en"] = "zh"


class Appliance(Strict):
    category: Category
    brand: ShortText | None = None
    model: ShortText | None = None
    serial: ShortText | None = None
    gas_fired: bool = False
    purchase_date: PastDate | None = None
    proof_of_purchase: bool

    @model_validator(mode="after")
    def proof_names_a_date(self) -> "Appliance":
        if self.proof_of_purchase and self.purchase_date is None:
            raise ValueError("purchase_date is required when proof_of_purchase is true")
        return self


class Fault(Strict):
    description: Text


class TimeWindow(Strict):
    start: Moment
    end: Moment

    @field_validator("end")
    @classmethod
    def ends_after_start(cls, end: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        if start is not None and end <= start:
            raise ValueError("end must be after start")
        return end


class Booking(Strict):
    customer: Customer
    appliance: Appliance
    fault: Fault
    priority: Priority
    channel: Channel
    preferred_window: TimeWindow | None = None


class SealedCustomer(Strict):
    """The customer as an order's workflow holds them: name, phone, email and address sealed
    with the order's personal-data key (core/personal.py), so that destroying the key erases
    them from every history. Nothing in the workflow reads them. Orders booked before sealing
    hold them in clear."""

    name: str
    phone: str
    email: str | None = None
    address: str
    region: ShortText
    locale: Literal["zh", "en"] = "zh"


class OrderBooking(Booking):
    """A booking as the order's workflow takes it: the customer sealed."""

    customer: SealedCustomer  # type: ignore[assignment]  # the same fields, sealed


class Warranty(Strict):
    status: WarrantyStatus
    product_until: date | None = None


def window_problem(window: TimeWindow, now: datetime, policy: Policy) -> tuple[str, str] | None:
    """Why a visit window cannot be taken at `now` (the field at fault and the reason), or None:
    it is over, or it starts further ahead than the policy's booking horizon."""
    if window.end <= now:
        return "end", "the window is already over"
    horizon = policy.limits.booking_horizon
    if window.start > policy.deadline(now, horizon):
        return "start", f"the window starts more than {horizon} ahead"
    return None


def local_date(at: datetime, policy: Policy) -> date:
    """The operator's calendar day at an instant."""
    return at.astimezone(ZoneInfo(policy.timezone)).date()


def local_time_text(moment: datetime, policy: Policy) -> str:
    """A time as the operator's customers read it: local, to the minute."""
    return f"{moment.astimezone(ZoneInfo(policy.timezone)):%Y-%m-%d %H:%M}"


def reminder_time(window: "TimeWindow", policy: Policy) -> datetime:
    """When the customer is reminded of a visit: at opening time the day before it."""
    day_before = local_date(window.start, policy) - timedelta(days=1)
    return datetime.combine(day_before, policy.business_hours.start, ZoneInfo(policy.timezone))


def settle_warranty(appliance: Appliance, booked_on: date, policy: Policy) -> Warranty:
    """Product warranty as of the booking day: in warranty needs proof and a date inside it."""
    if not appliance.proof_of_purchase or appliance.purchase_date is None:
        return Warranty(status=WarrantyStatus.NO_PROOF)
    until = appliance.purchase_date + policy.warranty.product.as_timedelta()
    status = WarrantyStatus.IN_WARRANTY if booked_on <= until else WarrantyStatus.OUT_OF_WARRANTY
    return Warranty(status=status, product_until=until)


# Crockford base32 without I, L, O, U: readable aloud over the phone, no look-alikes.
ORDER_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ORDER_ID_PATTERN = re.compile(r"^RF\d{6}-[0-9A-HJKMNP-TV-Z]{6}(-W\d{1,3})?$")  # -Wn: warranty claim
COMPLAINT_ID_PATTERN = re.compile(
    r"^(?P<order_id>RF\d{6}-[0-9A-HJKMNP-TV-Z]{6}(-W\d{1,3})?)-C\d{1,3}$"  # <order>-Cn
)


def new_order_id(booked_on: date) -> str:
    """A short order number, unique with overwhelming odds (the engine rejects the rare clash)."""
    suffix = "".join(secrets.choice(ORDER_ID_ALPHABET) for _ in range(6))
    return f"RF{booked_on:%y%m%d}-{suffix}"


def order_workflow_id(order_id: str) -> str:
    return order_id


class OrderInput(Strict):
    """Everything the workflow needs to start; the policy is fixed for the order's life."""

    order_id: str
    booking: OrderBooking
    booked_by: Actor
    booked_at: datetime
    warranty: Warranty
    policy: Policy
    claim_of: str | None = None  # set on a warranty-claim order: the order it re-repairs


class TimelineEntry(Strict):
    at: datetime
    actor: str
    action: str
    detail: str = ""


class Clock(StrEnum):
    """The service-level clocks an order can run."""

    RESPONSE = "response"
    APPOINTMENT_CONFIRM = "appointment_confirm"
    ARRIVAL = "arrival"
    GENERAL_REPAIR = "general_repair"
    WORKSHOP_REPAIR = "workshop_repair"
    PARTS_DISPATCH = "parts_dispatch"


class SlaClock(Strict):
    started_at: datetime
    deadline: datetime
    stopped_at: datetime | None = None
    paused_at: datetime | None = None
    paused_for: timedelta = timedelta(0)  # the pauses ended so far, added to the deadline
    breached: bool = False
    breached_by: timedelta | None = None


class ChargeLine(Strict):
    kind: Literal["labour", "part", "visit_fee"]
    description: str
    amount: Decimal


class Charges(Strict):
    currency: str
    lines: tuple[ChargeLine, ...] = ()

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0.00"))


class Exclusion(StrEnum):
    """Why a fault is not covered by the product warranty (recorded at diagnosis)."""

    MISUSE = "misuse"
    POOR_MAINTENANCE = "poor_maintenance"
    FORCE_MAJEURE = "force_majeure"
    ABNORMAL_VOLTAGE = "abnormal_voltage"
    UNAUTHORISED_REPAIR = "unauthorised_repair"
    EXPIRED_WARRANTY = "expired_warranty"
    NO_PROOF = "no_proof"


class QuoteItem(Strict):
    """A labour item; without an amount, the description names an item of the price list."""

    description: ShortText
    amount: Money | None = None


class QuotePart(Strict):
    part_no: ShortText
    description: ShortText | None = None
    qty: int = Field(ge=1, le=1000)
    unit_cost: Money


class QuoteRequest(Strict):
    items: tuple[QuoteItem, ...] = Field(default=(), max_length=MAX_LINES)
    parts: tuple[QuotePart, ...] = Field(default=(), max_length=MAX_LINES)


class QuoteStatus(StrEnum):
    AWAITING_SUPERVISOR = "awaiting_supervisor"  # off-list prices, before the customer sees it
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"


class PricedItem(Strict):
    description: str
    amount: Decimal


class Quote(Strict):
    """A priced quote: labour items, parts at cost and, when chargeable, the visit fee."""

    items: tuple[PricedItem, ...]
    parts: tuple[QuotePart, ...]
    visit_fee: Decimal | None = None
    status: QuoteStatus = QuoteStatus.PENDING

    @property
    def lines(self) -> tuple[ChargeLine, ...]:
        labour = [
            ChargeLine(kind="labour", description=i.description, amount=i.amount)
            for i in self.items
        ]
        parts = [
            ChargeLine(
                kind="part",
                description=f"{part.qty} x {part.part_no}",
                amount=(part.unit_cost * part.qty).quantize(Decimal("0.01")),
            )
            for part in self.parts
        ]
        fee = (
            []
            if self.visit_fee is None
            else [ChargeLine(kind="visit_fee", description="visit fee", amount=self.visit_fee)]
        )
        return (*labour, *parts, *fee)

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0.00"))


class Diagnosis(Strict):
    fault_cause: Text
    plan: Text
    warranty_exclusion: Exclusion | None = None


class PartRequest(Strict):
    part_no: ShortText
    description: ShortText | None = None
    qty: int = Field(ge=1, le=1000)


class ReplacedPart(Strict):
    part_no: ShortText
    qty: int = Field(ge=1, le=1000)
    unit_cost: Money


PhotoRef = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class ServiceRecord(Strict):
    repair_item: ShortText
    fault_cause: Text
    method: Text
    parts_replaced: tuple[ReplacedPart, ...] = ()
    labour_minutes: int = Field(ge=0, le=10_000)
    photos_before: tuple[PhotoRef, ...] = Field(min_length=1)
    photos_after: tuple[PhotoRef, ...] = Field(min_length=1)


Score = Annotated[int, Field(ge=1, le=5)]


class Survey(Strict):
    attitude: Score
    quality: Score
    result: Score
    speed: Score
    comment: Text | None = None

    @property
    def mean(self) -> Decimal:
        total = self.attitude + self.quality + self.result + self.speed
        return (Decimal(total) / 4).quantize(Decimal("0.01"))


class Offer(Strict):
    """The job offered to one technician, who must answer before it expires."""

    technician_id: str
    expires_at: datetime


class Escalation(Strict):
    reason: str
    to: Literal["staff", "supervisor", "quality_manager"]
    at: datetime


class Acceptance(Strict):
    at: datetime
    by: str
    deemed: bool = False
    signature: str | None = None


class ComplaintState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    CLOSED = "closed"


class ComplaintSummary(Strict):
    """What the order shows of each of its complaints."""

    complaint_id: str
    state: ComplaintState
    tier: int
    filed_at: datetime | None = None  # None for complaints filed before it was kept


class PendingWrites(Strict):
    """The order's effects not done yet: events for the records store and messages to send.
    A write that keeps failing stays first in its queue; `stalled_since` says since when."""

    records: int = 0
    notifications: int = 0
    stalled_since: datetime | None = None


class Order(BaseModel):
    """The whole order as the workflow holds it; the query answers a copy."""

    order_id: str
    stage: Stage
    priority: Priority
    channel: Channel
    category: Category
    region: str
    warranty: Warranty
    customer: SealedCustomer
    appliance: Appliance
    fault: Fault
    booked_at: datetime
    claim_of: str | None = None
    preferred_window: TimeWindow | None = None
    technician_id: str | None = None
    offer: Offer | None = None
    offered: list[str] = Field(default_factory=list)  # asked and declined or silent
    appointment: TimeWindow | None = None
    diagnosis: Diagnosis | None = None
    quote: Quote | None = None
    parts_requested: tuple[PartRequest, ...] = ()
    service_record: ServiceRecord | None = None
    hazard: str | None = None
    charges: Charges
    sla: dict[Clock, SlaClock] = Field(default_factory=dict)
    escalations: list[Escalation] = Field(default_factory=list)
    rework_count: int = 0
    reworks_by_technician: int = 0  # rejections since the current technician was assigned
    needs_reassignment: bool = False
    acceptance: Acceptance | None = None
    survey: Survey | None = None
    warranty_window_ends_at: datetime | None = None
    claims: list[str] = Field(default_factory=list)
    open_claims: list[str] = Field(default_factory=list)
    complaints: list[ComplaintSummary] = Field(default_factory=list)
    # Set when the job ended (a declined quote) while complaints were open: the order closes
    # once they are closed, and takes no other action meanwhile.
    closing: str | None = None
    cancellation_reason: str | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)
    pending_writes: PendingWrites = Field(default_factory=PendingWrites)  # set by the query

    @property
    def complaints_open(self) -> bool:
        return any(c.state != ComplaintState.CLOSED for c in self.complaints)

    @property
    def sla_breached(self) -> bool:
        return any(clock.breached for clock in self.sla.values())

    @property
    def chargeable(self) -> bool:
        """Whether the customer pays: out of warranty, no proof, or an exclusion found on site
        (on a warranty-claim order, only with a quote for it)."""
        return self.chargeable_with(self.diagnosis, quoted=self.quote is not None)

    def chargeable_with(self, diagnosis: Diagnosis | None, *, quoted: bool) -> bool:
        """Whether the customer would pay after this diagnosis. A warranty claim is repaired
        free; misuse found on it is charged only through a quote the customer consents to
        (claim orders diagnosed before that rule, with no quote, stay free)."""
        excluded = diagnosis is not None and diagnosis.warranty_exclusion is not None
        if self.claim_of is not None:
            return excluded and quoted
        return self.warranty.status != WarrantyStatus.IN_WARRANTY or excluded

    def snapshot(self, now: datetime, policy: Policy) -> "OrderSnapshot":
        return OrderSnapshot(
            order_id=self.order_id,
            stage=self.stage,
            priority=self.priority,
            channel=self.channel,
            category=self.category,
            region=self.region,
            technician_id=self.technician_id,
            warranty_status=self.warranty.status,
            sla_breached=self.sla_breached,
            currency=self.charges.currency,
            total=self.charges.total,
            booked_at=self.booked_at,
            updated_at=now,
            customer_name=self.customer.name,
            customer_phone=self.customer.phone,
            survey_score=self.survey.mean if self.survey else None,
            rework_count=self.rework_count,
            claims=len(self.claims),
            accepted_at=self.acceptance.at if self.acceptance else None,
            booked_on=local_date(self.booked_at, policy),
            sla=self.sla,
        )


def visit_day(order: Order, policy: Policy) -> date:
    """The day a technician's qualifications are judged on: the appointment, else the day the
    customer asked for, else the booking day."""
    window = order.appointment or order.preferred_window
    return local_date(window.start if window is not None else order.booked_at, policy)


class OrderEvent(Strict):
    """One row of the order's append-only event log; seq is minted in the workflow."""

    order_id: str
    seq: int
    at: datetime
    actor: str
    action: str
    detail: str = ""

    def timeline_entry(self) -> TimelineEntry:
        return TimelineEntry(at=self.at, actor=self.actor, action=self.action, detail=self.detail)


class OrderSnapshot(Strict):
    """The order's read-model row: what lists and reports need, nothing more."""

    order_id: str
    stage: Stage
    priority: Priority
    channel: Channel
    category: Category
    region: str
    technician_id: str | None
    warranty_status: WarrantyStatus
    sla_breached: bool
    currency: str
    total: Decimal
    booked_at: datetime
    updated_at: datetime
    customer_name: str
    customer_phone: str
    survey_score: Decimal | None = None  # mean of the four answers, for technician ratings
    rework_count: int = 0
    claims: int = 0
    accepted_at: datetime | None = None
    # The quality figures' own facts (core/facts.py); None in snapshots made before them.
    booked_on: date | None = None  # the operator's calendar day of the booking
    sla: dict[Clock, SlaClock] | None = None


class ComplaintSnapshot(Strict):
    """The complaint's read-model row, written with the order event that changed it."""

    complaint_id: str
    order_id: str
    state: ComplaintState
    tier: int
    category: str
    concerns_work: bool
    technician_id: str | None
    filed_at: datetime
    first_reply_due: datetime
    resolution_due: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    compensation: Decimal | None = None
    updated_at: datetime


class RecordInput(Strict):
    snapshot: OrderSnapshot
    event: OrderEvent
    complaint: ComplaintSnapshot | None = None  # set when the event is a complaint's


# ---- update inputs: who acts, and with what ----------------------------------------------


class ActorInput(Strict):
    """An action that carries nothing but who does it (check-in, complete, ...)."""

    actor: Actor


class ContactCorrection(Strict):
    """Corrected contact details, sealed with the order's personal-data key as the booking's
    are; a field left out stays as it was."""

    name: str | None = None
    phone: str | None = None
    email: str | None = None
    address: str | None = None


class DetailsInput(Strict):
    actor: Actor
    customer: ContactCorrection | None = None
    fault: Fault | None = None


class CancelInput(Strict):
    actor: Actor
    reason: Text


class AssignInput(Strict):
    actor: Actor
    technician_id: ShortText


class WindowInput(Strict):
    actor: Actor
    window: TimeWindow


class DiagnosisInput(Strict):
    actor: Actor
    diagnosis: Diagnosis
    quote: QuoteRequest | None = None


class PartsInput(Strict):
    actor: Actor
    parts: tuple[PartRequest, ...] = Field(min_length=1)
    # When the parts should arrive, as the customer is told; by default the parts-dispatch
    # deadline (policy visit.parts_dispatch).
    expected_by: Moment | None = None


class HazardInput(Strict):
    actor: Actor
    description: Text


class ReasonInput(Strict):
    actor: Actor
    reason: Text


class NoteInput(Strict):
    actor: Actor
    note: Text


class ServiceRecordInput(Strict):
    actor: Actor
    record: ServiceRecord


def require_reason_if_rejected(reason: str | None, info: ValidationInfo) -> str | None:
    if info.data.get("accepted") is False and reason is None:
        raise ValueError("a reason is required when the work is rejected")
    return reason


class AcceptanceInput(Strict):
    actor: Actor
    accepted: bool
    reason: Text | None = Field(default=None, validate_default=True)
    signature: ShortText | None = None

    @field_validator("reason")
    @classmethod
    def rejection_gives_a_reason(cls, reason: str | None, info: ValidationInfo) -> str | None:
        return require_reason_if_rejected(reason, info)


class SurveyInput(Strict):
    actor: Actor
    survey: Survey


class ClaimInput(Strict):
    actor: Actor
    description: Text


class ClaimCreated(Strict):
    claim_order_id: str


# What an action's answer may name as changed: the order's fields a caller sees, less its
# timeline (every action adds to it; `seq` says how far) and its identity.
ANSWERED_PARTS = frozenset(Order.model_fields) - {
    "order_id",
    "stage",
    "customer",
    "offered",
    "reworks_by_technician",
    "timeline",
    "pending_writes",
}


class ActionDone(Strict):
    """What an order action answers: where the order is now and what the action changed
    (Order field -> its new value, as JSON), not the whole order: an update's answer is
    kept in the order's history."""

    order_id: str
    stage: Stage
    seq: int  # the number of the order's latest event
    changed: dict[str, Any] = Field(default_factory=dict)


def owns_order(actor: Actor, order_id: str) -> bool:
    """A customer's token opens their order and the warranty-claim orders made from it."""
    return actor.order_id is not None and (
        order_id == actor.order_id or order_id.startswith(f"{actor.order_id}-W")
    )


class OrderSource(StrEnum):
    """Where an order read came from: its running (or retained) workflow, or the archive once
    the engine has forgotten the closed order."""

    ENGINE = "engine"
    ARCHIVE = "archive"


class OrderOutcome(Strict):
    order_id: str
    stage: Stage


class ErasureInput(Strict):
    """When to erase a closed order's personal data (workflows/erasure.py)."""

    order_id: str
    erase_at: datetime


def erasure_workflow_id(order_id: str) -> str:
    return f"{order_id}-erasure"


ORDER_STAGE = SearchAttributeKey.for_keyword("OrderStage")
ORDER_PRIORITY = SearchAttributeKey.for_keyword("OrderPriority")
ORDER_CATEGORY = SearchAttributeKey.for_keyword("OrderCategory")
ORDER_REGION = SearchAttributeKey.for_keyword("OrderRegion")
TECHNICIAN_ID = SearchAttributeKey.for_keyword("TechnicianId")
SLA_BREACHED = SearchAttributeKey.for_bool("SlaBreached")
# Set while a records or notification write of the order keeps failing; /readyz counts them.
WRITES_STALLED = SearchAttributeKey.for_bool("WritesStalled")
SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[Any], ...] = (
    ORDER_STAGE,
    ORDER_PRIORITY,
    ORDER_CATEGORY,
    ORDER_REGION,
    TECHNICIAN_ID,
    SLA_BREACHED,
    WRITES_STALLED,
)
