"""The change log: every change a run applied or refused, with its deciding rule.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

S = "reconciler"
TS = TIMESTAMP(timezone=True)
NOW = sa.text("clock_timestamp()")


def upgrade() -> None:
    op.create_table(
        "change_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("logged_at", TS, nullable=False, server_default=NOW),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("mapping", sa.Text(), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("conflict", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("remote_id", sa.Text()),
        sa.Column("local_table", sa.Text()),
        sa.Column("local_id", sa.BigInteger()),
        sa.Column("changes", JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("message", sa.Text()),
        schema=S,
    )
    # Newest-first listing and retention read by time; the filters by record and by run.
    op.create_index("change_log_logged_at", "change_log", ["logged_at"], schema=S)
    op.create_index("change_log_remote_id", "change_log", ["remote_id"], schema=S)
    op.create_index("change_log_local", "change_log", ["local_id", "local_table"], schema=S)
    op.create_index("change_log_run_id", "change_log", ["run_id"], schema=S)


def downgrade() -> None:
    op.drop_table("change_log", schema=S)
