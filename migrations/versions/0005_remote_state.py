"""What a run keeps of each mapping's remote between runs: its schema and its clock.

``schema`` is what the remote adapter needs to work without asking again (Airtable: the field
ids the configured names resolve to, and the field types), so a run spends no request on the
meta API unless something changed: monthly API caps count every request. ``clock_offset_ms`` is
the remote's clock minus this host's, learned from the ``Date`` header of its answers, so a run
can place its window on the remote's clock before the first answer arrives.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

S = "reconciler"
TS = TIMESTAMP(timezone=True)


def upgrade() -> None:
    op.create_table(
        "remote_state",
        sa.Column("mapping", sa.Text(), primary_key=True),
        sa.Column("schema", JSONB()),
        sa.Column("schema_saved_at", TS),
        sa.Column("clock_offset_ms", sa.Float()),
        sa.Column("clock_seen_at", TS),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("remote_state", schema=S)
