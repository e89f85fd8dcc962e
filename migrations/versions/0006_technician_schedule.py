"""Technicians' schedules: shifts, days off and on-call periods, which dispatch offers by.

Revision ID: 0006_technician_schedule
Revises: 0005_final_order
Create Date: 2026-12-07

Technicians registered before have none: they work the policy's business hours.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_technician_schedule"
down_revision: str | None = "0005_final_order"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("shifts", "days_off", "on_call")


def upgrade() -> None:
    with op.batch_alter_table("technicians") as table:
        for name in COLUMNS:
            table.add_column(sa.Column(name, sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("technicians") as table:
        for name in COLUMNS:
            table.drop_column(name)
