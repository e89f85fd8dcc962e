"""What crosses the complaint workflow's boundary, and the rules of tiers and deadlines.

Pure data and pure rules; imported by workflows (passed through the sandbox), so no I/O here.
"""

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from models.actions import FOR_THE_CUSTOMER, STAFF_SIDE
from models.fields import Money, ShortText, Text
from models.notification import Contact
from models.order import (
    COMPLAINT_ID_PATTERN,
    Actor,
    ComplaintSnapshot,
    ComplaintState,
    ComplaintSummary,
    Role,
    Strict,
    TimelineEntry,
)
from models.policy import Policy

TOP_TIER = 3
Owner = Literal["staff", "supervisor", "quality_manager"]
# Tier 1 is a service agent's, tier 2 a supervisor's, tier 3 the quality manager's.
TIER_OWNERS: dict[int, Owner] = {1: "staff", 2: "supervisor", 3: "quality_manager"}
# Who may take each complaint action (api.md's Complaints table); staff act on tier 1 only.
COMPLAINT_ACTION_ROLES: dict[str, frozenset[Role]] = {
    "acknowledge": STAFF_SIDE,
    "resolve": STAFF_SIDE,
    "follow up": FOR_THE_CUSTOMER,
}
TIER_BOUND_ACTIONS = frozenset({"acknowledge", "resolve"})


def complaint_order_id(complaint_id: str) -> str | None:
    """The order a complaint id belongs to, or None if it is not a complaint id."""
    match = COMPLAINT_ID_PATTERN.match(complaint_id)
    return match["order_id"] if match else None


class ComplaintCategory(StrEnum):
    """What a complaint is about, from a fixed list so that causes can be counted (api.md)."""

    ATTITUDE = "attitude"
    QUALITY = "quality"
    PRICE = "price"
    TIMELINESS = "timeliness"
    DAMAGE = "damage"
    PRIVACY = "privacy"
    OTHER = "other"


class ComplaintFiling(Strict):
    # Text here, a ComplaintCategory at the API: complaints filed before the list came in
    # carry their own words, and their histories must still replay.
    category: ShortText
    description: Text
    concerns_work: bool


class FileComplaintInput(Strict):
    actor: Actor
    filing: ComplaintFiling


class ComplaintFiled(Strict):
    complaint_id: str


class AfterClose(Strict):
    """A complaint filed on a closed or cancelled order: the order's workflow has ended, so
    the complaint records itself and sends its own messages, to these addresses."""

    customer: Contact  # the order's customer, sealed as the order holds them
    locale: Literal["zh", "en"] = "zh"


class ComplaintInput(Strict):
    """Everything the complaint workflow needs; the policy is the order's."""

    complaint_id: str
    order_id: str
    filing: ComplaintFiling
    filed_by: Actor
    filed_at: datetime
    technician_id: str | None  # the order's technician when it was filed
    policy: Policy
    after_close: AfterClose | None = None


class ComplaintDeadlines(Strict):
    first_reply: datetime
    resolution: datetime


class Complaint(BaseModel):
    """The whole complaint as its workflow holds it; the query answers a copy."""

    complaint_id: str
    order_id: str
    state: ComplaintState
    tier: int = Field(ge=1, le=TOP_TIER)
    category: str
    description: str
    concerns_work: bool
    technician_id: str | None
    filed_at: datetime
    deadlines: ComplaintDeadlines
    # Deadlines missed at the top tier, where there is no one left to escalate to.
    overdue: list[Literal["first_reply", "resolution"]] = Field(default_factory=list)
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    resolution: str | None = None
    compensation: Decimal | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)

    def summary(self) -> ComplaintSummary:
        return ComplaintSummary(
            complaint_id=self.complaint_id, state=self.state, tier=self.tier, filed_at=self.filed_at
        )

    def snapshot(self, now: datetime) -> ComplaintSnapshot:
        return ComplaintSnapshot(
            complaint_id=self.complaint_id,
            order_id=self.order_id,
            state=self.state,
            tier=self.tier,
            category=self.category,
            concerns_work=self.concerns_work,
            technician_id=self.technician_id,
            filed_at=self.filed_at,
            first_reply_due=self.deadlines.first_reply,
            resolution_due=self.deadlines.resolution,
            acknowledged_at=self.acknowledged_at,
            resolved_at=self.resolved_at,
            closed_at=self.closed_at,
            compensation=self.compensation,
            updated_at=now,
        )


def fresh_deadlines(start: datetime, policy: Policy) -> ComplaintDeadlines:
    """First reply and resolution, counted on the business calendar from `start`."""
    return ComplaintDeadlines(
        first_reply=policy.deadline(start, policy.complaint.first_reply),
        resolution=policy.deadline(start, policy.complaint.resolution),
    )


def open_complaint(input: ComplaintInput) -> Complaint:
    """The complaint as filed: tier 1, both deadlines running from the moment of filing."""
    return Complaint(
        complaint_id=input.complaint_id,
        order_id=input.order_id,
        state=ComplaintState.OPEN,
        tier=1,
        category=input.filing.category,
        description=input.filing.description,
        concerns_work=input.filing.concerns_work,
        technician_id=input.technician_id,
        filed_at=input.filed_at,
        deadlines=fresh_deadlines(input.filed_at, input.policy),
    )


def may_act_on_tier(actor: Actor, tier: int) -> bool:
    """Staff handle tier 1; an escalated complaint is a supervisor's."""
    return actor.role == Role.SUPERVISOR or (actor.role == Role.STAFF and tier == 1)


class ResolveInput(Strict):
    actor: Actor
    resolution: Text
    compensation: Money | None = None


class FollowUpInput(Strict):
    actor: Actor
    satisfied: bool
    comment: Text | None = None


class ComplaintEvent(Strict):
    """What the complaint tells its order: the order logs it, records it and sends the messages."""

    complaint: ComplaintSnapshot
    actor: str
    action: str
    detail: str = ""
    escalated_to: Owner | None = None
    reason: str | None = None  # why it was escalated, as a code
    customer_update: str | None = None  # what the customer is told, as a code


class ComplaintOutcome(Strict):
    complaint_id: str
    state: ComplaintState
    tier: int
