"""The change log finds entries by time and by run through one BRIN index.

Entries are appended in time order, and run ids sort by the time their run started
(``20261202T021900Z-…``), so both columns grow with the table's physical order. A BRIN index
keeps each column's least and greatest value per range of pages: "BRIN is designed for handling
very large tables in which certain columns have some natural correlation with their physical
location within the table" (https://www.postgresql.org/docs/current/brin-intro.html). Nothing is
written per entry while a range fills; with ``autosummarize`` the range is summarized once it is
full. The two btrees it replaces were written once per entry, for every record a pull applies.

The record lookup needs only ``local_id`` in its index (the table name narrows the few rows a
key finds). Newest first is now the order of ``id``, the order entries were written in.

A 50,000-entry ``COPY`` in 100 units spends about a quarter less time than with the three
btrees (measured side by side, the same entries into fresh tables).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

S = "reconciler"


def upgrade() -> None:
    op.drop_index("change_log_logged_at", table_name="change_log", schema=S)
    op.drop_index("change_log_run_id", table_name="change_log", schema=S)
    op.drop_index("change_log_local", table_name="change_log", schema=S)
    op.create_index(
        "change_log_time_run",
        "change_log",
        ["logged_at", "run_id"],
        schema=S,
        postgresql_using="brin",
        postgresql_with={"autosummarize": "on"},
    )
    op.create_index("change_log_local", "change_log", ["local_id"], schema=S)


def downgrade() -> None:
    op.drop_index("change_log_local", table_name="change_log", schema=S)
    op.drop_index("change_log_time_run", table_name="change_log", schema=S)
    op.create_index("change_log_local", "change_log", ["local_id", "local_table"], schema=S)
    op.create_index("change_log_run_id", "change_log", ["run_id"], schema=S)
    op.create_index("change_log_logged_at", "change_log", ["logged_at"], schema=S)
