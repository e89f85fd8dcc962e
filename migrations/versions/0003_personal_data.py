"""Customers' personal data is sealed per order: a table of personal-data keys, and the columns
that hold sealed values become unbounded text.

Revision ID: 0003_personal_data
Revises: 0002_event_text
Create Date: 2026-12-07

A sealed value is longer than the clear one it holds (nonce, tag, base64), so the bounds the
clear values had (32 characters for a phone) would refuse it on PostgreSQL.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_personal_data"
down_revision: str | None = "0002_event_text"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "personal_data_keys",
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("wrapped", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_personal_data_keys"),
    )
    with op.batch_alter_table("orders") as table:
        table.alter_column("customer_name", type_=sa.Text(), existing_type=sa.String(200))
        table.alter_column("customer_phone", type_=sa.Text(), existing_type=sa.String(32))
    with op.batch_alter_table("notifications") as table:
        table.alter_column("destination", type_=sa.Text(), existing_type=sa.String(254))


def downgrade() -> None:
    with op.batch_alter_table("notifications") as table:
        table.alter_column("destination", type_=sa.String(254), existing_type=sa.Text())
    with op.batch_alter_table("orders") as table:
        table.alter_column("customer_phone", type_=sa.String(32), existing_type=sa.Text())
        table.alter_column("customer_name", type_=sa.String(200), existing_type=sa.Text())
    op.drop_table("personal_data_keys")
