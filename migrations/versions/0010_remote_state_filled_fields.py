"""What each mapping's synced rows hold a base for: ``remote_state.filled_fields``.

A row's sync state keeps, as its shadow, the record's values for the columns its mapping had
when the row was last synced. A column mapped later has no base there until the record is read
again, so a field added to a mapping fills in for rows synced before only as their records change,
or at once with ``--full``. ``filled_fields`` lists the mapped columns every synced row of the
mapping holds a base for, so that a run can name the ones that do not (the report's
``unfilled_fields``, ``reconcile check``) without reading every shadow.

Existing rows are counted here once: a column is filled when every sync state of the mapping
has it in its shadow. Mappings with no sync state yet get theirs at the end of their next run.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

S = "reconciler"


def upgrade() -> None:
    op.add_column("remote_state", sa.Column("filled_fields", JSONB()), schema=S)
    op.execute(
        f"""
        WITH states AS (
            SELECT mapping, count(*) AS n FROM {S}.sync_state GROUP BY mapping
        ), keys AS (
            SELECT s.mapping, k.key, count(*) AS n
            FROM {S}.sync_state s, json_object_keys(s.shadow) AS k(key)
            GROUP BY s.mapping, k.key
        )
        INSERT INTO {S}.remote_state (mapping, filled_fields)
        SELECT states.mapping,
               coalesce(
                   jsonb_agg(keys.key ORDER BY keys.key) FILTER (WHERE keys.n = states.n),
                   '[]'::jsonb
               )
        FROM states LEFT JOIN keys ON keys.mapping = states.mapping
        GROUP BY states.mapping
        ON CONFLICT (mapping) DO UPDATE SET filled_fields = excluded.filled_fields
        """
    )


def downgrade() -> None:
    op.drop_column("remote_state", "filled_fields", schema=S)
