"""An archived order keeps its final state, so it stays readable after the engine's retention.

Revision ID: 0005_final_order
Revises: 0004_quality_facts
Create Date: 2026-12-07

Orders archived before have none; the worker's first archiving round after it starts fills it
for every closed order the engine still holds.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_final_order"
down_revision: str | None = "0004_quality_facts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("history_archive") as table:
        table.add_column(sa.Column("final_order", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("history_archive") as table:
        table.drop_column("final_order")
