"""The KPI report (core/kpis.py) on each engine, from 30 orders written through the records
writer (activities/records.py) event by event, as the order workflow logs them.

Every expected figure is worked out by hand from the table ORDERS below; the arithmetic is in
the comments. Durations are hours from booking; means are rounded half-even to the hundredth,
rates to the thousandth; percentiles are nearest-rank (the p-th of n values is the one at rank
ceil(p * n / 100) in ascending order). No mean, rate or percentile lands on an exact half.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from activities.records import RecordActivities
from core import kpis
from core.kpis import (
    Distribution,
    GroupBy,
    KpiGroup,
    KpiReport,
    Rate,
    Satisfaction,
    TargetDistribution,
    TargetMean,
    TargetRate,
)
from models.catalog import Category
from models.order import (
    Channel,
    Clock,
    ComplaintSnapshot,
    ComplaintState,
    OrderEvent,
    OrderSnapshot,
    Priority,
    RecordInput,
    SlaClock,
    Stage,
    WarrantyStatus,
)
from models.policy import Targets

LOCAL = ZoneInfo("Asia/Shanghai")  # the policy's time zone: booked_on is the local day
NOW = datetime(2026, 12, 10, 4, 0, tzinfo=UTC)  # 2026-12-10 12:00 local, a Thursday
HOUR = timedelta(hours=1)

EMERGENCY, HIGH, NORMAL, LOW = Priority.EMERGENCY, Priority.HIGH, Priority.NORMAL, Priority.LOW
FRIDGE, AIRCON, WASHER = Category.REFRIGERATOR, Category.AIR_CONDITIONER, Category.WASHING_MACHINE
RESPONSE, ARRIVAL, REPAIR = Clock.RESPONSE, Clock.ARRIVAL, Clock.GENERAL_REPAIR

# The clocks' allowances (the policy's defaults): response and arrival from booking, by
# priority; the general repair from the first check-in to the first completion.
ALLOWED = {
    RESPONSE: {EMERGENCY: 1.0, HIGH: 2.0, NORMAL: 8.0, LOW: 24.0},
    ARRIVAL: {EMERGENCY: 4.0, HIGH: 8.0, NORMAL: 24.0, LOW: 48.0},
    REPAIR: {EMERGENCY: 1.0, HIGH: 1.0, NORMAL: 1.0, LOW: 1.0},
}
DEEMED_AFTER = 72.0  # acceptance.timeout: silence after completion is acceptance
SURVEY_AFTER = 25.0  # the survey is sent a day after acceptance; answered an hour later
FIRST_REPLY, RESOLUTION = 24.0, 72.0  # a complaint's deadlines from filing (or climbing a tier)


def local(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A booking moment given on the operator's (Shanghai) clock, in 2026."""
    return datetime(2026, month, day, hour, minute, tzinfo=LOCAL).astimezone(UTC)


@dataclass(frozen=True)
class Complaint:
    """A complaint's life as (what happened, hours after the order's booking): `filed`, then
    `acknowledged`, `escalated` (a deadline passed: one tier up, a fresh first-reply deadline),
    `resolved`, `reopened` (one tier up, fresh deadlines, no reply or resolution yet)."""

    steps: tuple[tuple[str, float], ...]
    concerns_work: bool = False


@dataclass(frozen=True)
class Order:
    """One order, as hours after its booking: the first response (the first move to
    `scheduled`), the check-in, each completion (every one after the first follows a rejected
    piece of work: a rework), the acceptance (own, or deemed 72 hours after the last
    completion), each warranty claim, a close without acceptance or a cancellation. The survey
    is answered SURVEY_AFTER hours after the acceptance. `late` lists the clocks the times
    breach (the builder checks it against ALLOWED). `redispatch`: the last rework goes back to
    dispatching, is assigned again and checked in again."""

    name: str
    booked: datetime
    priority: Priority
    region: str
    category: Category
    technician: str | None = None
    response: float | None = None
    arrival: float | None = None
    done: tuple[float, ...] = ()
    accepted: float | None = None
    deemed: bool = False
    survey: tuple[int, int, int, int] | None = None
    claims: tuple[float, ...] = ()
    closed: float | None = None
    cancelled: float | None = None
    late: tuple[Clock, ...] = ()
    complaints: tuple[Complaint, ...] = ()
    redispatch: bool = False
    claim_of: str | None = None  # a warranty-claim order: the name of the order it re-repairs

    @property
    def booked_on(self) -> date:
        return self.booked.astimezone(LOCAL).date()


# Weeks (Monday to Sunday, local): A 11-23..11-29, B 11-30..12-06, C 12-07..12-13.
# Deemed acceptances come DEEMED_AFTER (72) hours after the last completion.
# fmt: off
ORDERS = (
    # ---- north (13) ----
    Order("N01", local(11, 23, 9), NORMAL, "north", FRIDGE, "T-A", response=0.5, arrival=2,
          done=(2.7,), accepted=4.1, survey=(5, 5, 4, 5)),
    Order("N02", local(11, 23, 14), EMERGENCY, "north", AIRCON, "T-A", response=0.3,
          arrival=1.5, done=(2.2,), accepted=2.5, survey=(4, 4, 5, 4)),
    Order("N03", local(11, 25, 8), NORMAL, "north", FRIDGE, "T-C", response=1, arrival=3,
          done=(3.8, 5.9), accepted=7, survey=(3, 4, 3, 4),
          complaints=(Complaint((("filed", 5), ("acknowledged", 6), ("resolved", 10)), True),)),
    Order("N04", local(11, 26, 9), NORMAL, "north", WASHER, "T-A", response=0.8, arrival=2.5,
          done=(3.2,), accepted=5, claims=(120,), survey=(5, 4, 5, 5)),
    Order("N05", local(11, 27, 10), NORMAL, "north", FRIDGE, "T-C", response=2, arrival=6,
          closed=6.5),  # quote declined: closed without acceptance
    # Booked 00:30 local on Monday 11-30: Sunday 11-29 16:30 in UTC.
    Order("N06", local(11, 30, 0, 30), EMERGENCY, "north", AIRCON, "T-B", response=1.5,
          arrival=3.5, done=(4.3,), accepted=5.1, survey=(2, 3, 3, 2), late=(RESPONSE,),
          complaints=(Complaint((("filed", 2), ("acknowledged", 27), ("resolved", 30))),)),
    Order("N07", local(12, 1, 10), HIGH, "north", FRIDGE, "T-A", response=0.5, arrival=4,
          done=(6,), accepted=78, deemed=True, late=(REPAIR,)),
    Order("N08", local(12, 2, 11), NORMAL, "north", WASHER, cancelled=3),  # never assigned
    Order("N09", local(12, 3, 9), NORMAL, "north", FRIDGE, "T-C", response=1.2, arrival=5,
          done=(5.9,), accepted=8, claims=(60, 120), survey=(4, 5, 4, 4)),
    Order("N10", local(12, 8, 10), NORMAL, "north", AIRCON, "T-A", response=0.5, arrival=3,
          late=(REPAIR,)),  # still on site, its repair clock breached
    # Still dispatching; a complaint not answered and not yet due (due 12-10 21:00 local).
    Order("N11", local(12, 9, 18), EMERGENCY, "north", FRIDGE, late=(RESPONSE, ARRIVAL),
          complaints=(Complaint((("filed", 3),)),)),
    # A complaint never answered, long past its first deadline: it climbed two tiers.
    Order("N12", local(12, 4, 8), NORMAL, "north", FRIDGE, "T-B", response=4, arrival=6,
          done=(6.5,), accepted=7.5, survey=(4, 4, 4, 5),
          complaints=(Complaint((("filed", 8), ("escalated", 32), ("escalated", 56))),)),
    # N04's warranty claim, booked when it was made (N04 + 120 hours).
    Order("N04-W1", local(12, 1, 9), HIGH, "north", WASHER, "T-B", response=0.5, arrival=3,
          done=(3.6,), accepted=4, claim_of="N04"),
    # ---- south (12) ----
    Order("S01", local(11, 24, 10), NORMAL, "south", FRIDGE, "T-B", response=1.5, arrival=5,
          done=(5.6,), accepted=77.6, deemed=True),
    Order("S02", local(11, 24, 16), HIGH, "south", WASHER, "T-B", response=3, arrival=9,
          done=(9.5,), accepted=10, survey=(3, 2, 4, 3), late=(RESPONSE, ARRIVAL),
          complaints=(Complaint((("filed", 8.5), ("acknowledged", 9), ("resolved", 20.5))),)),
    Order("S03", local(11, 26, 22), EMERGENCY, "south", FRIDGE, "T-B", response=0.5,
          arrival=1.7, done=(2.5,), accepted=3, survey=(5, 5, 5, 5)),
    Order("S04", local(11, 27, 15), HIGH, "south", AIRCON, cancelled=5, late=(RESPONSE,)),
    Order("S05", local(11, 28, 11), NORMAL, "south", WASHER, "T-C", response=1, arrival=4,
          done=(4.5,), accepted=76.5, deemed=True, claims=(120,), survey=(4, 5, 4, 4)),
    # Two reworks, the last one dispatched again; the first reply to its complaint came after
    # the complaint had climbed a tier: late against the first deadline (filed + 24 = 49).
    Order("S06", local(11, 29, 20), NORMAL, "south", FRIDGE, "T-B", response=0.7, arrival=26,
          done=(26.5, 32, 40), accepted=40.9, survey=(3, 3, 2, 3), late=(ARRIVAL,),
          redispatch=True,
          complaints=(
              Complaint((("filed", 25), ("escalated", 49), ("acknowledged", 50), ("resolved", 60))),
          )),
    # Booked 23:00 local on 11-30, still November.
    Order("S07", local(11, 30, 23), NORMAL, "south", AIRCON, "T-C", response=2.5, arrival=7,
          done=(7.8,), accepted=9.1, survey=(5, 4, 4, 5)),
    # Booked 01:00 local on 12-01: still 11-30 in UTC.
    Order("S08", local(12, 1, 1), EMERGENCY, "south", WASHER, "T-B", response=0.8,
          arrival=2.3, done=(3,), accepted=3.6, survey=(5, 5, 4, 4)),
    Order("S09", local(12, 2, 14), HIGH, "south", FRIDGE, "T-A", response=1, arrival=6,
          done=(6.5, 30), accepted=31.7, survey=(4, 3, 4, 3)),
    Order("S10", local(12, 4, 9), NORMAL, "south", AIRCON, "T-C", response=1, arrival=10,
          closed=10.5),  # quote declined: closed without acceptance
    Order("S11", local(12, 8, 9), LOW, "south", WASHER, "T-B", response=0.5, arrival=3,
          done=(3.5,)),  # awaiting acceptance (deemed only at 12-11 12:30 local)
    # Cancelled once assigned: the cancellation stops its arrival clock, unbreached, before a
    # check-in, so it counts on neither side of the on-time arrival rate.
    Order("S12", local(12, 6, 10), HIGH, "south", FRIDGE, "T-A", response=1, cancelled=3),
    # ---- east (5) ----
    Order("E01", local(11, 25, 12), HIGH, "east", AIRCON, cancelled=1.5),  # never assigned
    Order("E02", local(11, 28, 11), NORMAL, "east", WASHER, "T-B", response=1, arrival=4,
          done=(4.8,), accepted=76.8, deemed=True, claims=(100,), survey=(4, 5, 4, 4)),
    # Resolved without a separate first reply (the resolution is the reply), reopened a tier
    # up and resolved again: its resolution counts to the latest one.
    Order("E03", local(12, 3, 16), HIGH, "east", FRIDGE, "T-C", response=1.8, arrival=7,
          done=(7.5,), accepted=8.5,
          complaints=(
              Complaint((("filed", 9), ("resolved", 15), ("reopened", 20), ("resolved", 26))),
          )),
    Order("E04", local(12, 7, 10), EMERGENCY, "east", AIRCON, "T-A", response=0.5, arrival=2,
          done=(2.7,), accepted=3.1, survey=(5, 4, 5, 4)),
    Order("E05", local(12, 10, 9), NORMAL, "east", WASHER),  # just booked: nothing decided yet
)
# fmt: on

BY_NAME = {order.name: order for order in ORDERS}


# ---- the builder: an order's events and read model, from its line of ORDERS -----------------


def order_id(order: Order) -> str:
    if order.claim_of is not None:
        return f"{order_id(BY_NAME[order.claim_of])}-W1"
    return f"RF{order.booked_on:%y%m%d}-KPX{order.name}"


@dataclass(frozen=True)
class Span:
    """A clock, in hours after booking: started, stopped (None: still running), due."""

    start: float
    stop: float | None
    deadline: float

    def breached(self, hours: float) -> bool:
        """Breached by `hours`: the deadline passed while the clock ran."""
        return self.deadline <= hours and (self.stop is None or self.deadline < self.stop)


def spans(order: Order) -> dict[Clock, Span]:
    """The clocks the order ran: response and arrival from booking, the general repair from
    the first check-in to the first completion; a cancellation or a close without acceptance
    stops every clock still running (workflows/repair_order.py: stop_all)."""
    end = order.cancelled if order.cancelled is not None else order.closed

    def stop(at: float | None) -> float | None:
        return at if at is not None else end

    allowed = {clock: hours[order.priority] for clock, hours in ALLOWED.items()}
    clocks = {
        RESPONSE: Span(0, stop(order.response), allowed[RESPONSE]),
        ARRIVAL: Span(0, stop(order.arrival), allowed[ARRIVAL]),
    }
    if order.arrival is not None:
        first_done = order.done[0] if order.done else None
        clocks[REPAIR] = Span(order.arrival, stop(first_done), order.arrival + allowed[REPAIR])
    return clocks


@dataclass(frozen=True)
class Step:
    """One event of the order: what it changes of the order's state, or of a complaint."""

    hours: float
    action: str
    detail: str = ""
    changes: dict[str, Any] = field(default_factory=dict)
    complaint: tuple[int, str] | None = None  # (which complaint, what happened to it)


def move(hours: float, stage: Stage, detail: str, **changes: Any) -> Step:
    return Step(hours, f"stage:{stage}", detail, {"stage": stage, **changes})


def steps(order: Order) -> list[Step]:
    """The order's events in the order they happened, as the workflow logs them."""
    oid, tech = order_id(order), order.technician
    events: list[Step] = [
        Step(0, "booked", f"{order.priority} {order.category}", {"stage": Stage.BOOKED}),
        move(0, Stage.DISPATCHING, "looking for a technician"),
    ]
    if order.response is not None:
        events.append(move(order.response, Stage.SCHEDULED, f"assigned {tech}", technician_id=tech))
    if order.arrival is not None:
        events.append(move(order.arrival, Stage.ON_SITE, "arrived"))
    for rework, completed in enumerate(order.done):
        if rework:
            rejected = (order.done[rework - 1] + completed) / 2
            if order.redispatch and rework == len(order.done) - 1:
                why = "rejected again: still leaking"
                events.append(move(rejected, Stage.DISPATCHING, why, rework_count=rework))
                again = (completed - rejected) / 4
                events.append(move(rejected + again, Stage.SCHEDULED, f"assigned {tech}"))
                events.append(move(rejected + 2 * again, Stage.ON_SITE, "arrived"))
            else:
                why = f"rejected, rework {rework}: still leaking"
                events.append(move(rejected, Stage.ON_SITE, why, rework_count=rework))
        events.append(move(completed, Stage.AWAITING_ACCEPTANCE, "work completed"))
    if order.accepted is not None:
        assert not order.deemed or order.accepted == order.done[-1] + DEEMED_AFTER
        why = "deemed accepted: no answer in time" if order.deemed else "accepted"
        until = at(order, order.accepted) + timedelta(days=90)
        events.append(
            move(
                order.accepted,
                Stage.IN_WARRANTY,
                f"{why}; warranty window until {until}",
                accepted_at=at(order, order.accepted),
            )
        )
        if order.survey is not None:
            attitude, quality, result, speed = order.survey
            detail = f"attitude {attitude}, quality {quality}, result {result}, speed {speed}"
            mean = (Decimal(sum(order.survey)) / 4).quantize(Decimal("0.01"))
            answered = order.accepted + SURVEY_AFTER
            events.append(Step(answered, "survey answered", detail, {"survey_score": mean}))
    for number, claimed in enumerate(order.claims, start=1):
        detail = f"{oid}-W{number}: repeat failure"
        events.append(Step(claimed, "warranty claim", detail, {"claims": number}))
    if order.closed is not None:
        events.append(move(order.closed, Stage.CLOSED, "quote declined: nothing repaired"))
    if order.cancelled is not None:
        events.append(move(order.cancelled, Stage.CANCELLED, "customer changed their mind"))
    clocks = spans(order)
    now = (NOW - order.booked) / HOUR
    assert {clock for clock, span in clocks.items() if span.breached(now)} == set(order.late)
    for clock in order.late:
        deadline = clocks[clock].deadline
        events.append(Step(deadline, "sla breached", f"{clock}: deadline {at(order, deadline)}"))
    for number, complaint in enumerate(order.complaints):
        for what, when in complaint.steps:
            detail = f"{oid}-C{number + 1}: {what}"
            events.append(Step(when, f"complaint {what}", detail, complaint=(number, what)))
    events.sort(key=lambda step: step.hours)  # stable: events of one moment keep their order
    assert all(at(order, step.hours) <= NOW for step in events)
    return events


def at(order: Order, hours: float) -> datetime:
    return order.booked + timedelta(hours=hours)


def clocks_at(order: Order, hours: float) -> dict[Clock, SlaClock]:
    """The order's clocks as the workflow holds them `hours` after booking."""
    clocks: dict[Clock, SlaClock] = {}
    for clock, span in spans(order).items():
        if span.start > hours:
            continue
        stopped = span.stop is not None and span.stop <= hours
        breached = span.breached(hours)
        clocks[clock] = SlaClock(
            started_at=at(order, span.start),
            deadline=at(order, span.deadline),
            stopped_at=at(order, span.stop) if stopped and span.stop is not None else None,
            breached=breached,
            breached_by=(span.stop - span.deadline) * HOUR
            if stopped and breached and span.stop is not None
            else None,
        )
    return clocks


def complaint_after(
    order: Order, state: dict[str, Any] | None, what: str, hours: float, technician: str | None
) -> dict[str, Any]:
    """A complaint's read model after one of its events (workflows/complaint.py's rules)."""
    now = at(order, hours)
    fresh = {
        "first_reply_due": now + FIRST_REPLY * HOUR,
        "resolution_due": now + RESOLUTION * HOUR,
    }
    if state is None:
        assert what == "filed"
        return {
            "state": ComplaintState.OPEN,
            "tier": 1,
            "filed_at": now,
            "technician_id": technician,
            "acknowledged_at": None,
            "resolved_at": None,
            **fresh,
        }
    if what == "acknowledged":
        return state | {"state": ComplaintState.ACKNOWLEDGED, "acknowledged_at": now}
    if what == "escalated":  # the first reply was missed: its deadline starts again
        return state | {"tier": state["tier"] + 1, "first_reply_due": fresh["first_reply_due"]}
    if what == "resolved":
        acknowledged = state["acknowledged_at"] or now
        return state | {
            "state": ComplaintState.RESOLVED,
            "acknowledged_at": acknowledged,
            "resolved_at": now,
        }
    assert what == "reopened"
    return state | {
        "state": ComplaintState.OPEN,
        "tier": state["tier"] + 1,
        "acknowledged_at": None,
        "resolved_at": None,
        **fresh,
    }


def record_inputs(order: Order) -> Iterator[RecordInput]:
    """Each event with the order's read model (and the complaint's) right after it."""
    oid = order_id(order)
    state: dict[str, Any] = {
        "stage": Stage.BOOKED,
        "technician_id": None,
        "rework_count": 0,
        "claims": 0,
        "accepted_at": None,
        "survey_score": None,
    }
    complaints: dict[int, dict[str, Any]] = {}
    for seq, step in enumerate(steps(order), start=1):
        state |= step.changes
        moment = at(order, step.hours)
        sla = clocks_at(order, step.hours)
        snapshot = OrderSnapshot(
            order_id=oid,
            priority=order.priority,
            channel=Channel.PHONE,
            category=order.category,
            region=order.region,
            warranty_status=WarrantyStatus.IN_WARRANTY,
            sla_breached=any(clock.breached for clock in sla.values()),
            currency="CNY",
            total=Decimal("0.00"),
            booked_at=order.booked,
            updated_at=moment,
            customer_name="Li Wei",
            customer_phone="+86 138 0013 8000",
            booked_on=order.booked_on,
            sla=sla,
            **state,
        )
        complaint = None
        if step.complaint is not None:
            number, what = step.complaint
            complaints[number] = complaint_after(
                order, complaints.get(number), what, step.hours, state["technician_id"]
            )
            complaint = ComplaintSnapshot(
                complaint_id=f"{oid}-C{number + 1}",
                order_id=oid,
                category="late arrival",
                concerns_work=order.complaints[number].concerns_work,
                updated_at=moment,
                **complaints[number],
            )
        event = OrderEvent(
            order_id=oid, seq=seq, at=moment, actor="system", action=step.action, detail=step.detail
        )
        yield RecordInput(snapshot=snapshot, event=event, complaint=complaint)


# ---- the store and the report --------------------------------------------------------------


@pytest.fixture
async def engine(records_store: AsyncEngine) -> AsyncEngine:
    """The 30 orders written through the records writer, a few events per write (as an order's
    workflow hands over what one of its tasks logged), so each fact is kept across writes."""
    writer = RecordActivities(records_store)
    for order in ORDERS:
        inputs = list(record_inputs(order))
        for start in range(0, len(inputs), 4):
            await writer.record_order_events(inputs[start : start + 4])
    return records_store


async def report(engine: AsyncEngine, group_by: GroupBy | None = None, **filters: Any) -> KpiReport:
    async with AsyncSession(engine) as session:
        return await kpis.report(session, Targets(), kpis.Filters(**filters), group_by, NOW)


async def groups(
    engine: AsyncEngine, group_by: GroupBy | None = None, **filters: Any
) -> dict[str | None, KpiGroup]:
    answer = await report(engine, group_by, **filters)
    return {group.key: group for group in answer.groups}


def d(text: str | None) -> Decimal | None:
    return Decimal(text) if text is not None else None


def dist(
    count: int,
    mean: str | None = None,
    p50: str | None = None,
    p80: str | None = None,
    p90: str | None = None,
) -> Distribution:
    return Distribution(count=count, mean=d(mean), p50=d(p50), p80=d(p80), p90=d(p90))


def rate(value: str | None, part: int, whole: int) -> Rate:
    return Rate(value=d(value), numerator=part, denominator=whole)


def target_rate(
    value: str | None, part: int, whole: int, target: str, met: bool | None
) -> TargetRate:
    return TargetRate(
        value=d(value), numerator=part, denominator=whole, target=Decimal(target), met=met
    )


def mttr(value: str | None, count: int, met: bool | None) -> TargetMean:
    """A mean time to repair against the default target, 48 hours."""
    return TargetMean(value=d(value), count=count, target=Decimal(48), met=met)


def resolution(hours: Distribution, met: bool | None) -> TargetDistribution:
    """Resolution hours against the default target: p80 at most 24 hours."""
    return TargetDistribution(**hours.model_dump(), target=Decimal(24), met=met)


def score(mean: str | None, responses: int, response_rate: str | None) -> Satisfaction:
    """One survey dimension against the default target, a mean of at least 4.25."""
    value = d(mean)
    met = value >= Decimal("4.25") if value is not None else None
    return Satisfaction(
        mean=value,
        responses=responses,
        response_rate=d(response_rate),
        target=Decimal("4.25"),
        met=met,
    )


def counts(group: KpiGroup) -> tuple[int, int, int, int, int]:
    """(orders, open, accepted, cancelled, ended_unrepaired)"""
    return (group.orders, group.open, group.accepted, group.cancelled, group.ended_unrepaired)


NO_SCORES = {dimension: score(None, 0, None) for dimension in kpis.DIMENSIONS}


# ---- all orders --------------------------------------------------------------------------------


async def test_all_orders(engine: AsyncEngine) -> None:
    """Every figure of the 30 orders in one group."""
    answer = await report(engine)
    assert answer.group_by is None
    (group,) = answer.groups
    assert group == KpiGroup(
        key=None,
        # accepted (20): N01-N04, N06, N07, N09, N12, N04-W1, S01-S03, S05-S09, E02-E04.
        # ended unrepaired (6): closed N05, S10; cancelled N08, S04, S12, E01.
        # open (4): N10 (on site), N11 and E05 (dispatching), S11 (awaiting acceptance).
        orders=30,
        open=4,  # 30 - 20 - 6
        accepted=20,
        cancelled=4,
        ended_unrepaired=6,
        # 25 responded (not N08, N11, S04, E01, E05), ascending:
        # 0.3 | 0.5 x7 (N01 N07 N10 N04-W1 S03 S11 E04) | 0.7 | 0.8 x2 | 1.0 x6 (ranks 12-17)
        # | 1.2 | 1.5 x2 (ranks 19-20) | 1.8 | 2.0 | 2.5 (rank 23) | 3.0 | 4.0
        # sum 0.3 + 3.5 + 0.7 + 1.6 + 6 + 1.2 + 3 + 1.8 + 2 + 2.5 + 3 + 4 = 29.6; 29.6/25 = 1.184
        # p50 rank ceil(12.5) = 13 -> 1.0; p80 rank 20 -> 1.5; p90 rank ceil(22.5) = 23 -> 2.5
        first_response_hours=dist(25, "1.18", "1.00", "1.50", "2.50"),
        # 24 checked in (also not S12), ascending: 1.5 1.7 2 2 2.3 2.5 | 3 x4 (ranks 7-10) | 3.5
        # | 4 x3 (ranks 12-14) | 5 5 | 6 x3 | 7 7 (ranks 20-21) | 9 (rank 22) | 10 | 26
        # sum 1.5 + 1.7 + 4 + 2.3 + 2.5 + 12 + 3.5 + 12 + 10 + 18 + 14 + 9 + 10 + 26 = 126.5
        # 126.5/24 = 5.2708; p50 rank 12 -> 4; p80 rank ceil(19.2) = 20 -> 7;
        # p90 rank ceil(21.6) = 22 -> 9
        arrival_hours=dist(24, "5.27", "4.00", "7.00", "9.00"),
        # Counted: the 25 responded, and N11 and S04, breached without a response (27). N08
        # and E01 were cancelled before a response, their clocks stopped unbreached: in
        # neither; E05's clock runs, not yet due: in neither. Responded but breached: N06, S02.
        # 25 - 2 = 23; 23/27 = 0.85185 -> 0.852 >= 0.80
        response_within_sla=target_rate("0.852", 23, 27, "0.80", met=True),
        # Counted: the 24 checked in, and N11, breached without a check-in (25). N08, S04, S12,
        # E01 were cancelled before a check-in, unbreached, and E05 runs: in neither. Checked
        # in but breached: S02, S06. 24 - 2 = 22; 22/25 = 0.88
        on_time_arrival_rate=rate("0.880", 22, 25),
        # Booking to acceptance, the 20 accepted: own (16) 4.1 + 2.5 + 7 + 5 + 5.1 + 8 + 7.5
        # + 4 + 10 + 3 + 40.9 + 9.1 + 3.6 + 31.7 + 8.5 + 3.1 = 153.1; deemed (4: N07, S01, S05,
        # E02) 78 + 77.6 + 76.5 + 76.8 = 308.9. 462.0/20 = 23.10 <= 48
        mttr_hours=mttr("23.10", 20, met=True),
        # 153.1/16 = 9.56875 -> 9.57
        mttr_hours_without_deemed=mttr("9.57", 16, met=True),
        # The last completion of the 20 accepted, ascending: 2.2 2.5 2.7 2.7 3.0 3.2 3.6 4.3 4.5
        # 4.8 (rank 10) | 5.6 5.9 5.9 6.0 6.5 7.5 (rank 16) 7.8 9.5 (rank 18) 30 (S09) 40 (S06)
        # sum 33.5 + 124.7 = 158.2; 158.2/20 = 7.91; p50 rank 10 -> 4.8; p80 rank 16 -> 7.5;
        # p90 rank 18 -> 9.5 (<= 24: met)
        resolution_hours=resolution(dist(20, "7.91", "4.80", "7.50", "9.50"), met=True),
        # Reworked: N03, S06, S09; claimed: N04, N09 (2), S05, E02. 20 - 7 = 13; 13/20 = 0.65
        first_time_fix_rate=rate("0.650", 13, 20),
        repeat_failure_rate=rate("0.200", 4, 20),  # 4/20
        rework_rate=rate("0.150", 3, 20),  # 3/20
        # 20/(20 + 6) = 0.76923 -> 0.769 < 0.90
        completion_rate=target_rate("0.769", 20, 26, "0.90", met=False),
        orders_with_sla_breach=7,  # N06, N07, N10, N11, S02, S04, S06
        complaints=7,  # about N03, N06, N11, N12, S02, S06, E03
        complaint_rate=rate("0.233", 7, 30),  # 7/30 = 0.2333
        # First reply by the first deadline (filed + 24h): N03 (6 <= 29), S02 (9 <= 32.5), E03
        # (its resolution at 15 <= 33); late: N06 (27 > 26), S06 (50 > 49: answered after
        # climbing a tier, within the new deadline, 73), N12 (never, due at 32 < now).
        # N11's is not due yet. 3/6
        complaint_first_reply_on_time_rate=rate("0.500", 3, 6),
        # Filing to the latest resolution: N03 10-5 = 5, S02 20.5-8.5 = 12, E03 26-9 = 17 (not
        # its first, 15-9 = 6), N06 30-2 = 28, S06 60-25 = 35. 97/5 = 19.4;
        # p50 rank 3 -> 17; p80 rank 4 -> 28; p90 rank ceil(4.5) = 5 -> 35
        complaint_resolution_hours=dist(5, "19.40", "17.00", "28.00", "35.00"),
        # 16 surveys (of the 20 accepted, not N07, N04-W1, S01, E03): 16/20 = 0.8
        # attitude 5+4+3+5+2+4+4 (N) +3+5+4+3+5+5+4 (S) +4+5 (E) = 65; 65/16 = 4.0625
        # quality  5+4+4+4+3+5+4 +2+5+5+3+4+5+3 +5+4 = 65 -> 4.06
        # result   4+5+3+5+3+4+4 +4+5+4+2+4+4+4 +4+5 = 64 -> 4.00
        # speed    5+4+4+5+2+4+5 +3+5+4+3+5+4+3 +4+4 = 64 -> 4.00; none reaches 4.25
        satisfaction={
            "attitude": score("4.06", 16, "0.800"),
            "quality": score("4.06", 16, "0.800"),
            "result": score("4.00", 16, "0.800"),
            "speed": score("4.00", 16, "0.800"),
        },
        # response: N06, N11 (emergency), S02, S04 (high); arrival: N11, S02, S06 (normal);
        # general repair: N07 (high), N10 (normal)
        sla_breaches={
            "response": {"emergency": 2, "high": 2},
            "arrival": {"emergency": 1, "high": 1, "normal": 1},
            "general_repair": {"high": 1, "normal": 1},
        },
    )


async def test_figures_are_json_numbers(engine: AsyncEngine) -> None:
    """Decimals inside, numbers (not strings) in the JSON answer."""
    answer = (await report(engine)).model_dump(mode="json")
    (group,) = answer["groups"]
    assert group["mttr_hours"] == {"value": 23.1, "count": 20, "target": 48.0, "met": True}
    assert isinstance(group["first_response_hours"]["mean"], float)
    assert group["first_response_hours"]["mean"] == 1.18
    assert group["response_within_sla"]["value"] == 0.852
    assert group["satisfaction"]["attitude"]["mean"] == 4.06
    assert answer["targets"]["completion_rate"] == 0.9


# ---- by region ---------------------------------------------------------------------------------


async def test_by_region(engine: AsyncEngine) -> None:
    """Every figure of each region."""
    answer = await report(engine, GroupBy.REGION)
    assert answer.group_by == GroupBy.REGION
    assert [group.key for group in answer.groups] == ["east", "north", "south"]
    east, north, south = answer.groups
    assert east == KpiGroup(
        key="east",
        # E01 cancelled; E02 (deemed), E03, E04 accepted; E05 just booked.
        orders=5,
        open=1,
        accepted=3,
        cancelled=1,
        ended_unrepaired=1,
        # E04 0.5, E02 1.0, E03 1.8: 3.3/3 = 1.10; p50 rank 2 -> 1.0; p80, p90 rank 3 -> 1.8
        first_response_hours=dist(3, "1.10", "1.00", "1.80", "1.80"),
        # E04 2, E02 4, E03 7: 13/3 = 4.333; p50 rank 2 -> 4; p80, p90 rank 3 -> 7
        arrival_hours=dist(3, "4.33", "4.00", "7.00", "7.00"),
        # E02, E03, E04 responded and checked in, none late: 3/3. E01 was cancelled before a
        # response, unbreached, and E05 runs: in neither
        response_within_sla=target_rate("1.000", 3, 3, "0.80", met=True),
        on_time_arrival_rate=rate("1.000", 3, 3),
        # 76.8 + 8.5 + 3.1 = 88.4; 88.4/3 = 29.4667
        mttr_hours=mttr("29.47", 3, met=True),
        mttr_hours_without_deemed=mttr("5.80", 2, met=True),  # (8.5 + 3.1)/2
        # E04 2.7, E02 4.8, E03 7.5: 15/3 = 5; p50 rank 2 -> 4.8; p80, p90 rank 3 -> 7.5
        resolution_hours=resolution(dist(3, "5.00", "4.80", "7.50", "7.50"), met=True),
        first_time_fix_rate=rate("0.667", 2, 3),  # E02 has a claim: 2/3
        repeat_failure_rate=rate("0.333", 1, 3),
        rework_rate=rate("0.000", 0, 3),
        completion_rate=target_rate("0.750", 3, 4, "0.90", met=False),  # 3/(3 + 1)
        orders_with_sla_breach=0,
        complaints=1,  # E03's
        complaint_rate=rate("0.200", 1, 5),
        complaint_first_reply_on_time_rate=rate("1.000", 1, 1),
        complaint_resolution_hours=dist(1, "17.00", "17.00", "17.00", "17.00"),  # 26 - 9
        # E02 (4, 5, 4, 4) and E04 (5, 4, 5, 4), of 3 accepted: 2/3 = 0.667
        satisfaction={
            "attitude": score("4.50", 2, "0.667"),
            "quality": score("4.50", 2, "0.667"),
            "result": score("4.50", 2, "0.667"),
            "speed": score("4.00", 2, "0.667"),
        },
        sla_breaches={},
    )
    assert north == KpiGroup(
        key="north",
        # accepted: N01-N04, N06, N07, N09, N12, N04-W1; N05 closed, N08 cancelled; N10, N11 open
        orders=13,
        open=2,
        accepted=9,
        cancelled=1,
        ended_unrepaired=2,
        # 11 (not N08, N11): 0.3 0.5 0.5 0.5 0.5 0.8 (rank 6) 1.0 1.2 1.5 (rank 9) 2.0 4.0
        # 12.8/11 = 1.1636; p50 rank ceil(5.5) = 6 -> 0.8; p80 rank ceil(8.8) = 9 -> 1.5;
        # p90 rank ceil(9.9) = 10 -> 2.0
        first_response_hours=dist(11, "1.16", "0.80", "1.50", "2.00"),
        # 11: 1.5 2 2.5 3 3 3 (rank 6) 3.5 4 5 (rank 9) 6 6; 39.5/11 = 3.5909
        arrival_hours=dist(11, "3.59", "3.00", "5.00", "6.00"),
        # 11 responded (not N08, N11), N06 of them late: 10; with N11, breached without a
        # response: 10/12 = 0.8333. N08, cancelled before a response, unbreached: in neither
        response_within_sla=target_rate("0.833", 10, 12, "0.80", met=True),
        # 11 checked in (not N08, N11), none late; with N11, breached: 11/12 = 0.91667
        on_time_arrival_rate=rate("0.917", 11, 12),
        # 4.1 + 2.5 + 7 + 5 + 5.1 + 78 (N07, deemed) + 8 + 7.5 + 4 = 121.2; 121.2/9 = 13.4667
        mttr_hours=mttr("13.47", 9, met=True),
        mttr_hours_without_deemed=mttr("5.40", 8, met=True),  # 43.2/8
        # 2.2 2.7 3.2 3.6 4.3 (rank 5) 5.9 5.9 6.0 (rank 8) 6.5; 40.3/9 = 4.4778
        resolution_hours=resolution(dist(9, "4.48", "4.30", "6.00", "6.50"), met=True),
        first_time_fix_rate=rate("0.667", 6, 9),  # not N03 (rework), N04, N09 (claims)
        repeat_failure_rate=rate("0.222", 2, 9),
        rework_rate=rate("0.111", 1, 9),
        completion_rate=target_rate("0.818", 9, 11, "0.90", met=False),  # 9/11 = 0.81818
        orders_with_sla_breach=4,  # N06, N07, N10, N11
        complaints=4,  # N03, N06, N11, N12
        complaint_rate=rate("0.308", 4, 13),  # 0.30769
        # on time N03; late N06, N12 (never answered, past due); N11 not yet due
        complaint_first_reply_on_time_rate=rate("0.333", 1, 3),
        # N03 5, N06 28: 33/2 = 16.5; p50 rank 1 -> 5; p80 rank ceil(1.6) = 2 -> 28
        complaint_resolution_hours=dist(2, "16.50", "5.00", "28.00", "28.00"),
        # 7 surveys (N01-N04, N06, N09, N12) of 9 accepted: 0.7778
        # attitude 5+4+3+5+2+4+4 = 27 -> 3.857; quality 5+4+4+4+3+5+4 = 29 -> 4.143;
        # result 4+5+3+5+3+4+4 = 28 -> 4.00; speed 5+4+4+5+2+4+5 = 29 -> 4.143
        satisfaction={
            "attitude": score("3.86", 7, "0.778"),
            "quality": score("4.14", 7, "0.778"),
            "result": score("4.00", 7, "0.778"),
            "speed": score("4.14", 7, "0.778"),
        },
        sla_breaches={
            "response": {"emergency": 2},  # N06, N11
            "arrival": {"emergency": 1},  # N11
            "general_repair": {"high": 1, "normal": 1},  # N07, N10
        },
    )
    assert south == KpiGroup(
        key="south",
        # accepted: S01 (deemed), S02, S03, S05 (deemed), S06-S09; S04, S12 cancelled, S10
        # closed; S11 awaiting acceptance
        orders=12,
        open=1,
        accepted=8,
        cancelled=2,
        ended_unrepaired=3,
        # 11 (not S04): 0.5 0.5 0.7 0.8 1 1 (rank 6) 1 1 1.5 (rank 9) 2.5 (rank 10) 3
        # 13.5/11 = 1.2273
        first_response_hours=dist(11, "1.23", "1.00", "1.50", "2.50"),
        # 10 (not S04, S12): 1.7 2.3 3 4 5 (rank 5) 6 7 9 (rank 8) 10 (rank 9) 26; 74/10
        arrival_hours=dist(10, "7.40", "5.00", "9.00", "10.00"),
        # 11 responded (not S04), S02 of them late: 10; with S04, breached without a response:
        # 10/12 = 0.8333 >= 0.80
        response_within_sla=target_rate("0.833", 10, 12, "0.80", met=True),
        # 10 checked in (not S04, S12: cancelled before a check-in, unbreached, in neither),
        # S02, S06 of them late: 8/10
        on_time_arrival_rate=rate("0.800", 8, 10),
        # 77.6 + 10 + 3 + 76.5 + 40.9 + 9.1 + 3.6 + 31.7 = 252.4; 252.4/8 = 31.55
        mttr_hours=mttr("31.55", 8, met=True),
        mttr_hours_without_deemed=mttr("16.38", 6, met=True),  # 98.3/6 = 16.3833
        # 2.5 3 4.5 5.6 (rank 4) 7.8 9.5 30 (rank 7) 40; 102.9/8 = 12.8625;
        # p80 rank ceil(6.4) = 7 -> 30 > 24: not met
        resolution_hours=resolution(dist(8, "12.86", "5.60", "30.00", "40.00"), met=False),
        first_time_fix_rate=rate("0.625", 5, 8),  # not S05 (claim), S06, S09 (reworks)
        repeat_failure_rate=rate("0.125", 1, 8),
        rework_rate=rate("0.250", 2, 8),
        completion_rate=target_rate("0.727", 8, 11, "0.90", met=False),  # 8/11 = 0.72727
        orders_with_sla_breach=3,  # S02, S04, S06
        complaints=2,  # S02, S06
        complaint_rate=rate("0.167", 2, 12),
        complaint_first_reply_on_time_rate=rate("0.500", 1, 2),  # S02 on time, S06 late
        complaint_resolution_hours=dist(2, "23.50", "12.00", "35.00", "35.00"),  # 12, 35
        # 7 surveys (S02, S03, S05-S09) of 8 accepted: 0.875
        # attitude 3+5+4+3+5+5+4 = 29 -> 4.143; quality 2+5+5+3+4+5+3 = 27 -> 3.857;
        # result 4+5+4+2+4+4+4 = 27 -> 3.857; speed 3+5+4+3+5+4+3 = 27 -> 3.857
        satisfaction={
            "attitude": score("4.14", 7, "0.875"),
            "quality": score("3.86", 7, "0.875"),
            "result": score("3.86", 7, "0.875"),
            "speed": score("3.86", 7, "0.875"),
        },
        sla_breaches={
            "response": {"high": 2},  # S02, S04
            "arrival": {"high": 1, "normal": 1},  # S02, S06
        },
    )


# ---- by priority, technician, week, month and day ----------------------------------------------


async def test_by_priority(engine: AsyncEngine) -> None:
    """The clocks' figures of each priority: response, arrival, breaches by clock."""
    by_priority = await groups(engine, GroupBy.PRIORITY)
    assert list(by_priority) == ["emergency", "high", "normal", "low"]  # by severity
    emergency, high = by_priority["emergency"], by_priority["high"]
    low, normal = by_priority["low"], by_priority["normal"]

    # N02, N06, N11, S03, S08, E04: all accepted but N11 (open)
    assert counts(emergency) == (6, 1, 5, 0, 0)
    # 0.3 0.5 0.5 (rank 3) 0.8 (rank 4) 1.5 (rank 5); 3.6/5 = 0.72
    assert emergency.first_response_hours == dist(5, "0.72", "0.50", "0.80", "1.50")
    # 5 responded (not N11), N06 of them late: 4; with N11, breached without a response:
    # 4/6 = 0.667 < 0.80
    assert emergency.response_within_sla == target_rate("0.667", 4, 6, "0.80", met=False)
    # 5 checked in (not N11), none late; with N11, breached without a check-in: 5/6
    assert emergency.on_time_arrival_rate == rate("0.833", 5, 6)
    assert emergency.sla_breaches == {"response": {"emergency": 2}, "arrival": {"emergency": 1}}
    assert emergency.orders_with_sla_breach == 2
    assert emergency.completion_rate == target_rate("1.000", 5, 5, "0.90", met=True)

    # N07, N04-W1, S02, S09, E03 accepted; S04, S12, E01 cancelled
    assert counts(high) == (8, 0, 5, 3, 3)
    # N07 0.5, N04-W1 0.5, S09 1, S12 1 (rank 3), E03 1.8 (rank 5), S02 3 (rank 6);
    # 7.8/6 = 1.30; p80 rank ceil(4.8) = 5; p90 rank ceil(5.4) = 6
    assert high.first_response_hours == dist(6, "1.30", "1.00", "1.80", "3.00")
    # 6 responded (not S04, E01), S02 of them late: 5; with S04, breached without a response:
    # 5/7 = 0.71429. E01, cancelled before a response, unbreached: in neither
    assert high.response_within_sla == target_rate("0.714", 5, 7, "0.80", met=False)
    # 5 checked in (N07, N04-W1, S02, S09, E03), S02 late: 4/5. S04, S12, E01 were cancelled
    # before a check-in, unbreached: in neither
    assert high.on_time_arrival_rate == rate("0.800", 4, 5)
    assert high.sla_breaches == {
        "response": {"high": 2},  # S02, S04
        "arrival": {"high": 1},  # S02
        "general_repair": {"high": 1},  # N07
    }
    assert high.orders_with_sla_breach == 3
    assert high.completion_rate == target_rate("0.625", 5, 8, "0.90", met=False)

    # S11 alone: awaiting acceptance; nothing to count where nothing was accepted or ended
    assert counts(low) == (1, 1, 0, 0, 0)
    assert low.first_response_hours == dist(1, "0.50", "0.50", "0.50", "0.50")
    assert low.response_within_sla == target_rate("1.000", 1, 1, "0.80", met=True)  # S11
    assert low.completion_rate == target_rate(None, 0, 0, "0.90", met=None)
    assert low.mttr_hours == mttr(None, 0, met=None)
    assert low.resolution_hours == resolution(dist(0), met=None)
    assert low.first_time_fix_rate == rate(None, 0, 0)
    assert low.complaint_rate == rate("0.000", 0, 1)
    assert low.complaint_first_reply_on_time_rate == rate(None, 0, 0)
    assert low.satisfaction == NO_SCORES
    assert low.sla_breaches == {}

    # accepted N01, N03, N04, N09, N12, S01, S05, S06, S07, E02; N05, S10 closed, N08
    # cancelled; N10, E05 open
    assert counts(normal) == (15, 2, 10, 1, 3)
    # 13 (not N08, E05): 0.5 0.5 0.7 0.8 1 1 1 (rank 7) 1 1.2 1.5 2 (rank 11) 2.5 (rank 12) 4
    # 17.7/13 = 1.3615; p80 rank ceil(10.4) = 11; p90 rank ceil(11.7) = 12
    assert normal.first_response_hours == dist(13, "1.36", "1.00", "2.00", "2.50")
    # 13 responded, none late: 13/13. N08 (cancelled before a response, unbreached) and E05
    # (its clock runs, not yet due): in neither
    assert normal.response_within_sla == target_rate("1.000", 13, 13, "0.80", met=True)
    # the same 13 checked in, S06 late: 12/13 = 0.92308
    assert normal.on_time_arrival_rate == rate("0.923", 12, 13)
    assert normal.sla_breaches == {"arrival": {"normal": 1}, "general_repair": {"normal": 1}}
    assert normal.orders_with_sla_breach == 2  # S06, N10
    assert normal.completion_rate == target_rate("0.769", 10, 13, "0.90", met=False)


async def test_by_technician(engine: AsyncEngine) -> None:
    """The repair figures of each technician, and of the orders no one was assigned."""
    by_technician = await groups(engine, GroupBy.TECHNICIAN)
    assert list(by_technician) == ["T-A", "T-B", "T-C", None]
    a, b, c, nobody = (by_technician[key] for key in ("T-A", "T-B", "T-C", None))

    # N01, N02, N04, N07 (deemed), S09, E04 accepted; S12 cancelled; N10 on site
    assert counts(a) == (8, 1, 6, 1, 1)
    # 4.1 + 2.5 + 5 + 78 + 31.7 + 3.1 = 124.4; 124.4/6 = 20.7333; without N07: 46.4/5 = 9.28
    assert a.mttr_hours == mttr("20.73", 6, met=True)
    assert a.mttr_hours_without_deemed == mttr("9.28", 5, met=True)
    assert a.first_time_fix_rate == rate("0.667", 4, 6)  # not N04 (claim), S09 (rework)
    assert a.repeat_failure_rate == rate("0.167", 1, 6)
    assert a.rework_rate == rate("0.167", 1, 6)
    # 5 surveys (N01, N02, N04, S09, E04) of 6 accepted: 0.8333
    # attitude 5+4+5+4+5 = 23 -> 4.60; quality 5+4+4+3+4 = 20 -> 4.00;
    # result 4+5+5+4+5 = 23 -> 4.60; speed 5+4+5+3+4 = 21 -> 4.20
    assert a.satisfaction == {
        "attitude": score("4.60", 5, "0.833"),
        "quality": score("4.00", 5, "0.833"),
        "result": score("4.60", 5, "0.833"),
        "speed": score("4.20", 5, "0.833"),
    }
    assert (a.complaints, a.complaint_rate) == (0, rate("0.000", 0, 8))
    assert a.complaint_first_reply_on_time_rate == rate(None, 0, 0)
    assert a.complaint_resolution_hours == dist(0)

    # N06, N12, N04-W1, S01 (deemed), S02, S03, S06, S08, E02 (deemed) accepted; S11 open
    assert counts(b) == (10, 1, 9, 0, 0)
    # 5.1 + 7.5 + 4 + 77.6 + 10 + 3 + 40.9 + 3.6 + 76.8 = 228.5; 228.5/9 = 25.3889;
    # without S01, E02: 74.1/7 = 10.5857
    assert b.mttr_hours == mttr("25.39", 9, met=True)
    assert b.mttr_hours_without_deemed == mttr("10.59", 7, met=True)
    assert b.first_time_fix_rate == rate("0.778", 7, 9)  # not S06 (rework), E02 (claim)
    assert b.repeat_failure_rate == rate("0.111", 1, 9)
    assert b.rework_rate == rate("0.111", 1, 9)
    # 7 surveys (N06, N12, S02, S03, S06, S08, E02) of 9 accepted: 0.7778
    # attitude 2+4+3+5+3+5+4 = 26 -> 3.714; quality 3+4+2+5+3+5+5 = 27 -> 3.857;
    # result 3+4+4+5+2+4+4 = 26 -> 3.714; speed 2+5+3+5+3+4+4 = 26 -> 3.714
    assert b.satisfaction == {
        "attitude": score("3.71", 7, "0.778"),
        "quality": score("3.86", 7, "0.778"),
        "result": score("3.71", 7, "0.778"),
        "speed": score("3.71", 7, "0.778"),
    }
    # N06 (late), N12 (never answered, past due), S02 (on time), S06 (late)
    assert (b.complaints, b.complaint_rate) == (4, rate("0.400", 4, 10))
    assert b.complaint_first_reply_on_time_rate == rate("0.250", 1, 4)
    # S02 12, N06 28 (rank 2), S06 35 (rank 3): 75/3 = 25
    assert b.complaint_resolution_hours == dist(3, "25.00", "28.00", "35.00", "35.00")

    # N03, N09, S05 (deemed), S07, E03 accepted; N05, S10 closed without acceptance
    assert counts(c) == (7, 0, 5, 0, 2)
    # 7 + 8 + 76.5 + 9.1 + 8.5 = 109.1; 109.1/5 = 21.82; without S05: 32.6/4 = 8.15
    assert c.mttr_hours == mttr("21.82", 5, met=True)
    assert c.mttr_hours_without_deemed == mttr("8.15", 4, met=True)
    assert c.first_time_fix_rate == rate("0.400", 2, 5)  # not N03 (rework), N09, S05 (claims)
    assert c.repeat_failure_rate == rate("0.400", 2, 5)
    assert c.rework_rate == rate("0.200", 1, 5)
    # 4 surveys (N03, N09, S05, S07) of 5 accepted: 0.8
    # attitude 3+4+4+5 = 16 -> 4.00; quality 4+5+5+4 = 18 -> 4.50;
    # result 3+4+4+4 = 15 -> 3.75; speed 4+4+4+5 = 17 -> 4.25, the target itself: met
    assert c.satisfaction == {
        "attitude": score("4.00", 4, "0.800"),
        "quality": score("4.50", 4, "0.800"),
        "result": score("3.75", 4, "0.800"),
        "speed": score("4.25", 4, "0.800"),
    }
    assert c.satisfaction["speed"].met is True
    # N03 and E03, both answered on time: 2/7 = 0.2857; resolved in 5 and 17 hours
    assert (c.complaints, c.complaint_rate) == (2, rate("0.286", 2, 7))
    assert c.complaint_first_reply_on_time_rate == rate("1.000", 2, 2)
    assert c.complaint_resolution_hours == dist(2, "11.00", "5.00", "17.00", "17.00")

    # No technician: N08, S04, E01 cancelled; N11, E05 dispatching
    assert counts(nobody) == (5, 2, 0, 3, 3)
    assert nobody.mttr_hours == mttr(None, 0, met=None)
    assert nobody.mttr_hours_without_deemed == mttr(None, 0, met=None)
    assert nobody.first_time_fix_rate == rate(None, 0, 0)
    assert nobody.satisfaction == NO_SCORES
    assert nobody.completion_rate == target_rate("0.000", 0, 3, "0.90", met=False)
    # No response at all; S04 and N11 breached without one: 0/2. N08 and E01 were cancelled
    # before a response, unbreached, and E05 runs: in neither
    assert nobody.response_within_sla == target_rate("0.000", 0, 2, "0.80", met=False)
    # N11's complaint: not answered, not yet due
    assert (nobody.complaints, nobody.complaint_rate) == (1, rate("0.200", 1, 5))
    assert nobody.complaint_first_reply_on_time_rate == rate(None, 0, 0)


async def test_by_week(engine: AsyncEngine) -> None:
    """Weeks run Monday to Sunday on the local calendar: N06, booked 00:30 on Monday 11-30
    local (Sunday in UTC), is in the week of 11-30; S06, Sunday 11-29 20:00 local (12:00
    UTC), in the week before."""
    by_week = await groups(engine, GroupBy.WEEK)
    assert list(by_week) == ["2026-11-23", "2026-11-30", "2026-12-07"]
    first, second, third = by_week.values()

    # N01-N05, S01-S06, E01, E02: accepted N01-N04, S01-S03, S05, S06, E02; S04, E01
    # cancelled, N05 closed
    assert counts(first) == (13, 0, 10, 2, 3)
    # 11 (not S04, E01): 1.5 1.7 2 2.5 3 4 (rank 6) 4 5 6 (rank 9) 9 (rank 10) 26
    # 64.7/11 = 5.8818
    assert first.arrival_hours == dist(11, "5.88", "4.00", "6.00", "9.00")
    # 2.2 2.5 2.7 3.2 4.5 (rank 5) 4.8 5.6 5.9 (rank 8) 9.5 (rank 9) 40; 80.9/10 = 8.09
    assert first.resolution_hours == resolution(dist(10, "8.09", "4.50", "5.90", "9.50"), True)
    # N03 (on time), S02 (on time), S06 (late): 2/3; resolved in 5, 12, 35: 52/3 = 17.333
    assert (first.complaints, first.complaint_rate) == (3, rate("0.231", 3, 13))
    assert first.complaint_first_reply_on_time_rate == rate("0.667", 2, 3)
    assert first.complaint_resolution_hours == dist(3, "17.33", "12.00", "35.00", "35.00")
    assert first.sla_breaches == {"response": {"high": 2}, "arrival": {"high": 1, "normal": 1}}

    # N06-N09, N12, N04-W1, S07-S10, S12, E03: accepted N06, N07, N09, N12, N04-W1, S07-S09,
    # E03; N08, S12 cancelled, S10 closed
    assert counts(second) == (12, 0, 9, 2, 3)
    # 10 (not N08, S12): 2.3 3 3.5 4 5 (rank 5) 6 6 7 (rank 8) 7 (rank 9) 10; 53.8/10
    assert second.arrival_hours == dist(10, "5.38", "5.00", "7.00", "7.00")
    # 3 3.6 4.3 5.9 6 (rank 5) 6.5 7.5 7.8 (rank 8) 30 (rank 9); 74.6/9 = 8.2889
    assert second.resolution_hours == resolution(dist(9, "8.29", "6.00", "7.80", "30.00"), True)
    # N06 (late), N12 (past due), E03 (on time): 1/3; resolved in 28 and 17 hours
    assert (second.complaints, second.complaint_rate) == (3, rate("0.250", 3, 12))
    assert second.complaint_first_reply_on_time_rate == rate("0.333", 1, 3)
    assert second.complaint_resolution_hours == dist(2, "22.50", "17.00", "28.00", "28.00")
    assert second.sla_breaches == {"response": {"emergency": 1}, "general_repair": {"high": 1}}

    # N10, N11, S11, E04 (accepted), E05
    assert counts(third) == (5, 4, 1, 0, 0)
    assert third.arrival_hours == dist(3, "2.67", "3.00", "3.00", "3.00")  # 2, 3, 3: 8/3
    assert third.resolution_hours == resolution(dist(1, "2.70", "2.70", "2.70", "2.70"), True)
    # N11's complaint is the week's only one, and not due yet
    assert (third.complaints, third.complaint_rate) == (1, rate("0.200", 1, 5))
    assert third.complaint_first_reply_on_time_rate == rate(None, 0, 0)
    assert third.complaint_resolution_hours == dist(0)
    assert third.sla_breaches == {
        "response": {"emergency": 1},
        "arrival": {"emergency": 1},
        "general_repair": {"normal": 1},
    }


async def test_by_month(engine: AsyncEngine) -> None:
    """Months on the local calendar: S07 (11-30 23:00 local) is November's, S08 (12-01 01:00
    local, 11-30 17:00 UTC) December's."""
    by_month = await groups(engine, GroupBy.MONTH)
    assert list(by_month) == ["2026-11-01", "2026-12-01"]
    november, december = by_month.values()

    # N01-N06, S01-S07, E01, E02: accepted N01-N04, N06, S01-S03, S05-S07, E02; S04, E01
    # cancelled, N05 closed
    assert counts(november) == (15, 0, 12, 2, 3)
    assert november.completion_rate == target_rate("0.800", 12, 15, "0.90", met=False)
    # 4.1 + 2.5 + 7 + 5 + 5.1 + 77.6 + 10 + 3 + 76.5 + 40.9 + 9.1 + 76.8 = 317.6;
    # 317.6/12 = 26.4667; without S01, S05, E02: 86.7/9 = 9.6333
    assert november.mttr_hours == mttr("26.47", 12, met=True)
    assert november.mttr_hours_without_deemed == mttr("9.63", 9, met=True)
    # 11 surveys (not S01) of 12 accepted: 0.9167
    # attitude 5+4+3+5+2 +3+5+4+3+5 +4 = 43 -> 3.909; quality 5+4+4+4+3 +2+5+5+3+4 +5 = 44;
    # result 4+5+3+5+3 +4+5+4+2+4 +4 = 43; speed 5+4+4+5+2 +3+5+4+3+5 +4 = 44
    assert november.satisfaction == {
        "attitude": score("3.91", 11, "0.917"),
        "quality": score("4.00", 11, "0.917"),
        "result": score("3.91", 11, "0.917"),
        "speed": score("4.00", 11, "0.917"),
    }

    # N07-N12, N04-W1, S08-S12, E03-E05: accepted N07, N09, N12, N04-W1, S08, S09, E03, E04;
    # N08, S12 cancelled, S10 closed; N10, N11, S11, E05 open
    assert counts(december) == (15, 4, 8, 2, 3)
    assert december.completion_rate == target_rate("0.727", 8, 11, "0.90", met=False)
    # 78 + 8 + 7.5 + 4 + 3.6 + 31.7 + 8.5 + 3.1 = 144.4; 144.4/8 = 18.05;
    # without N07: 66.4/7 = 9.4857
    assert december.mttr_hours == mttr("18.05", 8, met=True)
    assert december.mttr_hours_without_deemed == mttr("9.49", 7, met=True)
    # 5 surveys (N09, N12, S08, S09, E04) of 8 accepted: 0.625
    # attitude 4+4+5+4+5 = 22 -> 4.40; quality 5+4+5+3+4 = 21 -> 4.20;
    # result 4+4+4+4+5 = 21 -> 4.20; speed 4+5+4+3+4 = 20 -> 4.00
    assert december.satisfaction == {
        "attitude": score("4.40", 5, "0.625"),
        "quality": score("4.20", 5, "0.625"),
        "result": score("4.20", 5, "0.625"),
        "speed": score("4.00", 5, "0.625"),
    }


async def test_by_day(engine: AsyncEngine) -> None:
    """Days on the local calendar, only those with bookings."""
    by_day = await groups(engine, GroupBy.DAY)
    assert {day: group.orders for day, group in by_day.items()} == {
        "2026-11-23": 2,  # N01, N02
        "2026-11-24": 2,  # S01, S02
        "2026-11-25": 2,  # N03, E01
        "2026-11-26": 2,  # N04, S03
        "2026-11-27": 2,  # N05, S04
        "2026-11-28": 2,  # S05, E02
        "2026-11-29": 1,  # S06
        "2026-11-30": 2,  # N06 (00:30), S07 (23:00)
        "2026-12-01": 3,  # N07, N04-W1, S08 (01:00)
        "2026-12-02": 2,  # N08, S09
        "2026-12-03": 2,  # N09, E03
        "2026-12-04": 2,  # N12, S10
        "2026-12-06": 1,  # S12
        "2026-12-07": 1,  # E04
        "2026-12-08": 2,  # N10, S11
        "2026-12-09": 1,  # N11
        "2026-12-10": 1,  # E05
    }
    first_of_december = by_day["2026-12-01"]
    # N07 0.5, N04-W1 0.5, S08 0.8: 1.8/3 = 0.60; p50 rank 2 -> 0.5; p80, p90 rank 3 -> 0.8
    assert first_of_december.first_response_hours == dist(3, "0.60", "0.50", "0.80", "0.80")
    # N07 78 (deemed), N04-W1 4, S08 3.6: 85.6/3 = 28.5333
    assert first_of_december.mttr_hours == mttr("28.53", 3, met=True)


# ---- filters -----------------------------------------------------------------------------------


async def test_booked_from_and_to(engine: AsyncEngine) -> None:
    """[from, to): from N06's booking (the first of the week of 11-30) to E04's (the first of
    the next week) is that week, whose figures test_by_week worked out."""
    n06, e04 = BY_NAME["N06"].booked, BY_NAME["E04"].booked
    answer = await report(engine, booked_from=n06, booked_to=e04)
    assert (answer.booked_from, answer.booked_to) == (n06, e04)
    (week,) = answer.groups
    by_week = await groups(engine, GroupBy.WEEK)
    assert week == by_week["2026-11-30"].model_copy(update={"key": None})
    assert counts(week) == (12, 0, 9, 2, 3)
    # A moment later, N06 is left out; up to a moment after E04's booking, E04 is in.
    (later,) = (await report(engine, booked_from=n06 + timedelta(seconds=1))).groups
    assert later.orders == 30 - 13 - 1  # not week 11-23, nor N06
    (until_e04,) = (await report(engine, booked_to=e04 + timedelta(seconds=1))).groups
    assert until_e04.orders == 13 + 12 + 1  # weeks 11-23, 11-30 and E04


async def test_region_and_technician_filters(engine: AsyncEngine) -> None:
    """A filtered report's one group has the figures of that group in a grouped report."""
    by_region = await groups(engine, GroupBy.REGION)
    (south,) = (await report(engine, region="south")).groups
    assert south == by_region["south"].model_copy(update={"key": None})
    by_technician = await groups(engine, GroupBy.TECHNICIAN)
    (b,) = (await report(engine, technician_id="T-B")).groups
    assert b == by_technician["T-B"].model_copy(update={"key": None})


async def test_no_order_matches(engine: AsyncEngine) -> None:
    """Grouped, no group; not grouped, the one group of no orders, with nothing to count."""
    assert (await report(engine, GroupBy.REGION, region="west")).groups == []
    (nothing,) = (await report(engine, region="west")).groups
    assert counts(nothing) == (0, 0, 0, 0, 0)
    assert nothing.first_response_hours == dist(0)
    assert nothing.response_within_sla == target_rate(None, 0, 0, "0.80", met=None)
    assert nothing.complaint_rate == rate(None, 0, 0)
    assert nothing.satisfaction == NO_SCORES
    assert nothing.sla_breaches == {}


async def test_priority_filter_grouped_by_region(engine: AsyncEngine) -> None:
    """High-priority orders per region."""
    by_region = await groups(engine, GroupBy.REGION, priority=HIGH)
    assert list(by_region) == ["east", "north", "south"]
    east, north, south = by_region.values()
    assert counts(east) == (2, 0, 1, 1, 1)  # E01 cancelled, E03 accepted
    assert counts(north) == (2, 0, 2, 0, 0)  # N07, N04-W1 accepted
    assert counts(south) == (4, 0, 2, 2, 2)  # S02, S09 accepted; S04, S12 cancelled
    # east: E03 within; E01, cancelled before a response, unbreached, in neither: 1/1.
    # north: N07, N04-W1 within: 2/2. south: S09, S12 within, S02 responded late, S04 breached
    # without a response: 2/4
    assert east.response_within_sla == target_rate("1.000", 1, 1, "0.80", met=True)
    assert north.response_within_sla == target_rate("1.000", 2, 2, "0.80", met=True)
    assert south.response_within_sla == target_rate("0.500", 2, 4, "0.80", met=False)
    assert south.sla_breaches == {"response": {"high": 2}, "arrival": {"high": 1}}
    # N07 78 (deemed), N04-W1 4: 82/2 = 41; without N07: 4
    assert north.mttr_hours == mttr("41.00", 2, met=True)
    assert north.mttr_hours_without_deemed == mttr("4.00", 1, met=True)


async def test_category_and_region_filters_grouped_by_technician(engine: AsyncEngine) -> None:
    """The north's refrigerators per technician: N01, N07 (T-A), N12 (T-B), N03, N05, N09
    (T-C), N11 (no one)."""
    by_technician = await groups(engine, GroupBy.TECHNICIAN, region="north", category=FRIDGE)
    assert list(by_technician) == ["T-A", "T-B", "T-C", None]
    a, b, c, nobody = by_technician.values()
    assert counts(a) == (2, 0, 2, 0, 0)
    assert counts(b) == (1, 0, 1, 0, 0)
    assert counts(c) == (3, 0, 2, 0, 1)  # N05 closed without acceptance
    assert counts(nobody) == (1, 1, 0, 0, 0)
    assert a.first_response_hours == dist(2, "0.50", "0.50", "0.50", "0.50")  # 0.5, 0.5
    # N03 1, N09 1.2, N05 2: 4.2/3 = 1.40; p50 rank 2 -> 1.2; p80, p90 rank 3 -> 2
    assert c.first_response_hours == dist(3, "1.40", "1.20", "2.00", "2.00")
    # N01 4.1, N07 78 (deemed): 82.1/2 = 41.05; without N07: 4.1
    assert a.mttr_hours == mttr("41.05", 2, met=True)
    assert a.mttr_hours_without_deemed == mttr("4.10", 1, met=True)
    # N03 (rework) and N09 (claims): none fixed the first time
    assert c.first_time_fix_rate == rate("0.000", 0, 2)
    assert c.completion_rate == target_rate("0.667", 2, 3, "0.90", met=False)
    # N11: its response and arrival clocks breached, its complaint not yet due
    assert nobody.sla_breaches == {"response": {"emergency": 1}, "arrival": {"emergency": 1}}
    assert nobody.complaint_rate == rate("1.000", 1, 1)
    assert nobody.complaint_first_reply_on_time_rate == rate(None, 0, 0)
