"""The initial schema: every table of models/records.py, the event log with its hash chain.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-24

Types are the engines' own (String, DateTime with time zone, Numeric, JSON), not the models'
Python-side wrappers (SQLModel's AutoString, UtcDateTime), so this file never changes when
the models do. Constraint and index names follow the naming convention in models/records.py.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def instant(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    """An instant, stored in UTC (models.records.UtcDateTime reads it back aware)."""
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def text(name: str, length: int, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.String(length=length), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "orders",
        text("order_id", 40),
        text("stage", 32),
        text("priority", 16),
        text("channel", 16),
        text("category", 32),
        text("region", 200),
        text("technician_id", 64, nullable=True),
        text("warranty_status", 32),
        sa.Column("sla_breached", sa.Boolean(), nullable=False),
        text("currency", 3),
        sa.Column("total", sa.Numeric(precision=12, scale=2), nullable=False),
        instant("booked_at"),
        instant("updated_at"),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("survey_score", sa.Numeric(precision=3, scale=2), nullable=True),
        sa.Column("rework_count", sa.Integer(), nullable=False),
        sa.Column("claims", sa.Integer(), nullable=False),
        instant("accepted_at", nullable=True),
        text("last_hash", 64, nullable=True),
        text("customer_name", 200, nullable=True),
        text("customer_phone", 32, nullable=True),
        sa.PrimaryKeyConstraint("order_id", name="pk_orders"),
    )
    op.create_index("ix_orders_booked_at_order_id", "orders", ["booked_at", "order_id"])
    for column in ("category", "priority", "region", "sla_breached", "stage", "technician_id"):
        op.create_index(f"ix_orders_{column}", "orders", [column])

    op.create_table(
        "order_events",
        sa.Column("id", sa.Integer(), nullable=False),
        text("order_id", 40),
        sa.Column("seq", sa.Integer(), nullable=False),
        instant("at"),
        text("actor", 200),
        text("action", 64),
        text("detail", 4000),
        text("prev_hash", 64),
        text("hash", 64),
        sa.PrimaryKeyConstraint("id", name="pk_order_events"),
        sa.UniqueConstraint("order_id", "seq", name="uq_order_events_order_id_seq"),
    )
    op.create_index("ix_order_events_order_id", "order_events", ["order_id"])

    op.create_table(
        "idempotency_keys",
        text("key", 200),
        text("request_hash", 64),
        text("order_id", 40),
        instant("created_at"),
        sa.PrimaryKeyConstraint("key", name="pk_idempotency_keys"),
    )

    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        text("key", 200),
        text("order_id", 40),
        text("template", 64),
        text("recipient", 32),
        text("channel", 16),
        text("locale", 8),
        text("subject", 200),
        text("body", 4000),
        text("status", 16),
        text("error", 500, nullable=True),
        instant("created_at"),
        text("destination", 254, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
        sa.UniqueConstraint("key", name="uq_notifications_key"),
    )
    op.create_index("ix_notifications_order_id", "notifications", ["order_id"])

    op.create_table(
        "technicians",
        text("id", 64),
        text("status", 16),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("regions", sa.JSON(), nullable=False),
        sa.Column("certificates", sa.JSON(), nullable=False),
        instant("created_at"),
        instant("updated_at"),
        text("name", 200),
        text("phone", 32),
        sa.PrimaryKeyConstraint("id", name="pk_technicians"),
    )

    op.create_table(
        "complaints",
        text("complaint_id", 48),
        text("order_id", 40),
        text("state", 16),
        sa.Column("tier", sa.Integer(), nullable=False),
        text("category", 200),
        sa.Column("concerns_work", sa.Boolean(), nullable=False),
        text("technician_id", 64, nullable=True),
        instant("filed_at"),
        instant("first_reply_due"),
        instant("resolution_due"),
        instant("acknowledged_at", nullable=True),
        instant("resolved_at", nullable=True),
        instant("closed_at", nullable=True),
        sa.Column("compensation", sa.Numeric(precision=12, scale=2), nullable=True),
        instant("updated_at"),
        sa.PrimaryKeyConstraint("complaint_id", name="pk_complaints"),
    )
    for column in ("filed_at", "order_id", "state", "technician_id", "tier"):
        op.create_index(f"ix_complaints_{column}", "complaints", [column])

    op.create_table(
        "history_archive",
        text("workflow_id", 64),
        text("run_id", 64),
        text("order_id", 40),
        sa.Column("history_json", sa.Text(), nullable=False),
        instant("archived_at"),
        sa.PrimaryKeyConstraint("workflow_id", name="pk_history_archive"),
    )
    op.create_index("ix_history_archive_order_id", "history_archive", ["order_id"])


def downgrade() -> None:
    for table in (
        "history_archive",
        "complaints",
        "technicians",
        "notifications",
        "idempotency_keys",
        "order_events",
        "orders",
    ):
        op.drop_table(table)  # its indexes go with it
