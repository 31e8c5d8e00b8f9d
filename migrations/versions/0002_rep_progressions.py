"""The rep_progressions table (Twenty repProgressions), JSON fields as jsonb.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP, UUID

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_spec = importlib.util.spec_from_file_location(
    "_migration_0001", Path(__file__).with_name("0001_reconciler_schema_and_leads.py")
)
assert _spec is not None and _spec.loader is not None
_first = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_first)

COLUMNS = [
    ("name", sa.Text()), ("workspace_member_id", sa.Text()), ("total_xp", sa.Numeric()),
    ("current_level", sa.Numeric()), ("closed_deals", sa.Numeric()), ("streak_days", sa.Numeric()),
    ("current_rank", sa.Text()), ("badges", JSONB()), ("efficiency_metrics", JSONB()),
    ("completed_modules", JSONB()), ("certifications", JSONB()), ("defeated_bosses", JSONB()),
    ("passed_exams", JSONB()), ("last_activity_date", TIMESTAMP(timezone=True)),
]  # fmt: skip


def upgrade() -> None:
    _first.create_business_table("rep_progressions", "twenty_id", UUID(), COLUMNS)


def downgrade() -> None:
    op.drop_table("rep_progressions")
