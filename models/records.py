"""SQLModel tables of the records store. They never leave the records layer or reach a workflow.

The schema is owned by the Alembic migrations in `migrations/`: a change to a table here
needs a new revision there (tests/records/test_migrations.py compares the two).
"""

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Dialect,
    Index,
    Numeric,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

# Stable constraint names, so migrations can name what they alter or drop on every engine.
# Set before the first table below is declared: names are given as tables are built.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Instants stored in UTC and read back aware: SQLite would drop the offset."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_column(*, index: bool = False, nullable: bool = False) -> Column[datetime]:
    return Column(UtcDateTime(), index=index, nullable=nullable)


class OrderRow(SQLModel, table=True):
    """The orders read model: one row per order, rewritten after every event."""

    __tablename__ = "orders"
    # Lists page by (booked_at, order_id): one index serves the ordering and the range filter.
    __table_args__ = (Index("ix_orders_booked_at_order_id", "booked_at", "order_id"),)

    order_id: str = Field(primary_key=True, max_length=40)
    stage: str = Field(index=True, max_length=32)
    priority: str = Field(index=True, max_length=16)
    channel: str = Field(max_length=16)
    category: str = Field(index=True, max_length=32)
    region: str = Field(index=True, max_length=200)
    technician_id: str | None = Field(default=None, index=True, max_length=64)
    warranty_status: str = Field(max_length=32)
    sla_breached: bool = Field(default=False, index=True)
    currency: str = Field(max_length=3)
    total: Decimal = Field(sa_column=Column(Numeric(12, 2), nullable=False))
    booked_at: datetime = Field(sa_column=_utc_column())
    updated_at: datetime = Field(sa_column=_utc_column())
    last_seq: int = 0
    survey_score: Decimal | None = Field(default=None, sa_column=Column(Numeric(3, 2)))
    rework_count: int = 0
    claims: int = 0
    accepted_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    # The head of the order's event chain (the hash of event `last_seq`): it anchors the end of
    # the chain, so deleting or rewriting the newest events is detected too.
    last_hash: str | None = Field(default=None, max_length=64)
    # Personal data, erased a configurable time after the order closes.
    # Sealed with the order's personal-data key (core/personal.py); None once erased.
    customer_name: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    customer_phone: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The quality figures' facts (core/facts.py), kept as each event is written.
    booked_on: date | None = Field(default=None, index=True)  # the operator's calendar day
    booked_week: date | None = None  # the Monday of booked_on's week
    booked_month: date | None = None  # the first of booked_on's month
    first_response_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    checked_in_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    completed_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    acceptance_deemed: bool | None = None
    closed_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    cancelled_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    visits: int = 0
    survey_attitude: int | None = None
    survey_quality: int | None = None
    survey_result: int | None = None
    survey_speed: int | None = None
    response_hours: float | None = None  # booking -> first response
    arrival_hours: float | None = None  # booking -> first check-in
    resolution_hours: float | None = None  # booking -> the work the customer accepted
    repair_hours: float | None = None  # booking -> acceptance
    # Each SLA clock the order ran: {clock: {started_at, deadline, paused_hours, stopped_at,
    # breached}}, instants as ISO 8601 text.
    sla_clocks: dict[str, dict[str, Any]] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )
    # Whether each clock breached, kept apart from sla_clocks so that reports read plain columns.
    response_breached: bool = False
    appointment_confirm_breached: bool = False
    arrival_breached: bool = False
    general_repair_breached: bool = False
    workshop_repair_breached: bool = False
    parts_dispatch_breached: bool = False


class EventRow(SQLModel, table=True):
    """The append-only event log; (order_id, seq) makes every retried write land once.

    Each row is chained to the row before it of the same order (see `event_hash`), so an
    edited, deleted or inserted row shows in `first_broken_seq`.
    """

    __tablename__ = "order_events"
    __table_args__ = (UniqueConstraint("order_id", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(index=True, max_length=40)
    seq: int
    at: datetime = Field(sa_column=_utc_column())
    # Built from what people typed and from token subjects: unbounded, so no event is refused.
    actor: str = Field(sa_column=Column(Text, nullable=False))
    action: str = Field(max_length=64)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(max_length=64)  # `hash` of event seq - 1; GENESIS_HASH for seq 1
    hash: str = Field(max_length=64)  # event_hash(...) of this row's content and prev_hash

    def content_hash(self) -> str:
        """The hash this row's stored content and prev_hash call for."""
        return event_hash(
            order_id=self.order_id,
            seq=self.seq,
            at=self.at,
            actor=self.actor,
            action=self.action,
            detail=self.detail,
            prev_hash=self.prev_hash,
        )


# ---- the event chain ---------------------------------------------------------------------------

GENESIS_HASH: Final = "0" * 64  # prev_hash of every order's first event
_HASH_VERSION: Final = "repairflow.order_event.v1"


def event_hash(
    *, order_id: str, seq: int, at: datetime, actor: str, action: str, detail: str, prev_hash: str
) -> str:
    """The hex SHA-256 of one event, chained to its predecessor by `prev_hash`.

    Canonical form: the JSON array [version, order_id, seq, at, actor, action, detail,
    prev_hash], compact separators, ASCII-escaped (so no encoding can differ), with `at` in
    UTC as ISO 8601 to the microsecond ("2026-11-20T02:01:00.000000+00:00"), which both
    engines store exactly. The version tag lets a later format coexist with this one.
    """
    if at.tzinfo is None:
        raise ValueError("naive datetime given to the event chain")
    canonical = json.dumps(
        [
            _HASH_VERSION,
            order_id,
            seq,
            at.astimezone(UTC).isoformat(timespec="microseconds"),
            actor,
            action,
            detail,
            prev_hash,
        ],
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def first_broken_seq(
    events: Sequence[EventRow], *, last_seq: int = 0, last_hash: str | None = None
) -> int | None:
    """The first sequence number at which one order's chain is broken, or None if it holds.

    `events` are the order's rows in seq order. Walking from seq 1, the chain breaks at:
    - a missing number (a deleted row): the first number missing;
    - a row whose prev_hash is not the previous row's hash (a row deleted, inserted or
      re-hashed before it): that row;
    - a row whose content no longer gives its hash (an edited row): that row.
    The orders row anchors the end (`last_seq`, `last_hash`, 0 and None where it has none):
    newest events deleted break the chain at the first one missing, and a newest row rewritten
    together with its hash, or a row appended, at the first row past the anchor that disagrees.
    """
    prev_hash = GENESIS_HASH
    expected = 1
    for row in events:
        if row.seq != expected:
            return expected
        if row.prev_hash != prev_hash or row.content_hash() != row.hash:
            return row.seq
        if row.seq == last_seq and last_hash is not None and row.hash != last_hash:
            return row.seq
        if row.seq > last_seq > 0:
            return row.seq
        prev_hash = row.hash
        expected += 1
    if expected <= last_seq:
        return expected
    return None


class IdempotencyKeyRow(SQLModel, table=True):
    """An Idempotency-Key, the hash of its body and the order it is about (a booking's: the
    order it started; a complaint's on a closed order: the complaint id it is bound to)."""

    __tablename__ = "idempotency_keys"

    key: str = Field(primary_key=True, max_length=200)
    request_hash: str = Field(max_length=64)
    order_id: str = Field(max_length=40)
    created_at: datetime = Field(sa_column=_utc_column())


class NotificationRow(SQLModel, table=True):
    """Every notification as rendered and handed to its channel; also the default outbox.

    The unique `key` (minted in the workflow) makes a retried send land once.
    """

    __tablename__ = "notifications"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=200)
    order_id: str = Field(index=True, max_length=40)
    template: str = Field(max_length=64)
    recipient: str = Field(max_length=32)
    channel: str = Field(max_length=16)
    locale: str = Field(max_length=8)
    subject: str = Field(max_length=200)
    body: str = Field(max_length=4000)
    status: str = Field(max_length=16)  # "sent" | "failed"
    error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(sa_column=_utc_column())
    # Personal data (phone or email, sealed; or a technician id), erased with the order's other
    # personal data.
    destination: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class PersonalDataKeyRow(SQLModel, table=True):
    """An order's personal-data key (core/personal.py), wrapped with the payload key ring.
    Erasing the order's personal data destroys `wrapped` and keeps the row, so that what was
    sealed with it reads as erased rather than as unknown."""

    __tablename__ = "personal_data_keys"

    key_id: str = Field(primary_key=True, max_length=40)
    wrapped: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(sa_column=_utc_column())
    erased_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))


class TechnicianRow(SQLModel, table=True):
    """The technician registry. Open workload and rating are derived from the orders."""

    __tablename__ = "technicians"

    id: str = Field(primary_key=True, max_length=64)
    status: str = Field(default="active", max_length=16)
    skills: list[str] = Field(sa_column=Column(JSON, nullable=False))
    regions: list[str] = Field(sa_column=Column(JSON, nullable=False))
    certificates: list[dict[str, str]] = Field(sa_column=Column(JSON, nullable=False))
    # The schedule (models.technician.Schedule), as JSON; empty: the policy's business hours.
    shifts: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    days_off: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    on_call: list[dict[str, str]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    created_at: datetime = Field(sa_column=_utc_column())
    updated_at: datetime = Field(sa_column=_utc_column())
    # Personal data: shown to staff, supervisors and admins only.
    name: str = Field(max_length=200)
    phone: str = Field(max_length=32)


class ComplaintRow(SQLModel, table=True):
    """The complaints read model: one row per complaint, rewritten after each of its events."""

    __tablename__ = "complaints"

    complaint_id: str = Field(primary_key=True, max_length=48)
    order_id: str = Field(index=True, max_length=40)
    state: str = Field(index=True, max_length=16)
    tier: int = Field(index=True)
    category: str = Field(max_length=200)
    concerns_work: bool
    technician_id: str | None = Field(default=None, index=True, max_length=64)
    filed_at: datetime = Field(sa_column=_utc_column(index=True))
    first_reply_due: datetime = Field(sa_column=_utc_column())
    resolution_due: datetime = Field(sa_column=_utc_column())
    acknowledged_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    resolved_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    closed_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    compensation: Decimal | None = Field(default=None, sa_column=Column(Numeric(12, 2)))
    updated_at: datetime = Field(sa_column=_utc_column())
    # The quality figures' facts: kept from the first snapshot on, while the complaint's own
    # deadlines and reply time are reset when it climbs a tier or is reopened.
    first_replied_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    original_first_reply_due: datetime | None = Field(
        default=None, sa_column=_utc_column(nullable=True)
    )
    original_resolution_due: datetime | None = Field(
        default=None, sa_column=_utc_column(nullable=True)
    )
    tier_reached: int | None = None
    resolution_hours: float | None = None  # filing -> the latest resolution


class HistoryArchiveRow(SQLModel, table=True):
    """A finished workflow's full engine history, kept for audits after the engine forgets it."""

    __tablename__ = "history_archive"

    workflow_id: str = Field(primary_key=True, max_length=64)
    run_id: str = Field(max_length=64)
    order_id: str = Field(index=True, max_length=40)
    history_json: str = Field(sa_column=Column(Text, nullable=False))
    archived_at: datetime = Field(sa_column=_utc_column())
    # An order's final state as its workflow answered it when archived (models.order.Order as
    # JSON; personal data sealed): what GET /v1/orders/{id} answers once the engine forgets it.
    final_order: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
