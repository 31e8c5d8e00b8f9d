"""The tables: the reconciler's own (schema ``reconciler``) and the built-in business tables.

The business tables are derived from the built-in mappings, so a mapped column cannot be forgotten.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSON, JSONB, TIMESTAMP, UUID
from sqlalchemy.types import TypeEngine

from reconciler.model import LEADS, REP_PROGRESSIONS, Kind, Mapping

SCHEMA = "reconciler"
metadata = MetaData()

_TS = TIMESTAMP(timezone=True)
_NOW = text("clock_timestamp()")

_KIND_TYPES: dict[Kind, TypeEngine[Any]] = {
    Kind.TEXT: Text(),
    Kind.NUMBER: Numeric(),
    Kind.INTEGER: Integer(),
    Kind.BOOLEAN: Boolean(),
    Kind.DATETIME: _TS,
    Kind.DATE: Date(),
    Kind.JSON: JSONB(),
}


def _business_table(mapping: Mapping, key_type: TypeEngine[Any]) -> Table:
    columns = [
        Column(
            f.column,
            _KIND_TYPES[f.kind],
            nullable=f.kind is not Kind.BOOLEAN,
            server_default=text("false") if f.kind is Kind.BOOLEAN else None,
        )
        for f in mapping.fields
    ]
    return Table(
        mapping.local_table,
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column(mapping.key_column, key_type, unique=True),
        *columns,
        Column("remote_deleted_at", _TS),
        Column("created_at", _TS, nullable=False, server_default=_NOW),
        Column("updated_at", _TS, nullable=False, server_default=_NOW),
    )


leads = _business_table(LEADS, Text())
rep_progressions = _business_table(REP_PROGRESSIONS, UUID(as_uuid=False))

runs = Table(
    "runs",
    metadata,
    Column("run_id", Text, primary_key=True),
    Column("started_at", _TS, nullable=False),
    Column("finished_at", _TS),
    Column("status", Text, nullable=False),
    Column("dry_run", Boolean, nullable=False, server_default=text("false")),
    Column("lookback_minutes", Integer, nullable=False),
    Column("window_since", _TS),
    Column("window_until", _TS),
    Column("exit_code", Integer),
    Column("report", JSONB),
    schema=SCHEMA,
)

sync_state = Table(
    "sync_state",
    metadata,
    Column("mapping", Text, nullable=False),
    Column("local_id", BigInteger, nullable=False),
    Column("remote_id", Text),
    Column("remote_modified_at", _TS),
    Column("local_updated_at", _TS),
    # json, not jsonb: written for every record applied, read back only whole.
    Column("shadow", JSON, nullable=False),
    Column("pending", Boolean, nullable=False, server_default=text("false")),
    Column("synced_at", _TS, nullable=False, server_default=_NOW),
    PrimaryKeyConstraint("mapping", "local_id"),
    UniqueConstraint("mapping", "remote_id"),
    schema=SCHEMA,
)

failures = Table(
    "failures",
    metadata,
    Column("mapping", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("record_key", Text, nullable=False),
    Column("local_id", BigInteger),
    Column("remote_id", Text),
    Column("local_updated_at", _TS),
    Column("attempts", Integer, nullable=False, server_default=text("1")),
    Column("first_failed_at", _TS, nullable=False, server_default=_NOW),
    Column("last_failed_at", _TS, nullable=False, server_default=_NOW),
    Column("next_attempt_at", _TS, nullable=False, server_default=_NOW),
    Column("retryable", Boolean, nullable=False, server_default=text("true")),
    Column("dead", Boolean, nullable=False, server_default=text("false")),
    Column("message", Text, nullable=False),
    PrimaryKeyConstraint("mapping", "stage", "record_key"),
    schema=SCHEMA,
)

watermarks = Table(
    "watermarks",
    metadata,
    Column("mapping", Text, primary_key=True),
    Column("pull_until", _TS, nullable=False),
    Column("updated_at", _TS, nullable=False, server_default=_NOW),
    schema=SCHEMA,
)

remote_state = Table(
    "remote_state",
    metadata,
    Column("mapping", Text, primary_key=True),
    Column("schema", JSONB),
    Column("schema_saved_at", _TS),
    Column("clock_offset_ms", Float),
    Column("clock_seen_at", _TS),
    # The mapped columns every synced row holds a base for (None: not counted yet).
    Column("filled_fields", JSONB),
    # What refusals taught the remote's pacer (``Pacer.lessons``), and when last.
    Column("pacing", JSONB),
    Column("pacing_saved_at", _TS),
    schema=SCHEMA,
)

meta = Table(
    "meta",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
    schema=SCHEMA,
)

change_log = Table(
    "change_log",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("logged_at", _TS, nullable=False, server_default=_NOW),
    Column("run_id", Text, nullable=False),
    Column("mapping", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("conflict", Boolean, nullable=False, server_default=text("false")),
    Column("remote_id", Text),
    Column("local_table", Text),
    Column("local_id", BigInteger),
    # json, not jsonb: written on every change, read rarely; kept as sent, in field order.
    Column("changes", JSON, nullable=False, server_default=text("'[]'::json")),
    Column("message", Text),
    # Time and run grow with the table's order: one BRIN index, nothing written per entry.
    Index(
        "change_log_time_run",
        "logged_at",
        "run_id",
        postgresql_using="brin",
        postgresql_with={"autosummarize": "on"},
    ),
    Index("change_log_remote_id", "remote_id", postgresql_using="hash"),  # equality only
    Index("change_log_local", "local_id"),
    schema=SCHEMA,
)

BUSINESS_TABLES = {LEADS.local_table: leads, REP_PROGRESSIONS.local_table: rep_progressions}
