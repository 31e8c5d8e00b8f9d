"""The ``updated_at`` trigger of the mapped tables runs only when it has something to do.

The one ``BEFORE INSERT OR UPDATE`` trigger called its PL/pgSQL function for every row written,
although the function changes a row in two cases only: an insert that gives ``updated_at`` as
NULL, and an update that leaves it as it was. Each case is now its own trigger with that
condition as its ``WHEN`` clause, which Postgres evaluates without calling the function: "if the
WHEN clause is specified, the function will only be called if the condition returns true"
(https://www.postgresql.org/docs/current/sql-createtrigger.html). The function, and so what a row
ends up with, is unchanged. A pull writes every row it applies: inserting 50,000 leads took about
a quarter less time, and updating them (``updated_at`` set by the statement, as a pull does)
about a fifth less, measured side by side.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

S = "reconciler"
TABLES = ("leads", "rep_progressions")
TOUCH = f"EXECUTE FUNCTION {S}.touch_updated_at()"


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER {table}_touch_updated_at ON {table}")
        op.execute(
            f"CREATE TRIGGER {table}_touch_inserted BEFORE INSERT ON {table} FOR EACH ROW "
            f"WHEN (NEW.updated_at IS NULL) {TOUCH}"
        )
        op.execute(
            f"CREATE TRIGGER {table}_touch_updated BEFORE UPDATE ON {table} FOR EACH ROW "
            f"WHEN (NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at) {TOUCH}"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER {table}_touch_updated ON {table}")
        op.execute(f"DROP TRIGGER {table}_touch_inserted ON {table}")
        op.execute(
            f"CREATE TRIGGER {table}_touch_updated_at BEFORE INSERT OR UPDATE ON {table} "
            f"FOR EACH ROW {TOUCH}"
        )
