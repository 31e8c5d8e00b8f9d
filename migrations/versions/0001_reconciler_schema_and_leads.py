"""The reconciler's own schema (runs, sync state, failures, watermarks) and the leads table.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

S = "reconciler"
TS = TIMESTAMP(timezone=True)
NOW = sa.text("clock_timestamp()")

TOUCH = f"""
CREATE OR REPLACE FUNCTION {S}.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Every write marks the row as changed, unless the statement set updated_at itself.
    IF TG_OP = 'INSERT' THEN
        NEW.updated_at := coalesce(NEW.updated_at, clock_timestamp());
    ELSIF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := clock_timestamp();
    END IF;
    RETURN NEW;
END
$$;
"""

LEAD_COLUMNS = [
    ("first_name", sa.Text()), ("last_name", sa.Text()), ("email", sa.Text()),
    ("phone", sa.Text()), ("company", sa.Text()), ("title", sa.Text()),
    ("icp_score", sa.Numeric()), ("status", sa.Text()), ("campaign_name", sa.Text()),
    ("lead_source", sa.Text()), ("form_id", sa.Text()), ("sms_sent_count", sa.Integer()),
    ("sms_sequence_position", sa.Integer()), ("sms_last_sent_at", TS),
    ("booked", sa.Boolean()), ("booked_at", TS), ("sms_stop", sa.Boolean()),
    ("processing_status", sa.Text()), ("campaign_id", sa.Text()), ("claimed_by", sa.Text()),
    ("claimed_at", TS), ("notes", sa.Text()),
]  # fmt: skip


def _own_tables() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        schema=S,
    )
    op.create_table(
        "runs",
        sa.Column("run_id", sa.Text(), primary_key=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("lookback_minutes", sa.Integer(), nullable=False),
        sa.Column("window_since", TS),
        sa.Column("window_until", TS),
        sa.Column("exit_code", sa.Integer()),
        sa.Column("report", JSONB()),
        schema=S,
    )
    op.create_table(
        "sync_state",
        sa.Column("mapping", sa.Text(), nullable=False),
        sa.Column("local_id", sa.BigInteger(), nullable=False),
        sa.Column("remote_id", sa.Text()),
        sa.Column("remote_modified_at", TS),
        sa.Column("local_updated_at", TS),
        sa.Column("shadow", JSONB(), nullable=False),
        sa.Column("pending", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("synced_at", TS, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("mapping", "local_id"),
        sa.UniqueConstraint("mapping", "remote_id"),
        schema=S,
    )
    op.create_table(
        "failures",
        sa.Column("mapping", sa.Text(), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("record_key", sa.Text(), nullable=False),
        sa.Column("local_id", sa.BigInteger()),
        sa.Column("remote_id", sa.Text()),
        sa.Column("local_updated_at", TS),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Column("first_failed_at", TS, nullable=False, server_default=NOW),
        sa.Column("last_failed_at", TS, nullable=False, server_default=NOW),
        sa.Column("next_attempt_at", TS, nullable=False, server_default=NOW),
        sa.Column("retryable", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        sa.Column("dead", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("mapping", "stage", "record_key"),
        schema=S,
    )
    op.create_table(
        "watermarks",
        sa.Column("mapping", sa.Text(), primary_key=True),
        sa.Column("pull_until", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False, server_default=NOW),
        schema=S,
    )


def create_business_table(
    name: str,
    key: str,
    key_type: sa.types.TypeEngine[object],
    columns: list[tuple[str, sa.types.TypeEngine[object]]],
) -> None:
    """A mapped table: id, remote key, business columns, remote_deleted_at, timestamps, trigger."""
    cols = [
        sa.Column(
            c,
            t,
            nullable=not isinstance(t, sa.Boolean),
            server_default=sa.text("false") if isinstance(t, sa.Boolean) else None,
        )
        for c, t in columns
    ]
    op.create_table(
        name,
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column(key, key_type, unique=True),
        *cols,
        sa.Column("remote_deleted_at", TS),
        sa.Column("created_at", TS, nullable=False, server_default=NOW),
        sa.Column("updated_at", TS, nullable=False, server_default=NOW),
    )
    op.execute(
        f"CREATE TRIGGER {name}_touch_updated_at BEFORE INSERT OR UPDATE ON {name} "
        f"FOR EACH ROW EXECUTE FUNCTION {S}.touch_updated_at()"
    )


def upgrade() -> None:
    _own_tables()
    op.execute(TOUCH)
    op.execute(
        sa.text(f"INSERT INTO {S}.meta (key, value) VALUES ('install_id', :v)").bindparams(
            v=str(uuid.uuid4())
        )
    )
    create_business_table("leads", "airtable_record_id", sa.Text(), LEAD_COLUMNS)


def downgrade() -> None:
    op.drop_table("leads")
    for table in ("watermarks", "failures", "sync_state", "runs", "meta"):
        op.drop_table(table, schema=S)
    op.execute(f"DROP FUNCTION IF EXISTS {S}.touch_updated_at()")
