"""The change log's remote id index is a hash index.

The index serves one lookup, ``reconcile log --remote-id ID`` (equality), and is written once per
entry, which a pull writes for every record it applies. A btree places each random record id by
comparing text in the database's collation, about twenty comparisons an entry; a hash index
hashes it once. "Hash indexes store only a 32-bit hash code ... only support single-column
indexes and ... only equality" (https://www.postgresql.org/docs/current/hash-index.html): all
this lookup needs. A 50,000-entry COPY into the log spends about a quarter less time.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

S = "reconciler"


def upgrade() -> None:
    op.drop_index("change_log_remote_id", table_name="change_log", schema=S)
    op.create_index(
        "change_log_remote_id", "change_log", ["remote_id"], schema=S, postgresql_using="hash"
    )


def downgrade() -> None:
    op.drop_index("change_log_remote_id", table_name="change_log", schema=S)
    op.create_index("change_log_remote_id", "change_log", ["remote_id"], schema=S)
