"""SQLModel tables of the records store. They never leave the records layer or reach a workflow."""

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Dialect,
    Numeric,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel


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
    booked_at: datetime = Field(sa_column=_utc_column(index=True))
    updated_at: datetime = Field(sa_column=_utc_column())
    last_seq: int = 0
    survey_score: Decimal | None = Field(default=None, sa_column=Column(Numeric(3, 2)))
    rework_count: int = 0
    claims: int = 0
    accepted_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    # Personal data, erased a configurable time after the order closes.
    customer_name: str | None = Field(default=None, max_length=200)
    customer_phone: str | None = Field(default=None, max_length=32)


class EventRow(SQLModel, table=True):
    """The append-only event log; (order_id, seq) makes every retried write land once."""

    __tablename__ = "order_events"
    __table_args__ = (UniqueConstraint("order_id", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(index=True, max_length=40)
    seq: int
    at: datetime = Field(sa_column=_utc_column())
    actor: str = Field(max_length=200)
    action: str = Field(max_length=64)
    detail: str = Field(default="", max_length=4000)


class IdempotencyKeyRow(SQLModel, table=True):
    """A booking's Idempotency-Key, the hash of its body and the order it started."""

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
    # Personal data (phone, email or technician id), erased with the order's other personal data.
    destination: str | None = Field(default=None, max_length=254)


class TechnicianRow(SQLModel, table=True):
    """The technician registry. Open workload and rating are derived from the orders."""

    __tablename__ = "technicians"

    id: str = Field(primary_key=True, max_length=64)
    status: str = Field(default="active", max_length=16)
    skills: list[str] = Field(sa_column=Column(JSON, nullable=False))
    regions: list[str] = Field(sa_column=Column(JSON, nullable=False))
    certificates: list[dict[str, str]] = Field(sa_column=Column(JSON, nullable=False))
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


class HistoryArchiveRow(SQLModel, table=True):
    """A finished workflow's full engine history, kept for audits after the engine forgets it."""

    __tablename__ = "history_archive"

    workflow_id: str = Field(primary_key=True, max_length=64)
    run_id: str = Field(max_length=64)
    order_id: str = Field(index=True, max_length=40)
    history_json: str = Field(sa_column=Column(Text, nullable=False))
    archived_at: datetime = Field(sa_column=_utc_column())
