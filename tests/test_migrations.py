"""Migrations that carry existing data forward."""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from reconciler.store.database import MIGRATIONS, migrate
from reconciler.store.history import remote_state_of
from tests.helpers import execute


def _state(db: sa.Engine, mapping: str, local_id: int, shadow: dict[str, object]) -> None:
    execute(
        db,
        "INSERT INTO reconciler.sync_state (mapping, local_id, remote_id, shadow) "
        "VALUES (:mapping, :local_id, :remote_id, CAST(:shadow AS json))",
        mapping=mapping,
        local_id=local_id,
        remote_id=f"rec{mapping}{local_id}",
        shadow=json.dumps(shadow),
    )


def test_0010__counts_the_columns_every_synced_row_holds_a_base_for(db) -> None:
    """Upgrading an install that already synced: a column is filled for a mapping when every
    sync state of it has the column in its shadow; what a run kept of the remote stays."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with db.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0009")
    _state(db, "leads", 1, {"notes": "a", "status": None})
    _state(db, "leads", 2, {"notes": None})  # synced before status was mapped
    _state(db, "events", 1, {"title": "A"})
    execute(
        db,
        "INSERT INTO reconciler.remote_state (mapping, schema) "
        "VALUES ('leads', CAST('{\"kept\": 1}' AS jsonb))",
    )

    migrate(db)

    with db.connect() as conn:
        leads, events, other = (remote_state_of(conn, m) for m in ("leads", "events", "other"))
    assert leads.filled == {"notes"} and leads.schema == {"kept": 1}
    assert events.filled == {"title"}
    assert other.filled is None  # no sync state: counted at the end of its first run
