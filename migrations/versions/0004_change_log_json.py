"""The change log keeps its changes as json text rather than jsonb.

The log is written for every applied change and read rarely: json is stored as sent, which is
cheaper to write than jsonb's parsed form, and keeps a new record's values in field order.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSON, JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

S = "reconciler"


def upgrade() -> None:
    op.alter_column(
        "change_log",
        "changes",
        type_=JSON(),
        postgresql_using="changes::json",
        server_default=sa.text("'[]'::json"),
        existing_nullable=False,
        schema=S,
    )


def downgrade() -> None:
    op.alter_column(
        "change_log",
        "changes",
        type_=JSONB(),
        postgresql_using="changes::jsonb",
        server_default=sa.text("'[]'::jsonb"),
        existing_nullable=False,
        schema=S,
    )
