"""The quality figures' facts: columns on the orders and complaints read models, filled for the
orders already written from their event log (core/facts.py, as the records writer keeps them).

Revision ID: 0004_quality_facts
Revises: 0003_personal_data
Create Date: 2026-12-07

The operator's calendar day of a booking comes from the policy file's timezone, read through
the same settings as the processes. Complaints written before keep their current deadlines as
their first ones (a complaint that climbed a tier shows the later ones) and their tier as the
highest reached.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

from core import facts

# The SLA clocks as this revision knows them (models.order.Clock when it was written).
CLOCKS = (
    "response",
    "appointment_confirm",
    "arrival",
    "general_repair",
    "workshop_repair",
    "parts_dispatch",
)

revision: str = "0004_quality_facts"
down_revision: str | None = "0003_personal_data"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def order_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("booked_on", sa.Date(), nullable=True),
        sa.Column("booked_week", sa.Date(), nullable=True),
        sa.Column("booked_month", sa.Date(), nullable=True),
        sa.Column("first_response_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_in_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acceptance_deemed", sa.Boolean(), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("visits", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("survey_attitude", sa.Integer(), nullable=True),
        sa.Column("survey_quality", sa.Integer(), nullable=True),
        sa.Column("survey_result", sa.Integer(), nullable=True),
        sa.Column("survey_speed", sa.Integer(), nullable=True),
        sa.Column("response_hours", sa.Float(), nullable=True),
        sa.Column("arrival_hours", sa.Float(), nullable=True),
        sa.Column("resolution_hours", sa.Float(), nullable=True),
        sa.Column("repair_hours", sa.Float(), nullable=True),
        sa.Column("sla_clocks", sa.JSON(), nullable=True),
        *(
            sa.Column(f"{clock}_breached", sa.Boolean(), nullable=False, server_default=sa.false())
            for clock in CLOCKS
        ),
    ]


def complaint_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("first_replied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("original_first_reply_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("original_resolution_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tier_reached", sa.Integer(), nullable=True),
        sa.Column("resolution_hours", sa.Float(), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("orders") as table:
        for column in order_columns():
            table.add_column(column)
        table.create_index("ix_orders_booked_on", ["booked_on"])
    with op.batch_alter_table("complaints") as table:
        for column in complaint_columns():
            table.add_column(column)
    backfill(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("complaints") as table:
        for column in reversed(complaint_columns()):
            table.drop_column(column.name)
    with op.batch_alter_table("orders") as table:
        table.drop_index("ix_orders_booked_on")
        for column in reversed(order_columns()):
            table.drop_column(column.name)


def aware(value: Any) -> datetime:
    """An instant as the engines hand it back here (SQLite: naive UTC, maybe text)."""
    at: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def backfill(connection: sa.Connection) -> None:
    from core.settings import Settings

    zone = ZoneInfo(Settings().policy.timezone)
    orders = sa.table(
        "orders",
        sa.column("order_id"),
        sa.column("booked_at"),
        sa.column("accepted_at"),
        *(sa.column(column.name, column.type) for column in order_columns()),
    )
    events = sa.table(
        "order_events", sa.column("order_id"), sa.column("seq"), sa.column("at"),
        sa.column("action"), sa.column("detail"),
    )  # fmt: skip
    rows = connection.execute(
        sa.select(orders.c.order_id, orders.c.booked_at, orders.c.accepted_at)
    )
    for order_id, booked_at, accepted_at in rows.all():
        booked_at = aware(booked_at)
        kept: dict[str, Any] = {
            "booked_at": booked_at,
            "accepted_at": aware(accepted_at) if accepted_at is not None else None,
            "visits": 0,
        }
        clocks: dict[str, dict[str, Any]] = {}
        log = connection.execute(
            sa.select(events.c.at, events.c.action, events.c.detail)
            .where(events.c.order_id == order_id)
            .order_by(events.c.seq)
        )
        for at, action, detail in log.all():
            at = aware(at)
            kept |= facts.from_event(kept, action, detail, at)
            clocks = facts.clocks_from_event(clocks, booked_at, action, detail, at)
        kept |= facts.calendar(booked_at.astimezone(zone).date())
        kept |= facts.durations(kept)
        kept["sla_clocks"] = clocks or None
        kept |= facts.breaches(clocks)
        del kept["booked_at"], kept["accepted_at"]
        connection.execute(orders.update().where(orders.c.order_id == order_id).values(**kept))
    complaints = sa.table(
        "complaints",
        sa.column("complaint_id"), sa.column("filed_at"), sa.column("resolved_at"),
        sa.column("acknowledged_at"), sa.column("first_reply_due"), sa.column("resolution_due"),
        sa.column("tier"), *(sa.column(column.name) for column in complaint_columns()),
    )  # fmt: skip
    connection.execute(
        complaints.update().values(
            first_replied_at=complaints.c.acknowledged_at,
            original_first_reply_due=complaints.c.first_reply_due,
            original_resolution_due=complaints.c.resolution_due,
            tier_reached=complaints.c.tier,
        )
    )
    resolved = connection.execute(
        sa.select(complaints.c.complaint_id, complaints.c.filed_at, complaints.c.resolved_at).where(
            complaints.c.resolved_at.is_not(None)
        )
    )
    for complaint_id, filed_at, resolved_at in resolved.all():
        connection.execute(
            complaints.update()
            .where(complaints.c.complaint_id == complaint_id)
            .values(resolution_hours=(aware(resolved_at) - aware(filed_at)) / facts.HOUR)
        )
