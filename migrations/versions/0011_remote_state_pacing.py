"""What refusals taught a run about a mapping's remote: ``remote_state.pacing``.

A remote that refuses a request for its rate (a 429) though the run kept to its limit teaches
the pacer something: a Twenty server names a smaller bucket than ``TWENTY_RATE_LIMIT``, or a
path to Airtable needs more room between windows than the pacer's guard gave (at Airtable, one
request too many locks the base for 30 seconds). ``pacing`` keeps what the pacer learned
(``{"guard": seconds}``, ``{"limit": n, "span": seconds}``) and ``pacing_saved_at`` when, so
that the next runs start from it instead of learning it again by another refusal, for a week
after the last refusal.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

S = "reconciler"


def upgrade() -> None:
    op.add_column("remote_state", sa.Column("pacing", JSONB()), schema=S)
    op.add_column("remote_state", sa.Column("pacing_saved_at", TIMESTAMP(timezone=True)), schema=S)


def downgrade() -> None:
    op.drop_column("remote_state", "pacing_saved_at", schema=S)
    op.drop_column("remote_state", "pacing", schema=S)
