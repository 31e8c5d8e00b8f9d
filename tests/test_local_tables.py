"""The tables a pull reads and writes for every record: rows looked up by key through the key's
index, and a page's old sync states found the same way; the mapped tables' ``updated_at``,
stamped by the database when a write does not say and the trigger function called only then;
the sync state's shadow, kept as the text sent."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from reconciler.model import LEADS
from reconciler.store.pages import StateRow
from reconciler.store.sync import Store
from tests.helpers import execute, explained, seed_leads

SET = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
MAPPED_TABLES = [("leads", "notes"), ("rep_progressions", "name")]  # each with a text column


@pytest.mark.parametrize("lock", [True, False])
def test_lookup__finds_rows_by_key_through_its_index_in_a_table_without_statistics(
    db, lock: bool
) -> None:
    """A first pull fills the table faster than statistics are gathered; each page's lookup
    still goes through the key's index, not a scan of every row inserted so far."""
    execute(
        db,
        "INSERT INTO leads (airtable_record_id, first_name) "
        "SELECT 'rec' || lpad(i::text, 14, '0'), 'n' || i FROM generate_series(1, 50000) AS i",
    )
    wanted = ["rec00000000000007", "rec00000000049999", "recNOTTHERE00000"] + [
        f"recX{i:013d}" for i in range(900)
    ]

    def lookup(conn: sa.Connection) -> dict[str, str | None]:
        found = Store(conn).rows_by_remote_ids(LEADS, wanted, lock=lock)
        return {key: row.values["first_name"] for key, row in found.items()}

    found, plan = explained(db, lookup)
    assert found == {"rec00000000000007": "n7", "rec00000000049999": "n49999"}
    assert "Index Scan using leads_airtable_record_id_key" in plan, plan
    assert "Seq Scan on leads" not in plan, plan


def test_states__a_page_replaces_its_old_states_through_the_keys_indexes_without_statistics(
    db,
) -> None:
    """A first pull writes states faster than statistics are gathered; deleting a page's old
    states (by local id and by remote id) still looks each key up on its index, not every
    state of the mapping written so far."""
    execute(
        db,
        "INSERT INTO reconciler.sync_state (mapping, local_id, remote_id, shadow) "
        "SELECT m, i, 'rec' || lpad(i::text, 14, '0'), '{}' "
        "FROM generate_series(1, 50000) AS i, unnest(ARRAY['leads', 'other']) AS m",
    )
    page = [
        StateRow(7, "recNEW0000000007", None, None, '{"n": 7}', False),  # old state by local id
        StateRow(60001, "rec00000000049999", None, None, '{"n": 1}', False),  # by remote id
        StateRow(60002, "recNEW0000060002", None, None, '{"n": 2}', True),  # none
    ]

    def save(conn: sa.Connection) -> None:
        Store(conn)._save_states(LEADS, page)
        conn.commit()

    _, plan = explained(db, save)
    with db.connect() as conn:
        states = conn.execute(
            sa.text(
                "SELECT local_id, remote_id, shadow::text FROM reconciler.sync_state "
                "WHERE mapping = 'leads' AND (local_id IN (7, 49999, 60001, 60002) "
                "OR remote_id IN ('rec00000000000007', 'rec00000000049999')) ORDER BY local_id"
            )
        ).all()
        others = conn.execute(
            sa.text("SELECT count(*) FROM reconciler.sync_state WHERE mapping = 'other'")
        ).scalar()
    assert [tuple(r) for r in states] == [
        (7, "recNEW0000000007", '{"n": 7}'),
        (60001, "rec00000000049999", '{"n": 1}'),
        (60002, "recNEW0000060002", '{"n": 2}'),
    ]
    assert others == 50000
    conditions = [line for line in plan.splitlines() if "Index Cond" in line]
    assert len(conditions) == 2, plan
    assert all("local_id =" in c or "remote_id =" in c for c in conditions), plan
    assert "Seq Scan on sync_state" not in plan, plan


def _stamps(conn: sa.Connection, table: str) -> dict[str, datetime]:
    found = conn.execute(sa.text(f"SELECT label, updated_at FROM {table} ORDER BY id"))
    return {str(label): stamp for label, stamp in found}


@pytest.mark.parametrize(("table", "column"), MAPPED_TABLES)
def test_updated_at__is_stamped_when_a_write_does_not_set_it_and_kept_when_it_does(
    db, table: str, column: str
) -> None:
    with db.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN label text"))
        before = conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one()
        insert = f"INSERT INTO {table} (label, {column}"
        conn.execute(sa.text(f"{insert}) VALUES ('left out', 'a')"))
        conn.execute(sa.text(f"{insert}, updated_at) VALUES ('null', 'b', NULL)"))
        conn.execute(sa.text(f"{insert}, updated_at) VALUES ('given', 'c', :t)"), {"t": SET})
        inserted = _stamps(conn, table)
        keep = sa.text(f"UPDATE {table} SET updated_at = :t WHERE label = 'left out'")
        conn.execute(keep, {"t": SET})
        conn.execute(sa.text(f"UPDATE {table} SET {column} = 'd' WHERE label = 'given'"))
        updated = _stamps(conn, table)

    assert inserted["left out"] > before and inserted["null"] > before
    assert inserted["given"] == SET
    assert updated["left out"] == SET  # the update set it: kept
    assert updated["given"] > inserted["null"]  # the update left it as it was: stamped
    assert updated["null"] == inserted["null"]


@pytest.mark.parametrize(("table", "column"), MAPPED_TABLES)
def test_updated_at__the_trigger_function_runs_only_when_the_write_leaves_it_to_the_database(
    db, table: str, column: str
) -> None:
    """Writes that set ``updated_at`` themselves, as a pull's inserts and updates do, never call
    the PL/pgSQL function: the triggers' conditions are checked by Postgres itself."""
    with db.begin() as conn:
        conn.execute(sa.text("SET LOCAL track_functions = 'pl'"))

        def calls() -> int:
            return int(
                conn.execute(
                    sa.text(
                        "SELECT coalesce(pg_stat_get_xact_function_calls("
                        "'reconciler.touch_updated_at'::regproc), 0)"
                    )
                ).scalar_one()
            )

        conn.execute(
            sa.text(
                f"INSERT INTO {table} ({column}, updated_at) "
                "SELECT 'row ' || i, :t FROM generate_series(1, 20) AS i"
            ),
            {"t": SET},
        )
        conn.execute(
            sa.text(f"UPDATE {table} SET {column} = 'x', updated_at = updated_at + interval '1 ms'")
        )
        assert calls() == 0
        conn.execute(sa.text(f"UPDATE {table} SET {column} = 'y'"))
        conn.execute(sa.text(f"INSERT INTO {table} ({column}) VALUES ('z')"))
        assert calls() == 20


def test_sync_state__keeps_each_shadow_as_the_text_sent(airtable, db, cli) -> None:
    """The shadow is json, stored as sent and only checked, not parsed into jsonb's form (keys
    sorted, spaces added): a pull writes one for every record it applies."""
    seed_leads(airtable, 1)
    assert cli().exit_code == 0
    with db.connect() as conn:
        kind, text = conn.execute(
            sa.text("SELECT pg_typeof(shadow)::text, shadow::text FROM reconciler.sync_state")
        ).one()
    assert kind == "json"
    assert list(json.loads(text))[:2] == ["first_name", "last_name"]  # field order, not sorted
    assert text.startswith('{"first_name": ')  # the insert's own text, spaces as sent


TRIGGERS = ("leads_touch_inserted", "leads_touch_updated")


def test_updated_at_without_a_time_zone__that_mapping_stops_naming_the_fix(
    airtable, twenty, db, cli
) -> None:
    """A zone-less ``updated_at`` (a common application default) cannot be compared with the
    remotes' times: the mapping stops before anything is read, and the others go on."""
    seed_leads(airtable, 2)
    for trigger in TRIGGERS:  # a column a trigger's WHEN reads cannot change type
        execute(db, f"DROP TRIGGER {trigger} ON leads")
    execute(db, "ALTER TABLE leads ALTER COLUMN updated_at TYPE timestamptz(3)")
    assert cli().exit_code == 0  # any precision will do
    execute(db, "ALTER TABLE leads ALTER COLUMN updated_at TYPE timestamp")

    result = cli()
    checked = cli("check")

    assert result.exit_code == 3, result.output
    (error,) = result.report["errors"]
    assert error["mapping"] == "leads" and error["record"] is None
    assert "leads.updated_at is timestamp without time zone" in error["message"]
    assert "ALTER TABLE leads ALTER COLUMN updated_at TYPE timestamptz" in error["message"]
    assert result.mapping("rep_progressions")["skipped"] is None
    assert checked.exit_code == 2, checked.output
    assert any("leads.updated_at is timestamp" in line for line in checked.stdout.splitlines())


def test_check__a_mapped_table_without_an_update_trigger_is_a_warning(
    airtable, twenty, db, cli
) -> None:
    """Without a trigger, an application's UPDATE that leaves ``updated_at`` alone is never
    pushed: ``check`` says so (it passes: the application may set ``updated_at`` itself)."""
    execute(db, "DROP TRIGGER leads_touch_updated ON leads")

    result = cli("check")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    (line,) = [x for x in lines if "local table leads" in x]
    (other,) = [x for x in lines if "local table rep_progressions" in x]
    assert line.startswith("!") and "no trigger keeps updated_at" in line
    assert other.startswith("✓")
