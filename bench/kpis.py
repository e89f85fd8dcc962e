"""The KPI report (core/kpis.py) over a read model of 100,000 orders on PostgreSQL.

    .venv/bin/python -m bench.kpis [--orders 100000] [--runs 20] [--database-url URL]
                                   [--seed N] [--explain] [--keep-database]

Without --database-url a throwaway PostgreSQL is started as `scripts/dev.py test` starts the
records tests' (installed from Debian's packages when missing; stopped and deleted at the end,
also on an error or SIGTERM). On that server, or on the one --database-url names, a fresh
database is created, migrated with `prepare_schema` (as the API and the worker migrate), filled,
and dropped at the end (unless --keep-database).

1. fill (not timed into the figure): N orders booked over the year before a fixed "now", written
   as the records writer would shape them. Each order's life is simulated (booking, dispatch,
   appointment, check-in, parts or workshop, completion, rework, acceptance or a deemed one,
   survey, warranty claim, close; some cancelled, some ending with a declined quote, the recent
   ones still open) and cut at "now"; its fact columns come from running its events through
   core/facts.py (`from_event`, `durations`, `calendar`) and its SLA clocks through
   `clock_facts`, with the default policy's deadlines. About 3% of the orders get a complaint
   (kept with `keep_complaint` after each of its snapshots). Bulk inserts (SQLAlchemy Core,
   executemany in batches), then VACUUM ANALYZE, as autovacuum would leave the tables.
2. time `kpis.report` (default targets, "now" the data's) in six cases: all orders in one
   group, grouped by month, region, technician and week, and one region over three months.
   One warm-up run of each, then R runs of each, round-robin; each run opens a fresh
   AsyncSession on the product's engine (core/db.create_engine) and closes it. Timed: the
   whole call, and each SQL statement it runs (from the engine's cursor events), so the
   figures say where the time goes. With --explain, EXPLAIN (ANALYZE, BUFFERS) of each
   statement of the slowest case.

Prints p50/p90/max per case, the statements' p50 per case, the overall p50 (all runs of all
cases) against the issue's target (p50 < 300 ms on the 2-core machine), and the ungrouped
report's headline figures next to what was filled (a check that the report counts what is
there). On a shared machine the figures move with other load: the load average is printed.
"""

import argparse
import asyncio
import base64
import hashlib
import importlib.util
import math
import os
import random
import re
import signal
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, event, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from core import facts, kpis
from core.db import async_url, create_engine, prepare_schema
from models.catalog import Category
from models.order import (
    ORDER_ID_ALPHABET,
    Channel,
    Clock,
    ComplaintState,
    Priority,
    SlaClock,
    Stage,
    WarrantyStatus,
)
from models.policy import Policy, Targets
from models.records import ComplaintRow, OrderRow

Json = dict[str, Any]
ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 300.0
SEED = 20261201
BATCH = 2000
# The data's present: noon in the default policy's time zone. Fixed, so runs compare.
NOW = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
DAYS = 365
POLICY = Policy()
ZONE = ZoneInfo(POLICY.timezone)
TARGETS = Targets()
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
REGIONS = (
    "pudong", "huangpu", "xuhui", "changning", "jingan",
    "putuo", "hongkou", "yangpu", "minhang", "baoshan",
)  # fmt: skip
TECHNICIANS_PER_REGION = 20
PRIORITIES = (Priority.EMERGENCY, Priority.HIGH, Priority.NORMAL, Priority.LOW)
PRIORITY_WEIGHTS = (5, 20, 60, 15)
CATEGORY_WEIGHTS = {
    Category.AIR_CONDITIONER: 18,
    Category.REFRIGERATOR: 14,
    Category.WASHING_MACHINE: 14,
    Category.TELEVISION: 8,
    Category.WATER_HEATER: 12,
    Category.RANGE_HOOD: 6,
    Category.GAS_STOVE: 6,
    Category.SMALL_APPLIANCE: 8,
    Category.ELECTRICAL: 7,
    Category.PLUMBING: 7,
}
WARRANTY_WEIGHTS = {
    WarrantyStatus.IN_WARRANTY: 45,
    WarrantyStatus.OUT_OF_WARRANTY: 40,
    WarrantyStatus.NO_PROOF: 15,
}
BOOKING_HOURS = tuple(range(7, 23))  # local hour of a booking, weighted below
BOOKING_HOUR_WEIGHTS = (2, 5, 9, 10, 10, 9, 7, 8, 9, 9, 8, 7, 6, 5, 3, 2)
# Shares of orders (of accepted orders for the ones after acceptance).
CANCELLED = 0.05
QUOTE_DECLINED = 0.025
PARTS = 0.10
WORKSHOP = 0.03
LATE_ARRIVAL = 0.08
REWORK = 0.04
DEEMED = 0.08
SURVEYED = 0.60
CLAIMED = 0.02
COMPLAINT = 0.025  # plus COMPLAINT_IF_BREACHED for an order with a breach
COMPLAINT_IF_BREACHED = 0.03
SECOND_COMPLAINT = 0.10
ESCALATED = 0.12
SCORES = (1, 2, 3, 4, 5)
SCORE_WEIGHTS = (1, 2, 8, 34, 55)
SCORE_WEIGHTS_BREACHED = (4, 6, 15, 40, 35)
COMPLAINT_CATEGORIES = ("late arrival", "repair quality", "technician conduct", "billing")
ERASE_AFTER = POLICY.privacy.erase_personal_data_after.as_timedelta()
# Every column of the orders row that core/facts.py keeps, so every row has the same keys.
FACT_COLUMNS: Json = {
    "booked_on": None,
    "booked_week": None,
    "booked_month": None,
    "first_response_at": None,
    "checked_in_at": None,
    "completed_at": None,
    "acceptance_deemed": None,
    "closed_at": None,
    "cancelled_at": None,
    "visits": 0,
    "survey_attitude": None,
    "survey_quality": None,
    "survey_result": None,
    "survey_speed": None,
    "response_hours": None,
    "arrival_hours": None,
    "resolution_hours": None,
    "repair_hours": None,
}


# ---- the data --------------------------------------------------------------------------------


def until_now(at: datetime | None) -> datetime | None:
    """The moment if it has come by NOW, else None: the simulation is cut at NOW."""
    return at if at is not None and at <= NOW else None


def first(*moments: datetime | None) -> datetime | None:
    present = [moment for moment in moments if moment is not None]
    return min(present) if present else None


def sla_clock(
    started: datetime | None,
    deadline: datetime,
    stopped: datetime | None,
    pauses: Sequence[tuple[datetime, datetime]] = (),
    moved: tuple[datetime, datetime] | None = None,
) -> SlaClock | None:
    """A clock as workflows/clocks.py leaves it at NOW: breached when its deadline (moved by
    the pauses that ended, or by `moved` = (when, to) while it ran) passed while it ran
    unpaused; None if it has not started by NOW."""
    if started is None or started > NOW:
        return None
    stop = until_now(stopped)
    end = stop or NOW
    breached = False
    if moved is not None and moved[0] < end:
        breached = deadline <= moved[0]
        deadline = moved[1]
    paused_for, paused_at = timedelta(0), None
    running_until = end
    for pause_start, pause_end in pauses:
        if pause_start >= end:
            break
        breached = breached or deadline <= pause_start
        if pause_end >= end:  # still paused at the end: stop() adds the pause, not to the deadline
            if stop is not None:
                paused_for += stop - pause_start
            else:
                paused_at = pause_start
            running_until = pause_start
            break
        paused_for += pause_end - pause_start
        deadline += pause_end - pause_start
    breached = breached or deadline <= running_until
    return SlaClock(
        started_at=started,
        deadline=deadline,
        stopped_at=stop,
        paused_at=paused_at,
        paused_for=paused_for,
        breached=breached,
    )


@dataclass
class Story:
    """One order's events and clocks as its workflow would have written them."""

    order_id: str
    booked_at: datetime
    events: list[tuple[datetime, str, str]] = field(default_factory=list)
    clocks: dict[Clock, SlaClock] = field(default_factory=dict)

    def log(self, at: datetime | None, action: str, detail: str = "") -> None:
        if at is not None:
            self.events.append((at, action, detail))

    def move(self, at: datetime | None, stage: Stage, detail: str = "") -> None:
        self.log(at, f"stage:{stage}", detail)

    def clock(self, name: Clock, state: SlaClock | None) -> None:
        if state is not None:
            self.clocks[name] = state

    def seen(self) -> list[tuple[datetime, str, str]]:
        """The events written by NOW, in order."""
        return sorted((e for e in self.events if e[0] <= NOW), key=lambda e: e[0])

    def facts(self, accepted_at: datetime | None) -> Json:
        """The fact columns, as activities/records.py keeps them event by event."""
        kept: Json = dict(FACT_COLUMNS)
        for at, action, detail in self.seen():
            kept |= facts.from_event(kept, action, detail, at)
        kept |= facts.calendar(self.booked_at.astimezone(ZONE).date())
        kept |= facts.durations(kept | {"booked_at": self.booked_at, "accepted_at": accepted_at})
        return kept


@dataclass
class Filled:
    """What was written: the report's headline figures must agree."""

    orders: int = 0
    complaints: int = 0
    orders_complained: int = 0
    accepted: int = 0
    cancelled: int = 0
    unrepaired: int = 0
    with_breach: int = 0
    surveys: int = 0
    claims: int = 0
    stages: Counter[str] = field(default_factory=Counter)
    generate_s: float = 0.0
    insert_s: float = 0.0
    analyze_s: float = 0.0

    def count(self, row: Json, complaints: int) -> None:
        self.orders += 1
        self.stages[row["stage"]] += 1
        self.accepted += row["accepted_at"] is not None
        self.cancelled += row["cancelled_at"] is not None
        self.unrepaired += row["accepted_at"] is None and (
            row["closed_at"] is not None or row["cancelled_at"] is not None
        )
        self.with_breach += row["sla_breached"]
        self.surveys += row["survey_attitude"] is not None
        self.claims += row["claims"] > 0
        self.complaints += complaints
        self.orders_complained += complaints > 0


class Simulation:
    """Orders and their complaints, from a fixed seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - bench data, not secrets
        self.technicians = {
            region: [f"T-{r:02d}{n:02d}" for n in range(TECHNICIANS_PER_REGION)]
            for r, region in enumerate(REGIONS)
        }
        # Some technicians take more jobs than others.
        self.workload = {
            region: [self.rng.uniform(0.3, 1.7) for _ in names]
            for region, names in self.technicians.items()
        }
        self.ids: set[str] = set()

    def rows(self, count: int) -> Iterator[tuple[Json, list[Json]]]:
        """`count` orders rows (a warranty claim's order counts as one), each with its
        complaints rows."""
        made = 0
        while made < count:
            row, complaints, claimed_at = self.order(self.booking_time())
            yield row, complaints
            made += 1
            if claimed_at is not None and made < count:
                claim, claim_complaints, _ = self.order(claimed_at, claim_of=row)
                yield claim, claim_complaints
                made += 1

    def booking_time(self) -> datetime:
        rng = self.rng
        while True:
            day = NOW.astimezone(ZONE).date() - timedelta(days=rng.randrange(DAYS))
            hour = rng.choices(BOOKING_HOURS, BOOKING_HOUR_WEIGHTS)[0]
            local = datetime.combine(day, clock_time(hour), tzinfo=ZONE) + timedelta(
                seconds=rng.uniform(0, 3600)
            )
            booked_at = local.astimezone(UTC)
            if booked_at < NOW:
                return booked_at

    def new_id(self, booked_on: date) -> str:
        while True:
            suffix = "".join(self.rng.choices(ORDER_ID_ALPHABET, k=6))
            order_id = f"RF{booked_on:%y%m%d}-{suffix}"
            if order_id not in self.ids:
                self.ids.add(order_id)
                return order_id

    def hours(self, median: float, sigma: float) -> timedelta:
        return self.rng.lognormvariate(math.log(median), sigma) * HOUR

    def between(self, low: float, high: float) -> timedelta:
        """Uniform, in hours."""
        return self.rng.uniform(low, high) * HOUR

    def order(
        self, booked_at: datetime, claim_of: Json | None = None
    ) -> tuple[Json, list[Json], datetime | None]:
        """One order's row and complaints rows as of NOW, and when it was claimed under
        warranty (its claim order is booked then)."""
        rng = self.rng
        if claim_of is None:
            region = rng.choice(REGIONS)
            category = rng.choices(list(CATEGORY_WEIGHTS), list(CATEGORY_WEIGHTS.values()))[0]
            priority = rng.choices(PRIORITIES, PRIORITY_WEIGHTS)[0]
            warranty = rng.choices(list(WARRANTY_WEIGHTS), list(WARRANTY_WEIGHTS.values()))[0]
            order_id = self.new_id(booked_at.astimezone(ZONE).date())
        else:
            region, category = claim_of["region"], Category(claim_of["category"])
            priority, warranty = Priority.HIGH, WarrantyStatus.IN_WARRANTY
            order_id = f"{claim_of['order_id']}-W1"
        chargeable = claim_of is None and warranty != WarrantyStatus.IN_WARRANTY
        story = Story(order_id, booked_at)
        story.log(booked_at, "booked", f"{category} in {region}")
        story.move(booked_at + rng.uniform(0.2, 3) * MINUTE, Stage.DISPATCHING, "offering")

        # Dispatch: the first response (an offer accepted or an assignment), or a cancellation.
        response_deadline = POLICY.deadline(booked_at, getattr(POLICY.response_sla, priority))
        arrival_deadline = POLICY.deadline(booked_at, getattr(POLICY.arrival_sla, priority))
        response_sla = (response_deadline - booked_at) / HOUR
        responded: datetime | None = booked_at + max(
            5 * MINUTE, self.hours(0.45 * response_sla, 0.6)
        )
        fate = rng.random()
        cancelled = declined = None
        if fate < CANCELLED:
            cancelled = booked_at + max(10 * MINUTE, self.hours(4, 1.2))
            if responded is not None and responded > cancelled:
                responded = None
        technician = None
        if responded is not None:
            technician = rng.choices(self.technicians[region], self.workload[region])[0]
            story.move(responded, Stage.SCHEDULED, f"{technician} accepted the offer")

        # The appointment: confirmed by the technician, the arrival clock moved to its end.
        confirmed = window_end = checked_in = None
        if responded is not None:
            confirmed = responded + rng.expovariate(6) * HOUR
            lead = {
                Priority.EMERGENCY: (0.5, 2.5),
                Priority.HIGH: (1, 8),
                Priority.NORMAL: (3, 30),
                Priority.LOW: (12, 60),
            }[priority]
            window_start = confirmed + self.between(*lead)
            window_end = window_start + 2 * HOUR
            late = self.between(0.6, 4) if rng.random() < LATE_ARRIVAL else timedelta(0)
            checked_in = max(confirmed + 15 * MINUTE, window_start + self.between(-0.3, 1.5) + late)
            if cancelled is not None and cancelled <= checked_in:
                checked_in = None
                if cancelled <= confirmed:
                    confirmed = window_end = None
            else:  # orders on site cannot be cancelled
                cancelled = None
            story.log(confirmed, "appointment confirmed", f"{window_start:%Y-%m-%d %H:%M}")
        story.move(cancelled, Stage.CANCELLED, "customer changed their mind")
        story.move(checked_in, Stage.ON_SITE, facts.ARRIVED)

        # On site: a declined quote, or the repair, paused for parts or the workshop.
        pause: tuple[datetime, datetime] | None = None
        parts = workshop = False
        finished = accepted = None
        reworks: list[datetime] = []
        if checked_in is not None:
            diagnosed = checked_in + self.between(0.1, 0.4)
            story.log(diagnosed, "diagnosed", "worn component")
            work_from = diagnosed
            if fate < CANCELLED + QUOTE_DECLINED and claim_of is None:
                declined = diagnosed + self.hours(3, 1.0)
                story.move(declined, Stage.CLOSED, "quote declined: nothing repaired")
            elif (chance := rng.random()) < PARTS + WORKSHOP:
                parts = chance < PARTS
                back = diagnosed + (self.hours(14, 0.5) if parts else self.hours(40, 0.4))
                pause = (diagnosed, back)
                if parts:
                    story.move(diagnosed, Stage.WAITING_PARTS, "1 x P-4471")
                    story.move(back, Stage.ON_SITE, "parts arrived")
                else:
                    story.move(diagnosed, Stage.IN_WORKSHOP, "device taken to the workshop")
                    story.move(back, Stage.ON_SITE, "device returned")
                work_from = back
                workshop = not parts
            if declined is None:
                finished = work_from + self.hours(0.35, 0.45)
                story.move(finished, Stage.AWAITING_ACCEPTANCE, "work finished")
                done = finished
                if rng.random() < REWORK:
                    for n in range(1 if rng.random() < 0.9 else 2):
                        rejected = done + self.between(1, 30)
                        reworks.append(rejected)
                        detail = f"rejected, rework {n + 1}: still not working"
                        story.move(rejected, Stage.ON_SITE, detail)
                        done = rejected + self.between(2, 48)
                        story.move(done, Stage.AWAITING_ACCEPTANCE, "work finished")
                deemed = rng.random() < DEEMED
                timeout = POLICY.acceptance.timeout.as_timedelta()
                accepted = done + (timeout if deemed else min(self.hours(3, 1), timeout - HOUR))
                ends = accepted + POLICY.warranty.post_repair_for(category).as_timedelta()
                why = "deemed accepted: no answer in time" if deemed else "accepted"
                story.move(accepted, Stage.IN_WARRANTY, f"{why}; warranty window until {ends}")
                story.move(ends, Stage.CLOSED, "warranty window ended")
        ended = first(cancelled, declined)

        # The clocks (cancelling or declining the quote stops them all).
        story.clock(
            Clock.RESPONSE, sla_clock(booked_at, response_deadline, first(responded, ended))
        )
        moved = (confirmed, window_end) if confirmed and window_end else None
        story.clock(
            Clock.ARRIVAL,
            sla_clock(booked_at, arrival_deadline, first(checked_in, ended), moved=moved),
        )
        if responded is not None:
            confirm_deadline = POLICY.deadline(responded, POLICY.dispatch.appointment_confirm)
            story.clock(
                Clock.APPOINTMENT_CONFIRM,
                sla_clock(responded, confirm_deadline, first(confirmed, checked_in, ended)),
            )
        if checked_in is not None:
            repair_deadline = POLICY.deadline(checked_in, POLICY.visit.general_repair)
            pauses = [pause] if pause is not None else []
            story.clock(
                Clock.GENERAL_REPAIR,
                sla_clock(checked_in, repair_deadline, first(finished, declined), pauses),
            )
        if pause is not None:
            duration = POLICY.visit.parts_dispatch if parts else POLICY.visit.workshop_repair
            name = Clock.PARTS_DISPATCH if parts else Clock.WORKSHOP_REPAIR
            story.clock(name, sla_clock(pause[0], POLICY.deadline(pause[0], duration), pause[1]))

        # After acceptance: the survey, a warranty claim.
        accepted_at = until_now(accepted)
        breached = any(clock.breached for clock in story.clocks.values())
        claimed_at = None
        if accepted is not None:
            if rng.random() < SURVEYED:
                weights = SCORE_WEIGHTS_BREACHED if breached else SCORE_WEIGHTS
                scores = rng.choices(SCORES, weights, k=4)
                detail = "attitude {}, quality {}, result {}, speed {}".format(*scores)
                story.log(accepted + POLICY.acceptance.survey_delay.as_timedelta()
                          + self.hours(4, 1.0), "survey answered", detail)  # fmt: skip
            if claim_of is None and rng.random() < CLAIMED:
                claimed_at = until_now(accepted + rng.uniform(3, 80) * DAY)
                story.log(claimed_at, "warranty claim", f"{order_id}-W1: repeat failure")

        row = self.row(story, accepted_at)
        last = story.seen()[-1][0]
        total = Decimal("0.00")
        if chargeable and until_now(declined or finished) is not None:
            labour = rng.uniform(80, 600) if declined is None else 0.0
            part = rng.uniform(50, 900) if parts or workshop else 0.0
            total = (POLICY.charges.visit_fee + Decimal(str(round(labour + part, 2)))).quantize(
                Decimal("0.01")
            )
        erased = row["closed_at"] or row["cancelled_at"]
        personal = erased is None or erased + ERASE_AFTER > NOW
        row |= {
            "priority": str(priority),
            "channel": str(rng.choice(list(Channel))),
            "category": str(category),
            "region": region,
            "technician_id": technician if until_now(responded) else None,
            "warranty_status": str(warranty),
            "currency": POLICY.charges.currency,
            "total": total,
            "updated_at": last,
            "rework_count": sum(1 for at in reworks if at <= NOW),
            "claims": int(claimed_at is not None),
            "customer_name": self.sealed(order_id, 6) if personal else None,
            "customer_phone": self.sealed(order_id, 17) if personal else None,
        }
        complaints: list[Json] = []
        if rng.random() < COMPLAINT + (COMPLAINT_IF_BREACHED if breached else 0):
            complaints.append(self.complaint(row, 1, booked_at, last))
            if rng.random() < SECOND_COMPLAINT:
                complaints.append(self.complaint(row, 2, booked_at, last))
        return row, [c for c in complaints if c], claimed_at

    def row(self, story: Story, accepted_at: datetime | None) -> Json:
        seen = story.seen()
        moves = [
            action.removeprefix("stage:") for _, action, _ in seen if action.startswith("stage:")
        ]
        stage = moves[-1] if moves else str(Stage.BOOKED)
        seq = len(seen) + 2  # and the events that move nothing (notifications, records)
        kept = story.facts(accepted_at)
        survey = [kept[f"survey_{d}"] for d in kpis.DIMENSIONS]
        return (
            kept
            | {
                "order_id": story.order_id,
                "stage": stage,
                "booked_at": story.booked_at,
                "accepted_at": accepted_at,
                "sla_breached": any(clock.breached for clock in story.clocks.values()),
                "last_seq": seq,
                "last_hash": hashlib.sha256(f"{story.order_id}:{seq}".encode()).hexdigest(),
                "survey_score": (
                    (Decimal(sum(survey)) / 4).quantize(Decimal("0.01"))
                    if survey[0] is not None
                    else None
                ),
                "sla_clocks": facts.clock_facts(story.clocks) or None,
            }
            | facts.breaches(facts.clock_facts(story.clocks))
        )

    def sealed(self, order_id: str, length: int) -> str:
        """What core/personal.seal leaves in a column: nonce, ciphertext and tag."""
        sealed = base64.urlsafe_b64encode(self.rng.randbytes(12 + length + 16)).decode()
        return f"pd1:{order_id}:{sealed}"

    def complaint(self, order: Json, n: int, booked_at: datetime, last: datetime) -> Json:
        """A complaint filed between the booking and a few days after the order's last event,
        replayed snapshot by snapshot through facts.keep_complaint; {} if filed after NOW."""
        rng = self.rng
        filed = booked_at + self.between(1, max(2.0, (last - booked_at) / HOUR + 120))
        if filed > NOW:
            return {}
        row = ComplaintRow(
            complaint_id=f"{order['order_id']}-C{n}",
            order_id=order["order_id"],
            state=str(ComplaintState.OPEN),
            tier=1,
            category=rng.choice(COMPLAINT_CATEGORIES),
            concerns_work=rng.random() < 0.5,
            technician_id=order["technician_id"],
            filed_at=filed,
            first_reply_due=POLICY.deadline(filed, POLICY.complaint.first_reply),
            resolution_due=POLICY.deadline(filed, POLICY.complaint.resolution),
            updated_at=filed,
        )
        facts.keep_complaint(row)

        def then(at: datetime, **changes: Any) -> bool:
            if at > NOW:
                return False
            row.sqlmodel_update(changes | {"updated_at": at})
            facts.keep_complaint(row)
            return True

        at = filed
        tiers = 1 + (rng.random() < ESCALATED) + (rng.random() < ESCALATED / 4)
        for tier in range(1, tiers + 1):
            if tier > 1:  # a new tier: new deadlines, a new first reply
                at += self.between(1, 48)
                if not then(
                    at,
                    tier=tier,
                    state=str(ComplaintState.OPEN),
                    acknowledged_at=None,
                    first_reply_due=POLICY.deadline(at, POLICY.complaint.first_reply),
                    resolution_due=POLICY.deadline(at, POLICY.complaint.resolution),
                ):
                    return row.model_dump()
            at += self.hours(4, 1.0)
            if not then(at, state=str(ComplaintState.ACKNOWLEDGED), acknowledged_at=at):
                return row.model_dump()
        at += self.hours(20, 1.0)
        compensation = Decimal(rng.randrange(20, 300)) if rng.random() < 0.25 else None
        if then(at, state=str(ComplaintState.RESOLVED), resolved_at=at, compensation=compensation):
            at += self.between(24, 170)
            then(at, state=str(ComplaintState.CLOSED), closed_at=at)
        return row.model_dump()


async def fill(engine: AsyncEngine, orders: int, seed: int) -> Filled:
    filled = Filled()
    simulation = Simulation(seed)
    order_batch: list[Json] = []
    complaint_batch: list[Json] = []

    async def flush() -> None:
        began = time.perf_counter()
        async with engine.begin() as connection:
            if order_batch:
                await connection.execute(insert(OrderRow), order_batch)
            if complaint_batch:
                await connection.execute(insert(ComplaintRow), complaint_batch)
        filled.insert_s += time.perf_counter() - began
        order_batch.clear()
        complaint_batch.clear()

    began = time.perf_counter()
    for row, complaints in simulation.rows(orders):
        filled.count(row, len(complaints))
        order_batch.append(row)
        complaint_batch.extend(complaints)
        if len(order_batch) >= BATCH:
            await flush()
    await flush()
    filled.generate_s = time.perf_counter() - began - filled.insert_s
    began = time.perf_counter()
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("VACUUM (ANALYZE) orders, complaints"))
    filled.analyze_s = time.perf_counter() - began
    return filled


# ---- the timing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    filters: kpis.Filters
    group_by: kpis.GroupBy | None


def local_midnight(day: date) -> datetime:
    return datetime.combine(day, clock_time(0), tzinfo=ZONE)


def cases() -> list[Case]:
    this_month = NOW.astimezone(ZONE).date().replace(day=1)
    start = (this_month - timedelta(days=160)).replace(day=1)
    end = (start + timedelta(days=95)).replace(day=1)
    region = REGIONS[0]
    return [
        Case("all orders", kpis.Filters(), None),
        Case("by month", kpis.Filters(), kpis.GroupBy.MONTH),
        Case("by region", kpis.Filters(), kpis.GroupBy.REGION),
        Case("by technician", kpis.Filters(), kpis.GroupBy.TECHNICIAN),
        Case("by week", kpis.Filters(), kpis.GroupBy.WEEK),
        Case(
            f"{region}, {start:%Y-%m} to {end - timedelta(days=1):%Y-%m}",
            kpis.Filters(
                booked_from=local_midnight(start), booked_to=local_midnight(end), region=region
            ),
            None,
        ),
    ]


@dataclass
class Statement:
    sql: str
    parameters: Any
    seconds: float


class StatementLog:
    """Each SQL statement the engine runs, with the time its cursor took (execute and fetch:
    psycopg's client-side cursors receive the whole result in execute)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.statements: list[Statement] = []
        event.listen(engine.sync_engine, "before_cursor_execute", self.before)
        event.listen(engine.sync_engine, "after_cursor_execute", self.after)

    def before(self, connection: Connection, *_: Any) -> None:
        connection.info["bench_began"] = time.perf_counter()

    def after(self, connection: Connection, _: Any, sql: str, parameters: Any, *__: Any) -> None:
        took = time.perf_counter() - connection.info.pop("bench_began")
        self.statements.append(Statement(sql, parameters, took))


DISTRIBUTION = re.compile(r"row_number\(\) OVER \((?:PARTITION BY \S+ )?ORDER BY (\S+)\)")


def label(sql: str) -> str:
    """Which of the report's queries a statement is."""
    if match := DISTRIBUTION.search(sql):
        return f"dist {match[1].removesuffix(')')}"
    if "distinct(complaints.order_id)" in sql.lower():
        return "complaints"
    if " AS orders," in sql:
        return "main"
    if "GROUP BY" in sql and "orders.priority" in sql:
        return "breaches"
    return sql.split()[0].lower()


@dataclass
class Timings:
    runs: list[float] = field(default_factory=list)
    by_statement: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    groups: int = 0
    last_statements: list[Statement] = field(default_factory=list)
    report: kpis.KpiReport | None = None


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


async def run_case(engine: AsyncEngine, log: StatementLog, case: Case, timings: Timings) -> None:
    log.statements.clear()
    began = time.perf_counter()
    async with AsyncSession(engine, expire_on_commit=False) as session:
        report = await kpis.report(session, TARGETS, case.filters, case.group_by, NOW)
    timings.runs.append(time.perf_counter() - began)
    timings.groups = len(report.groups)
    timings.report = report
    seconds: dict[str, float] = defaultdict(float)
    for statement in log.statements:
        seconds[label(statement.sql)] += statement.seconds
    for name, value in seconds.items():
        timings.by_statement[name].append(value)
    timings.last_statements = list(log.statements)


async def measure(engine: AsyncEngine, runs: int) -> dict[Case, Timings]:
    log = StatementLog(engine)
    results = {case: Timings() for case in cases()}
    print(f"... warm-up: one run of each of {len(results)} cases", flush=True)
    for case in results:
        await run_case(engine, log, case, Timings())
    print(f"... {runs} runs of each case, round-robin", flush=True)
    for _ in range(runs):
        for case, timings in results.items():
            await run_case(engine, log, case, timings)
    return results


async def explain(engine: AsyncEngine, statements: Sequence[Statement]) -> list[str]:
    lines = []
    async with engine.connect() as connection:
        for statement in statements:
            name = label(statement.sql)
            plan = await connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, BUFFERS) {statement.sql}", statement.parameters
            )
            lines += ["", f"-- {name}", statement.sql, ""]
            lines += [f"  {row[0]}" for row in plan.all()]
    return lines


# ---- the database ----------------------------------------------------------------------------


@contextmanager
def postgres_server(database_url: str | None) -> Iterator[str]:
    """The server's URL: the one given, else a throwaway one (stopped at the end)."""
    if database_url:
        yield database_url
        return
    # scripts/ is not a package: the command-2 script is loaded from its file, as its tests do.
    spec = importlib.util.spec_from_file_location("dev_script", ROOT / "scripts" / "dev.py")
    assert spec is not None
    assert spec.loader is not None
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    with dev.postgres_for_tests() as env:
        if dev.POSTGRES_URL_VARIABLE not in env:
            raise SystemExit("no PostgreSQL: install it, or give --database-url")
        yield env[dev.POSTGRES_URL_VARIABLE]


async def create_database(server_url: str) -> str:
    """A fresh database on the server; its URL."""
    name = f"repairflow_kpis_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(async_url(server_url), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(server_url: str, database_url: str) -> None:
    name = make_url(database_url).database
    admin = create_async_engine(async_url(server_url), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def server_facts(engine: AsyncEngine) -> Json:
    async with engine.connect() as connection:
        settings = {
            name: (await connection.execute(text(f"SHOW {name}"))).scalar_one()
            for name in ("server_version", "shared_buffers", "work_mem", "jit")
        }
        sizes = (
            await connection.execute(
                text(
                    "SELECT pg_size_pretty(pg_total_relation_size('orders')),"
                    " pg_size_pretty(pg_relation_size('orders'))"
                )
            )
        ).one()
    return settings | {"orders_total_size": sizes[0], "orders_heap_size": sizes[1]}


# ---- the run ---------------------------------------------------------------------------------


@dataclass
class Result:
    filled: Filled
    server: Json
    timings: dict[Case, Timings]
    explained: list[str]
    database_url: str


async def benchmark(server_url: str, orders: int, runs: int, seed: int, *, explain_slowest: bool,
                    keep: bool) -> Result:  # fmt: skip
    database_url = await create_database(server_url)
    engine = create_engine(database_url)
    try:
        print(f"... migrating {make_url(database_url).database}", flush=True)
        await prepare_schema(engine)
        print(f"... filling {orders:,} orders (batches of {BATCH:,})", flush=True)
        filled = await fill(engine, orders, seed)
        print(
            f"    done: {filled.generate_s:.1f}s simulating, {filled.insert_s:.1f}s inserting, "
            f"{filled.analyze_s:.1f}s VACUUM ANALYZE",
            flush=True,
        )
        server = await server_facts(engine)
        timings = await measure(engine, runs)
        explained: list[str] = []
        if explain_slowest:
            slowest = max(timings, key=lambda case: percentile(timings[case].runs, 50))
            explained = [f"EXPLAIN (ANALYZE, BUFFERS) of each statement of {slowest.name!r}:"]
            explained += await explain(engine, timings[slowest].last_statements)
    finally:
        await engine.dispose()
        if not keep:
            await drop_database(server_url, database_url)
    return Result(filled, server, timings, explained, database_url)


def headline(report: kpis.KpiReport | None) -> list[str]:
    if report is None or not report.groups:
        return ["  (no groups)"]
    g = report.groups[0]

    def rate(value: Decimal | None) -> str:
        return f"{value:.3f}" if value is not None else "-"

    satisfaction = ", ".join(
        f"{name} {s.mean if s.mean is not None else '-'}" for name, s in g.satisfaction.items()
    )
    breaches = ", ".join(
        f"{clock} {sum(by_priority.values())}" for clock, by_priority in g.sla_breaches.items()
    )
    return [
        f"  orders {g.orders:,}: open {g.open:,}, accepted {g.accepted:,}, cancelled "
        f"{g.cancelled:,}, ended unrepaired {g.ended_unrepaired:,}; with a breach "
        f"{g.orders_with_sla_breach:,}",
        f"  first response p50/p80/p90 {g.first_response_hours.p50}/{g.first_response_hours.p80}/"
        f"{g.first_response_hours.p90} h; arrival p50 {g.arrival_hours.p50} h; response within "
        f"SLA {rate(g.response_within_sla.value)}; on-time arrival "
        f"{rate(g.on_time_arrival_rate.value)}",
        f"  MTTR {g.mttr_hours.value} h ({g.mttr_hours_without_deemed.value} h without deemed); "
        f"resolution p80 {g.resolution_hours.p80} h; first-time fix "
        f"{rate(g.first_time_fix_rate.value)}; rework {rate(g.rework_rate.value)}; repeat "
        f"failure {rate(g.repeat_failure_rate.value)}; completion {rate(g.completion_rate.value)}",
        f"  complaints {g.complaints:,} (rate {rate(g.complaint_rate.value)}, first reply on "
        f"time {rate(g.complaint_first_reply_on_time_rate.value)}, resolution p50 "
        f"{g.complaint_resolution_hours.p50} h)",
        f"  satisfaction: {satisfaction}",
        f"  breaches by clock: {breaches}",
    ]


def check(filled: Filled, report: kpis.KpiReport | None) -> list[str]:
    """What the ungrouped report counts against what was written."""
    if report is None or not report.groups:
        return ["  the ungrouped report has no group"]
    g = report.groups[0]
    pairs = {
        "orders": (g.orders, filled.orders),
        "accepted": (g.accepted, filled.accepted),
        "cancelled": (g.cancelled, filled.cancelled),
        "ended unrepaired": (g.ended_unrepaired, filled.unrepaired),
        "orders with a breach": (g.orders_with_sla_breach, filled.with_breach),
        "complaints": (g.complaints, filled.complaints),
        "orders complained about": (g.complaint_rate.numerator, filled.orders_complained),
        "survey answers": (g.satisfaction["attitude"].responses, filled.surveys),
    }
    wrong = [
        f"{name} {got:,} (filled {want:,})" for name, (got, want) in pairs.items() if got != want
    ]
    if wrong:
        return ["  MISMATCH: " + "; ".join(wrong)]
    return [f"  the report counts what was filled ({', '.join(pairs)})"]


def render(result: Result, orders: int, runs: int) -> str:
    filled, server, timings = result.filled, result.server, result.timings
    stages = ", ".join(f"{stage} {count:,}" for stage, count in filled.stages.most_common())
    lines = [
        "",
        f"kpis: {filled.orders:,} orders booked over {DAYS} days before {NOW:%Y-%m-%d %H:%M} UTC, "
        f"{filled.complaints:,} complaints; PostgreSQL {server['server_version']} "
        f"(shared_buffers {server['shared_buffers']}, work_mem {server['work_mem']}, "
        f"jit {server['jit']}); orders table {server['orders_total_size']} "
        f"(heap {server['orders_heap_size']})",
        f"  stages: {stages}",
        f"  filled in {filled.generate_s + filled.insert_s + filled.analyze_s:.1f}s "
        f"(simulating {filled.generate_s:.1f}s, inserting {filled.insert_s:.1f}s, VACUUM "
        f"ANALYZE {filled.analyze_s:.1f}s); {os.cpu_count()} CPUs, load average at the end "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        "",
        f"report, ms ({runs} runs of each case after one warm-up; a fresh session each)",
        f"  {'case':<28}{'groups':>7}{'p50':>9}{'p90':>9}{'max':>9}",
    ]
    everything: list[float] = []
    for case, t in timings.items():
        everything += t.runs
        p50, p90, worst = (percentile(t.runs, p) * 1000 for p in (50, 90, 100))
        flag = "" if p50 < TARGET_MS else "  over 300"
        lines.append(f"  {case.name:<28}{t.groups:>7}{p50:>9.1f}{p90:>9.1f}{worst:>9.1f}{flag}")
    overall = percentile(everything, 50) * 1000
    worst_case = max(timings, key=lambda case: percentile(timings[case].runs, 50))
    worst_p50 = percentile(timings[worst_case].runs, 50) * 1000
    lines += [
        "",
        f"  overall p50 {overall:.1f} ms (all {len(everything)} runs): target p50 < "
        f"{TARGET_MS:.0f} ms {'met' if overall < TARGET_MS else 'NOT met'}; slowest case "
        f"{worst_case.name!r} p50 {worst_p50:.1f} ms "
        f"{'(under)' if worst_p50 < TARGET_MS else '(over)'}",
        "",
        "statements, p50 ms per run (the rest of a run: the session, building the report)",
    ]
    for case, t in timings.items():
        parts = [f"{name} {percentile(v, 50) * 1000:.1f}" for name, v in t.by_statement.items()]
        sql = sum(percentile(v, 50) for v in t.by_statement.values()) * 1000
        lines.append(f"  {case.name}: {', '.join(parts)}  (sum {sql:.1f})")
    lines += ["", "the ungrouped report (all orders):"]
    lines += headline(timings[cases()[0]].report)
    lines += check(filled, timings[cases()[0]].report)
    if result.explained:
        lines += ["", *result.explained]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.kpis",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20, help="timed runs of each case")
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server to use (a database is created on it and dropped at the end); "
        "default: a throwaway one",
    )
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--explain", action="store_true", help="EXPLAIN ANALYZE the slowest case's statements"
    )
    parser.add_argument(
        "--keep-database", action="store_true", help="leave the filled database on the server"
    )
    args = parser.parse_args(argv)

    def on_term(signum: int, _: object) -> None:
        raise KeyboardInterrupt  # stop the throwaway server on the way out

    signal.signal(signal.SIGTERM, on_term)
    try:
        with postgres_server(args.database_url) as server_url:
            result = asyncio.run(
                benchmark(
                    server_url,
                    args.orders,
                    args.runs,
                    args.seed,
                    explain_slowest=args.explain,
                    keep=args.keep_database,
                )
            )
    except KeyboardInterrupt:
        print("interrupted; the throwaway PostgreSQL (if any) was stopped", file=sys.stderr)
        return 130
    print(render(result, args.orders, args.runs), flush=True)
    if args.keep_database:
        print(f"\nkept: {result.database_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
