"""The event log's actor and detail become unbounded text.

Revision ID: 0002_event_text
Revises: 0001_initial
Create Date: 2026-12-02

An event's detail is built from what people typed (twenty part numbers of 200 characters
make a detail past 4000) and its actor from a token's subject: a bound here let PostgreSQL
refuse events the API had accepted, stalling the order's event log.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_event_text"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("order_events") as table:
        table.alter_column("actor", type_=sa.Text(), existing_type=sa.String(200))
        table.alter_column("detail", type_=sa.Text(), existing_type=sa.String(4000))


def downgrade() -> None:
    with op.batch_alter_table("order_events") as table:
        table.alter_column("detail", type_=sa.String(4000), existing_type=sa.Text())
        table.alter_column("actor", type_=sa.String(200), existing_type=sa.Text())
