"""Migration 0004 gives the orders and complaints written before it the quality figures' facts,
derived from their event log as the records writer keeps them for new orders (core/facts.py),
and undoes itself without touching what was there, on each engine."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col, select
from temporalio.testing import ActivityEnvironment

from activities.records import RecordActivities
from core.db import alembic_config, create_engine, lock_schema
from models.order import Clock, OrderEvent, RecordInput, Stage, local_date
from models.policy import Policy
from models.records import GENESIS_HASH, ComplaintRow, OrderRow, UtcDateTime, event_hash
from tests.factories import create_record_input

OLD = "0003_personal_data"
FACTS_REVISION = "0004_quality_facts"
HOUR = timedelta(hours=1)

STAFF, SYSTEM, CUSTOMER = "staff:test-staff", "system", "customer:test-customer"
FIRST, SECOND = "technician:T-0001", "technician:T-0002"
SURVEYED = "survey answered"

# ---- the records store as revision 0003 left it ------------------------------------------------
# Written with the engines' own types (instants through UtcDateTime, as the old writer's models
# stored them): the models now carry columns 0003 lacks.

OLD_SCHEMA = sa.MetaData()
OLD_ORDERS = sa.Table(
    "orders",
    OLD_SCHEMA,
    sa.Column("order_id", sa.String(40), primary_key=True),
    sa.Column("stage", sa.String(32)),
    sa.Column("priority", sa.String(16)),
    sa.Column("channel", sa.String(16)),
    sa.Column("category", sa.String(32)),
    sa.Column("region", sa.String(200)),
    sa.Column("technician_id", sa.String(64)),
    sa.Column("warranty_status", sa.String(32)),
    sa.Column("sla_breached", sa.Boolean()),
    sa.Column("currency", sa.String(3)),
    sa.Column("total", sa.Numeric(12, 2)),
    sa.Column("booked_at", UtcDateTime()),
    sa.Column("updated_at", UtcDateTime()),
    sa.Column("last_seq", sa.Integer()),
    sa.Column("survey_score", sa.Numeric(3, 2)),
    sa.Column("rework_count", sa.Integer()),
    sa.Column("claims", sa.Integer()),
    sa.Column("accepted_at", UtcDateTime()),
    sa.Column("last_hash", sa.String(64)),
    sa.Column("customer_name", sa.Text()),
    sa.Column("customer_phone", sa.Text()),
)
OLD_EVENTS = sa.Table(
    "order_events",
    OLD_SCHEMA,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("order_id", sa.String(40)),
    sa.Column("seq", sa.Integer()),
    sa.Column("at", UtcDateTime()),
    sa.Column("actor", sa.Text()),
    sa.Column("action", sa.String(64)),
    sa.Column("detail", sa.Text()),
    sa.Column("prev_hash", sa.String(64)),
    sa.Column("hash", sa.String(64)),
)
OLD_COMPLAINTS = sa.Table(
    "complaints",
    OLD_SCHEMA,
    sa.Column("complaint_id", sa.String(48), primary_key=True),
    sa.Column("order_id", sa.String(40)),
    sa.Column("state", sa.String(16)),
    sa.Column("tier", sa.Integer()),
    sa.Column("category", sa.String(200)),
    sa.Column("concerns_work", sa.Boolean()),
    sa.Column("technician_id", sa.String(64)),
    sa.Column("filed_at", UtcDateTime()),
    sa.Column("first_reply_due", UtcDateTime()),
    sa.Column("resolution_due", UtcDateTime()),
    sa.Column("acknowledged_at", UtcDateTime()),
    sa.Column("resolved_at", UtcDateTime()),
    sa.Column("closed_at", UtcDateTime()),
    sa.Column("compensation", sa.Numeric(12, 2)),
    sa.Column("updated_at", UtcDateTime()),
)

ORDER_FACTS = (
    "booked_on",
    "booked_week",
    "booked_month",
    "first_response_at",
    "checked_in_at",
    "completed_at",
    "acceptance_deemed",
    "closed_at",
    "cancelled_at",
    "visits",
    "survey_attitude",
    "survey_quality",
    "survey_result",
    "survey_speed",
    "response_hours",
    "arrival_hours",
    "resolution_hours",
    "repair_hours",
    "sla_clocks",
    *(f"{clock}_breached" for clock in Clock),
)
# What the records writer and the backfill both derive: the writer takes the clocks from the
# workflow's snapshot, the backfill from what the events show of them.
EVENT_FACTS = tuple(
    name for name in ORDER_FACTS if name != "sla_clocks" and not name.endswith("_breached")
)
COMPLAINT_FACTS = (
    "first_replied_at",
    "original_first_reply_due",
    "original_resolution_due",
    "tier_reached",
    "resolution_hours",
)


def hours(count: float) -> timedelta:
    return timedelta(hours=count)


@dataclass(frozen=True)
class Logged:
    """One event of an order's log, `after` its booking."""

    after: timedelta
    actor: str
    action: str
    detail: str = ""


@dataclass(frozen=True)
class History:
    """An order as the old writer left it: its event log and what its row held."""

    order_id: str
    booked_at: datetime
    log: tuple[Logged, ...]
    accepted_after: timedelta | None = None
    technician_id: str | None = None

    @property
    def accepted_at(self) -> datetime | None:
        return self.booked_at + self.accepted_after if self.accepted_after is not None else None

    def events(self) -> list[OrderEvent]:
        return [
            OrderEvent(
                order_id=self.order_id,
                seq=seq,
                at=self.booked_at + logged.after,
                actor=logged.actor,
                action=logged.action,
                detail=logged.detail,
            )
            for seq, logged in enumerate(self.log, start=1)
        ]

    def stages(self) -> list[Stage]:
        """The order's stage right after each of its events."""
        stage, stages = Stage.BOOKED, []
        for logged in self.log:
            if logged.action.startswith("stage:"):
                stage = Stage(logged.action.removeprefix("stage:"))
            stages.append(stage)
        return stages

    def at(self, after: timedelta) -> datetime:
        return self.booked_at + after

    def instant(self, after: timedelta) -> str:
        """An instant as the read model's clocks keep it (ISO 8601, UTC)."""
        return self.at(after).isoformat()


# Booked at 17:30 UTC: 01:30 the next day in Shanghai, the policy's time zone. Checked in,
# waited for a part, rejected once, breached the general repair clock, rejected again and
# reassigned (a second response and a second visit, neither of which counts as the first),
# then deemed accepted and surveyed.
DEEMED = History(
    order_id="RF261121-DEEM01",
    booked_at=datetime(2026, 11, 20, 17, 30, tzinfo=UTC),
    log=(
        Logged(hours(0), STAFF, "booked", "normal refrigerator"),
        Logged(timedelta(minutes=1), SYSTEM, "stage:dispatching", "looking for a technician"),
        Logged(timedelta(minutes=30), FIRST, "stage:scheduled", "offer accepted"),
        Logged(hours(3), FIRST, "stage:on_site", "arrived"),
        Logged(hours(4), FIRST, "stage:waiting_parts", "1 x RELAY-7"),
        Logged(hours(24), FIRST, "stage:on_site", "parts arrived"),
        Logged(hours(27), FIRST, "stage:awaiting_acceptance", "work done"),
        Logged(hours(28), CUSTOMER, "stage:on_site", "rejected, rework 1: still not cooling"),
        Logged(
            hours(30), SYSTEM, "sla breached", "general_repair: deadline 2026-11-22 07:30:00+08:00"
        ),
        Logged(hours(31), FIRST, "stage:awaiting_acceptance", "work done"),
        Logged(hours(32), CUSTOMER, "stage:dispatching", "rejected again: still warm"),
        Logged(hours(34), STAFF, "stage:scheduled", "assigned by staff:test-staff"),
        Logged(hours(36), SECOND, "stage:on_site", "arrived"),
        Logged(hours(38), SECOND, "stage:awaiting_acceptance", "work done"),
        Logged(
            hours(110),
            SYSTEM,
            "stage:in_warranty",
            "deemed accepted: no answer in time; warranty window until 2027-02-24 07:30:00+00:00",
        ),
        Logged(hours(134), CUSTOMER, SURVEYED, "attitude 5, quality 4, result 3, speed 4"),
    ),
    accepted_after=hours(110),
    technician_id="T-0002",
)
# Accepted by the customer, surveyed, closed when the warranty window ended.
CLOSED = History(
    order_id="RF261121-CLOS01",
    booked_at=datetime(2026, 11, 21, 3, 0, tzinfo=UTC),
    log=(
        Logged(hours(0), STAFF, "booked", "normal refrigerator"),
        Logged(timedelta(minutes=1), SYSTEM, "stage:dispatching", "looking for a technician"),
        Logged(timedelta(minutes=20), FIRST, "stage:scheduled", "offer accepted"),
        Logged(hours(2), FIRST, "stage:on_site", "arrived"),
        Logged(hours(4.5), FIRST, "stage:awaiting_acceptance", "work done"),
        Logged(
            hours(5),
            CUSTOMER,
            "stage:in_warranty",
            "accepted; warranty window until 2027-02-19 08:00:00+00:00",
        ),
        Logged(hours(6), CUSTOMER, SURVEYED, "attitude 4, quality 4, result 4, speed 5"),
        Logged(timedelta(days=90), SYSTEM, "stage:closed", "warranty window ended"),
    ),
    accepted_after=hours(5),
    technician_id="T-0001",
)
# Cancelled while a technician was being looked for, after the response clock ran out.
CANCELLED = History(
    order_id="RF261122-CANC01",
    booked_at=datetime(2026, 11, 22, 1, 0, tzinfo=UTC),
    log=(
        Logged(hours(0), STAFF, "booked", "normal refrigerator"),
        Logged(timedelta(minutes=1), SYSTEM, "stage:dispatching", "looking for a technician"),
        Logged(
            timedelta(minutes=30),
            SYSTEM,
            "sla breached",
            "response: deadline 2026-11-22 09:30:00+08:00",
        ),
        Logged(timedelta(minutes=45), CUSTOMER, "stage:cancelled", "no longer needed"),
    ),
)
# Still open: booked at 16:30 UTC on the last day of November, 00:30 on 1 December in Shanghai.
OPEN = History(
    order_id="RF261201-OPEN01",
    booked_at=datetime(2026, 11, 30, 16, 30, tzinfo=UTC),
    log=(
        Logged(hours(0), STAFF, "booked", "normal refrigerator"),
        Logged(timedelta(minutes=1), SYSTEM, "stage:dispatching", "looking for a technician"),
        Logged(hours(2), STAFF, "stage:scheduled", "assigned by staff:test-staff"),
    ),
    technician_id="T-0001",
)
HISTORIES = (DEEMED, CLOSED, CANCELLED, OPEN)


def no_facts() -> dict[str, Any]:
    breaches = {f"{clock}_breached": False for clock in Clock}
    return dict.fromkeys(ORDER_FACTS) | {"visits": 0} | breaches


def clock(
    started_at: str | None,
    *,
    stopped_at: str | None = None,
    deadline: str | None = None,
    breached: bool = False,
) -> dict[str, Any]:
    return {
        "started_at": started_at,
        "deadline": deadline,
        "paused_hours": 0.0,
        "stopped_at": stopped_at,
        "breached": breached,
    }


EXPECTED: dict[str, dict[str, Any]] = {
    DEEMED.order_id: no_facts()
    | {
        # Local dates: Saturday 21 November in Shanghai (20 November in UTC).
        "booked_on": date(2026, 11, 21),
        "booked_week": date(2026, 11, 16),
        "booked_month": date(2026, 11, 1),
        "first_response_at": DEEMED.at(timedelta(minutes=30)),
        "checked_in_at": DEEMED.at(hours(3)),
        "completed_at": DEEMED.at(hours(38)),  # the last completion, the one accepted
        "acceptance_deemed": True,
        "visits": 2,
        "survey_attitude": 5,
        "survey_quality": 4,
        "survey_result": 3,
        "survey_speed": 4,
        "response_hours": 0.5,
        "arrival_hours": 3.0,
        "resolution_hours": 38.0,
        "repair_hours": 110.0,
        "sla_clocks": {
            "response": clock(
                DEEMED.instant(hours(0)), stopped_at=DEEMED.instant(timedelta(minutes=30))
            ),
            "arrival": clock(DEEMED.instant(hours(0)), stopped_at=DEEMED.instant(hours(3))),
            "general_repair": clock(None, deadline="2026-11-22T07:30:00+08:00", breached=True),
        },
        "general_repair_breached": True,
    },
    CLOSED.order_id: no_facts()
    | {
        "booked_on": date(2026, 11, 21),
        "booked_week": date(2026, 11, 16),
        "booked_month": date(2026, 11, 1),
        "first_response_at": CLOSED.at(timedelta(minutes=20)),
        "checked_in_at": CLOSED.at(hours(2)),
        "completed_at": CLOSED.at(hours(4.5)),
        "acceptance_deemed": False,
        "closed_at": CLOSED.at(timedelta(days=90)),
        "visits": 1,
        "survey_attitude": 4,
        "survey_quality": 4,
        "survey_result": 4,
        "survey_speed": 5,
        "response_hours": timedelta(minutes=20) / HOUR,
        "arrival_hours": 2.0,
        "resolution_hours": 4.5,
        "repair_hours": 5.0,
        "sla_clocks": {
            "response": clock(
                CLOSED.instant(hours(0)), stopped_at=CLOSED.instant(timedelta(minutes=20))
            ),
            "arrival": clock(CLOSED.instant(hours(0)), stopped_at=CLOSED.instant(hours(2))),
        },
    },
    CANCELLED.order_id: no_facts()
    | {
        "booked_on": date(2026, 11, 22),
        "booked_week": date(2026, 11, 16),
        "booked_month": date(2026, 11, 1),
        "cancelled_at": CANCELLED.at(timedelta(minutes=45)),
        "sla_clocks": {
            "response": clock(
                CANCELLED.instant(hours(0)), deadline="2026-11-22T09:30:00+08:00", breached=True
            ),
            "arrival": clock(CANCELLED.instant(hours(0))),
        },
        "response_breached": True,
    },
    OPEN.order_id: no_facts()
    | {
        # Tuesday 1 December in Shanghai: another month than the UTC date's.
        "booked_on": date(2026, 12, 1),
        "booked_week": date(2026, 11, 30),
        "booked_month": date(2026, 12, 1),
        "first_response_at": OPEN.at(hours(2)),
        "response_hours": 2.0,
        "sla_clocks": {
            "response": clock(OPEN.instant(hours(0)), stopped_at=OPEN.instant(hours(2))),
            "arrival": clock(OPEN.instant(hours(0))),
        },
    },
}

# A complaint about the deemed-accepted order, answered and resolved at tier 2, and one still
# waiting for an answer about the open order.
RESOLVED_COMPLAINT: dict[str, Any] = {
    "complaint_id": f"{DEEMED.order_id}-C1",
    "order_id": DEEMED.order_id,
    "state": "resolved",
    "tier": 2,
    "category": "technician attitude",
    "concerns_work": False,
    "technician_id": "T-0002",
    "filed_at": DEEMED.at(hours(115)),
    "first_reply_due": DEEMED.at(hours(139)),
    "resolution_due": DEEMED.at(hours(187)),
    "acknowledged_at": DEEMED.at(hours(116)),
    "resolved_at": DEEMED.at(hours(125)),
    "closed_at": None,
    "compensation": Decimal("50.00"),
    "updated_at": DEEMED.at(hours(125)),
}
OPEN_COMPLAINT: dict[str, Any] = {
    "complaint_id": f"{OPEN.order_id}-C1",
    "order_id": OPEN.order_id,
    "state": "open",
    "tier": 1,
    "category": "no technician yet",
    "concerns_work": False,
    "technician_id": None,
    "filed_at": OPEN.at(hours(3)),
    "first_reply_due": OPEN.at(hours(27)),
    "resolution_due": OPEN.at(hours(75)),
    "acknowledged_at": None,
    "resolved_at": None,
    "closed_at": None,
    "compensation": None,
    "updated_at": OPEN.at(hours(3)),
}
EXPECTED_COMPLAINTS: dict[str, dict[str, Any]] = {
    RESOLVED_COMPLAINT["complaint_id"]: {
        "first_replied_at": DEEMED.at(hours(116)),
        "original_first_reply_due": DEEMED.at(hours(139)),
        "original_resolution_due": DEEMED.at(hours(187)),
        "tier_reached": 2,
        "resolution_hours": 10.0,
    },
    OPEN_COMPLAINT["complaint_id"]: {
        "first_replied_at": None,
        "original_first_reply_due": OPEN.at(hours(27)),
        "original_resolution_due": OPEN.at(hours(75)),
        "tier_reached": 1,
        "resolution_hours": None,
    },
}


def old_rows(history: History) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The order's row and its event rows, chained, as the old writer wrote them."""
    events: list[dict[str, Any]] = []
    prev_hash = GENESIS_HASH
    for event in history.events():
        digest = event_hash(**event.model_dump(), prev_hash=prev_hash)
        events.append(event.model_dump() | {"prev_hash": prev_hash, "hash": digest})
        prev_hash = digest
    order = {
        "order_id": history.order_id,
        "stage": str(history.stages()[-1]),
        "priority": "normal",
        "channel": "phone",
        "category": "refrigerator",
        "region": "pudong",
        "technician_id": history.technician_id,
        "warranty_status": "in_warranty",
        "sla_breached": history is DEEMED,
        "currency": "CNY",
        "total": Decimal("0.00"),
        "booked_at": history.booked_at,
        "updated_at": events[-1]["at"],
        "last_seq": len(events),
        "survey_score": Decimal("4.00") if history is DEEMED else None,
        "rework_count": 2 if history is DEEMED else 0,
        "claims": 0,
        "accepted_at": history.accepted_at,
        "last_hash": prev_hash,
        "customer_name": "Li Wei",
        "customer_phone": "+86 138 0013 8000",
    }
    return order, events


# ---- migrating and reading ---------------------------------------------------------------------


async def migrate(engine: AsyncEngine, revision: str, *, down: bool = False) -> None:
    """Up or down to `revision` in one transaction under the schema lock, as start-up does."""

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        if down:
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(lock_schema)
        await connection.run_sync(run)


def version(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def old_schema(connection: Connection) -> dict[str, Any]:
    """The columns and indexes of the tables 0004 alters."""
    inspector = sa.inspect(connection)
    return {
        table: (
            [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
        )
        for table in ("orders", "complaints")
    }


async def old_data(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the old tables, in their 0003 columns."""
    keys = {
        "orders": OLD_ORDERS.c.order_id,
        "order_events": OLD_EVENTS.c.id,
        "complaints": OLD_COMPLAINTS.c.complaint_id,
    }
    async with engine.connect() as connection:
        return {
            table.name: [
                tuple(row)
                for row in await connection.execute(sa.select(table).order_by(keys[table.name]))
            ]
            for table in OLD_SCHEMA.sorted_tables
        }


async def order_facts(engine: AsyncEngine, names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    async with AsyncSession(engine) as session:
        rows = await session.scalars(select(OrderRow).order_by(col(OrderRow.order_id)))
        return {row.order_id: {name: getattr(row, name) for name in names} for row in rows}


async def complaint_facts(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    async with AsyncSession(engine) as session:
        rows = await session.scalars(select(ComplaintRow))
        return {
            row.complaint_id: {name: getattr(row, name) for name in COMPLAINT_FACTS} for row in rows
        }


def expected(names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    return {
        order_id: {name: facts[name] for name in names}
        for order_id, facts in sorted(EXPECTED.items())
    }


@pytest.fixture
async def old_store(
    records_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AsyncEngine]:
    """A database at revision 0003 holding the histories and complaints as the old writer left
    them; the policy the migration reads is the built-in one (Asia/Shanghai)."""
    monkeypatch.delenv("REPAIRFLOW_POLICY_FILE", raising=False)
    engine = create_engine(records_url)
    try:
        await migrate(engine, OLD)
        async with engine.begin() as connection:
            for history in HISTORIES:
                order, events = old_rows(history)
                await connection.execute(OLD_ORDERS.insert(), [order])
                await connection.execute(OLD_EVENTS.insert(), events)
            await connection.execute(OLD_COMPLAINTS.insert(), [RESOLVED_COMPLAINT, OPEN_COMPLAINT])
        yield engine
    finally:
        await engine.dispose()


# ---- the tests ---------------------------------------------------------------------------------


class TestBackfill:
    async def test_orders_get_the_facts_their_events_show(self, old_store: AsyncEngine) -> None:
        """First response, first check-in, the last completion, a deemed or a given acceptance,
        the close or the cancellation, visits, survey answers, the hours from booking, the
        operator's calendar day and what the events show of the SLA clocks."""
        await migrate(old_store, FACTS_REVISION)
        assert await order_facts(old_store, ORDER_FACTS) == expected(ORDER_FACTS)

    async def test_complaints_keep_their_current_deadlines_as_their_first(
        self, old_store: AsyncEngine
    ) -> None:
        """The acknowledgement as the first reply, the current deadlines and tier as the first
        ones and the highest reached, and the hours from filing to the resolution."""
        await migrate(old_store, FACTS_REVISION)
        assert await complaint_facts(old_store) == EXPECTED_COMPLAINTS

    async def test_records_writer_keeps_the_same_facts(self, records_store: AsyncEngine) -> None:
        """The same events written by the records writer (one activity call per event, each
        with the workflow's snapshot after it, its day set and its clocks left out) give the
        facts the backfill derives."""
        activities = RecordActivities(records_store)
        for history in HISTORIES:
            booked_on = local_date(history.booked_at, Policy())
            for event, stage in zip(history.events(), history.stages(), strict=True):
                accepted_at = history.accepted_at
                snapshot = create_record_input(
                    event.seq,
                    stage,
                    order_id=history.order_id,
                    booked_at=history.booked_at,
                    updated_at=event.at,
                    accepted_at=accepted_at if accepted_at and accepted_at <= event.at else None,
                    booked_on=booked_on,
                ).snapshot
                await ActivityEnvironment().run(
                    activities.record_order_events,
                    [RecordInput(snapshot=snapshot, event=event)],
                )
        assert await order_facts(records_store, EVENT_FACTS) == expected(EVENT_FACTS)
        clocks = await order_facts(records_store, ("sla_clocks",))
        assert clocks == {order_id: {"sla_clocks": None} for order_id in EXPECTED}


class TestDowngrade:
    async def test_downgrade_leaves_the_old_columns_as_they_were(
        self, old_store: AsyncEngine
    ) -> None:
        """Down to 0003: the facts' columns and index go, the old columns, indexes and rows
        stay as they were; up again, the facts are filled the same way."""
        async with old_store.connect() as connection:
            schema_before = await connection.run_sync(old_schema)
        data_before = await old_data(old_store)

        await migrate(old_store, FACTS_REVISION)
        await migrate(old_store, OLD, down=True)

        async with old_store.connect() as connection:
            assert await connection.run_sync(version) == OLD
            assert await connection.run_sync(old_schema) == schema_before
        assert await old_data(old_store) == data_before
        await migrate(old_store, FACTS_REVISION)
        assert await order_facts(old_store, ORDER_FACTS) == expected(ORDER_FACTS)
        assert await complaint_facts(old_store) == EXPECTED_COMPLAINTS
