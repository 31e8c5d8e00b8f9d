"""The tables a pull reads and writes for every record: rows looked up by key through the key's
index, and a page's old sync states found the same way; the mapped tables' ``updated_at``,
stamped by the database when a write does not say and the trigger function called only then;
the sync state's shadow, kept as the text sent; an application's NOT NULL columns, which take
the empty value of their kind or name the fix."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from reconciler.model import LEADS, Direction, FieldSpec, Kind
from reconciler.store.pages import StateRow
from reconciler.store.sync import Store
from reconciler.store.tables import LiveColumn, _unfit_columns
from tests.helpers import (
    ago,
    execute,
    explained,
    rows,
    seed_leads,
    seed_progressions,
    twenty_writes,
)
from tests.hubs import airtable_writes

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


# -- NOT NULL columns -----------------------------------------------------------------------------

BLANK_TEXT = ("phone", "title", "notes", "claimed_by")  # empty in every seeded lead


def _not_null(db: sa.Engine, table: str, columns: Sequence[str], default: str | None) -> None:
    """Columns made NOT NULL, as an application's own schema has them (Django and Rails keep
    empty text as '')."""
    for column in columns:
        if default is not None:
            execute(db, f"UPDATE {table} SET {column} = {default} WHERE {column} IS NULL")
            execute(db, f"ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT {default}")
        execute(db, f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL")


def test_not_null_text_columns__take_empty_text_for_an_empty_value_and_stay_still(
    airtable, db, cli
) -> None:
    """An empty remote value goes into a NOT NULL text column as '' (NULL there failed every
    record), and '' reads back as the same empty value: the next run writes nothing either
    way, and a local edit from '' and back to '' reaches Airtable."""
    _not_null(db, "leads", [*BLANK_TEXT, "company"], "''")
    kept, cleared = seed_leads(airtable, 2)
    airtable.update("Leads", cleared, {"Company": None}, modified_at=ago(4))

    first = cli("--mapping", "leads")

    assert first.exit_code == 0, first.output
    assert first.mapping("leads")["pull"]["inserted"] == 2
    by_id = {r["airtable_record_id"]: r for r in rows(db)}
    assert [by_id[cleared][c] for c in (*BLANK_TEXT, "company")] == ["", "", "", "", ""]
    assert by_id[kept]["company"] == "Acme 0"
    airtable.update("Leads", kept, {"Company": None}, modified_at=ago(1))  # cleared later
    airtable.reset_log()

    second = cli("--mapping", "leads")

    assert second.exit_code == 0, second.output
    assert second.mapping("leads")["pull"]["updated"] == 1
    assert [r["company"] for r in rows(db)] == ["", ""]
    assert airtable_writes(airtable) == 0
    assert cli("--mapping", "leads").mapping("leads")["pull"]["updated"] == 0
    execute(db, "UPDATE leads SET notes = 'Called.' WHERE airtable_record_id = :id", id=kept)
    assert cli("--mapping", "leads").exit_code == 0
    assert airtable.get("Leads", kept)["fields"]["Notes"] == "Called."
    execute(db, "UPDATE leads SET notes = '' WHERE airtable_record_id = :id", id=kept)

    cleared_locally = cli("--mapping", "leads")

    assert cleared_locally.mapping("leads")["push"]["updated"] == 1
    assert "Notes" not in airtable.get("Leads", kept)["fields"]
    assert [r["notes"] for r in rows(db)] == ["", ""]


def test_not_null_json_and_text_columns__take_json_null_and_empty_text_from_twenty(
    twenty, db, cli
) -> None:
    """Twenty's empty values go into NOT NULL columns as JSON's null (a JSON column) and ''
    (text), inserted or updated, and read back as the same empty values: nothing is sent."""
    _not_null(db, "rep_progressions", ["badges", "current_rank"], None)
    inserted, updated = seed_progressions(twenty, 2)
    twenty.update(inserted, {"badges": None, "currentRank": None}, updated_at=ago(4))
    assert cli("--mapping", "rep_progressions").exit_code == 0
    changed = {"badges": None, "currentRank": ""}
    twenty.update(updated, changed, updated_at=ago(1), stored=True)  # "": an older write
    twenty.reset_log()

    result = cli("--mapping", "rep_progressions")

    assert result.exit_code == 0, result.output
    assert result.mapping("rep_progressions")["pull"]["updated"] == 1
    with db.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT badges::text, current_rank FROM rep_progressions ORDER BY id")
        ).all()
    assert [tuple(r) for r in stored] == [("null", ""), ("null", "")]
    assert cli("--mapping", "rep_progressions").exit_code == 0
    assert twenty_writes(twenty) == []


def _one_refused(airtable: Any, db: sa.Engine, cli: Any, fields: dict[str, Any]) -> tuple[str, str]:
    """Three leads pulled, the first with ``fields`` set, which the local table refuses: that
    record fails alone in the pull (exit 1) and the other two go in. Returns the refused
    record's id and its failure's message."""
    refused, *others = seed_leads(airtable, 3)
    airtable.update("Leads", refused, fields, modified_at=ago(4))

    failed = cli("--mapping", "leads")

    assert failed.exit_code == 1, failed.output
    ((stage, record, message),) = [
        (e["stage"], e["record"], e["message"]) for e in failed.report["errors"]
    ]
    assert (stage, record) == ("pull", refused)
    assert sorted(r["airtable_record_id"] for r in rows(db)) == sorted(others)
    return refused, str(message)


def test_not_null_number_column__a_record_without_the_value_fails_alone_and_is_retried(
    airtable, db, cli
) -> None:
    """A NOT NULL column with no empty value of its kind (a number) cannot take a record
    whose field is empty: that record fails alone with the fix named, the others go in, and
    once the column allows NULL the record's retry takes it (the table was at fault, not the
    record: it is not dead-lettered)."""
    _not_null(db, "leads", ["icp_score"], None)

    empty, message = _one_refused(airtable, db, cli, {"ICP Score": None})

    assert message == (
        "database refused the record: ICP Score is empty, and leads.icp_score is NOT NULL: "
        "allow NULL in it (ALTER TABLE leads ALTER COLUMN icp_score DROP NOT NULL) and a "
        "later run takes the record"
    )
    execute(db, "ALTER TABLE leads ALTER COLUMN icp_score DROP NOT NULL")
    execute(db, "UPDATE reconciler.failures SET next_attempt_at = now()")

    retried = cli("--mapping", "leads", "--lookback", "1")  # the edit is out of the window

    assert retried.exit_code == 0, retried.output
    assert retried.mapping("leads")["pull"]["inserted"] == 1
    assert [r["icp_score"] for r in rows(db, where=f"airtable_record_id = '{empty}'")] == [None]


def test_foreign_key__a_record_whose_row_is_not_there_yet_is_retried_not_dead_lettered(
    airtable, db, cli
) -> None:
    """A value a foreign key finds no row for may find one later (an application or another
    mapping brings it): the record fails alone, saying it will be tried again, and its retry
    goes in once the row exists. It was dead-lettered at once, and lost until a full run."""
    execute(db, "CREATE TABLE statuses (name text PRIMARY KEY)")
    execute(db, "ALTER TABLE leads ADD FOREIGN KEY (status) REFERENCES statuses (name)")
    execute(db, "INSERT INTO statuses VALUES ('New')")

    won, message = _one_refused(airtable, db, cli, {"Status": "Won"})

    assert message.startswith("database refused the record: insert or update on table")
    assert message.endswith("; tried again on later runs, once the row it refers to exists")
    execute(db, "INSERT INTO statuses VALUES ('Won')")
    execute(db, "UPDATE reconciler.failures SET next_attempt_at = now()")

    retried = cli("--mapping", "leads", "--lookback", "1")  # the edit is out of the window

    assert retried.exit_code == 0, retried.output
    assert [r["status"] for r in rows(db, where=f"airtable_record_id = '{won}'")] == ["Won"]


def test_check__a_pulled_not_null_column_without_an_empty_value_is_a_warning(
    airtable, twenty, db, cli
) -> None:
    """``check`` names the pulled columns a record with an empty field cannot go into, with
    the statement that fixes them; NOT NULL text, JSON and boolean columns take an empty value
    and are not named."""
    _not_null(db, "leads", ["icp_score", "booked_at"], None)
    _not_null(db, "leads", ["notes", "booked"], None)  # '' and false: empty values
    _not_null(db, "rep_progressions", ["badges"], None)  # JSON's null

    result = cli("check")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    (line,) = [x for x in lines if "local table leads" in x]
    assert line.startswith("!")
    found, hint = line.split(" — hint: ")
    assert found.endswith(
        "; NOT NULL icp_score, booked_at: a record with ICP Score or Booked At empty fails to pull"
    )
    assert hint == (
        "allow NULL: ALTER TABLE leads ALTER COLUMN icp_score DROP NOT NULL, "
        "ALTER COLUMN booked_at DROP NOT NULL"
    )
    assert next(x for x in lines if "local table rep_progressions" in x).startswith("✓")


# -- tables keyed by something other than an integer ----------------------------------------------

PEOPLE = """
CREATE TABLE people (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    airtable_id text UNIQUE,
    first_name text,
    notes text,
    remote_deleted_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TRIGGER people_touch_inserted BEFORE INSERT ON people FOR EACH ROW
    WHEN (NEW.updated_at IS NULL) EXECUTE FUNCTION reconciler.touch_updated_at();
CREATE TRIGGER people_touch_updated BEFORE UPDATE ON people FOR EACH ROW
    WHEN (NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at)
    EXECUTE FUNCTION reconciler.touch_updated_at()
"""

# README, "Mapping configuration": the view that gives such a table an integer id.
PEOPLE_VIEW = """
ALTER TABLE people ADD COLUMN sync_id bigint GENERATED ALWAYS AS IDENTITY UNIQUE;
CREATE VIEW people_sync AS
    SELECT sync_id AS id, airtable_id, first_name, notes, remote_deleted_at, created_at,
           updated_at
    FROM people
"""


def _people(db: sa.Engine, tmp_path: Path, local_table: str, *ddl: str) -> str:
    """The table ``people`` (keyed by a uuid) and a config mapping Airtable's leads to
    ``local_table``; returns the config's path."""
    with db.begin() as conn:
        for script in (PEOPLE, *ddl):
            for statement in script.split(";"):
                conn.exec_driver_sql(statement)
    config = tmp_path / "people.toml"
    config.write_text(
        f"[mappings.people]\nremote = 'airtable'\ntable = 'Leads'\nlocal_table = '{local_table}'\n"
        "key_column = 'airtable_id'\nfields = [{ remote = 'First Name', column = 'first_name' },\n"
        "  { remote = 'Notes', column = 'notes', direction = 'both' }]\n"
    )
    return str(config)


def test_table_keyed_by_a_uuid__its_mapping_stops_naming_the_view_that_maps_it(
    airtable, db, cli, tmp_path
) -> None:
    """The sync state keeps rows by an integer id: a table keyed by a uuid stopped the whole
    run with Postgres' "operator does not exist: bigint = uuid". Now that mapping stops before
    anything is read, naming the fix, and the others go on; ``check`` fails on it."""
    config = _people(db, tmp_path, "people")
    seed_leads(airtable, 2)

    result = cli("--config", config)
    checked = cli("check", "--config", config)

    assert result.exit_code == 3, result.output
    (error,) = result.report["errors"]
    assert (error["mapping"], error["record"]) == ("people", None)
    assert error["message"].startswith(
        "mapping 'people': people.id is uuid, not an integer: the sync state keeps each row "
        "by an integer id. Give the table one (ALTER TABLE people ADD COLUMN sync_id bigint "
        'GENERATED ALWAYS AS IDENTITY UNIQUE) and map a view that names it id (README, "Mapping'
    )
    assert result.mapping("leads")["pull"]["inserted"] == 2
    assert rows(db, "people") == []
    assert checked.exit_code == 2, checked.output
    (line,) = [x for x in checked.stdout.splitlines() if "local table people" in x]
    assert line.startswith("✗") and "people.id is uuid" in line and "migrate" not in line


def test_view_postgres_cannot_write_through__its_mapping_stops_alone(
    airtable, db, cli, tmp_path
) -> None:
    """A view that joins tables takes no INSERT or UPDATE: its first write stopped the whole
    run (the other mappings were "not run"). That mapping now stops alone before anything is
    read, saying which views work; ``check`` fails on it."""
    execute(db, "CREATE TABLE owners (id bigint PRIMARY KEY, name text)")
    execute(
        db,
        "CREATE VIEW lead_owners AS SELECT l.id, l.airtable_record_id, l.first_name, "
        "l.remote_deleted_at, l.created_at, l.updated_at, o.name AS owner "
        "FROM leads l LEFT JOIN owners o ON o.id = l.id",
    )
    config = tmp_path / "owners.toml"
    config.write_text(
        "[mappings.lead_owners]\nremote = 'airtable'\ntable = 'Leads'\n"
        "local_table = 'lead_owners'\nkey_column = 'airtable_record_id'\n"
        "fields = [{ remote = 'First Name', column = 'first_name' }]\n"
    )
    seed_leads(airtable, 2)

    result = cli("--config", str(config), "--mapping", "lead_owners", "--mapping", "leads")
    checked = cli("check", "--config", str(config))

    assert result.exit_code == 3, result.output
    (error,) = result.report["errors"]
    assert error["mapping"] == "lead_owners" and error["message"].startswith(
        "mapping 'lead_owners': Postgres cannot insert into and update lead_owners (a view "
        "that joins or groups tables"
    )
    assert result.mapping("leads")["pull"]["inserted"] == 2
    assert checked.exit_code == 2
    (line,) = [x for x in checked.stdout.splitlines() if "local table lead_owners" in x]
    assert line.startswith("✗")


def test_view_over_a_uuid_keyed_table__syncs_through_it_as_the_readme_shows(
    airtable, db, cli, tmp_path
) -> None:
    """The README's recipe: an integer column and a view naming it ``id``. Pulls insert
    through the view, an application's edit of the table is pushed, and ``check`` finds the
    table's ``updated_at`` triggers behind the view."""
    config = _people(db, tmp_path, "people_sync", PEOPLE_VIEW)
    first, _ = seed_leads(airtable, 2)

    checked = cli("check", "--config", config)
    pulled = cli("--config", config, "--mapping", "people")

    assert checked.exit_code == 0, checked.output
    (line,) = [x for x in checked.stdout.splitlines() if "local table people_sync" in x]
    assert line.startswith("✓"), line
    assert pulled.exit_code == 0, pulled.output
    assert pulled.mapping("people")["pull"]["inserted"] == 2
    assert all(r["id"] is not None for r in rows(db, "people"))
    execute(db, "UPDATE people SET notes = 'Called.' WHERE airtable_id = :id", id=first)

    pushed = cli("--config", config, "--mapping", "people")

    assert pushed.exit_code == 0, pushed.output
    assert pushed.mapping("people")["push"]["updated"] == 1
    assert airtable.get("Leads", first)["fields"]["Notes"] == "Called."
    airtable.reset_log()
    assert cli("--config", config, "--mapping", "people").exit_code == 0
    assert airtable_writes(airtable) == 0


# -- column types -------------------------------------------------------------------------------


def test_pushed_json_in_a_text_column__the_mapping_stops_before_it_rewrites_the_record(
    twenty, db, cli
) -> None:
    """JSON kept in a text column reads back as a string: the second run pushed
    '"[\\"starter\\"]"' over the record's '["starter"]', with no edit on either side. A pushed
    field whose column's type cannot hold its kind now stops its mapping before anything is
    read, naming the statement that converts the column; once converted, the runs are quiet."""
    execute(db, "ALTER TABLE rep_progressions ALTER COLUMN badges TYPE text USING badges::text")
    (rid,) = seed_progressions(twenty, 1)

    stopped = cli("--mapping", "rep_progressions")
    checked = cli("check")

    assert stopped.exit_code == 3, stopped.output
    (error,) = stopped.report["errors"]
    assert error["record"] is None
    assert (
        "badges is text, which cannot hold json (ALTER TABLE rep_progressions ALTER COLUMN "
        "badges TYPE jsonb USING badges::jsonb); or change the field's `kind`" in error["message"]
    )
    assert rows(db, "rep_progressions") == [] and twenty_writes(twenty) == []
    assert checked.exit_code == 2
    (line,) = [x for x in checked.stdout.splitlines() if "local table rep_progressions" in x]
    assert line.startswith("✗") and "badges is text, which cannot hold json" in line
    execute(db, "ALTER TABLE rep_progressions ALTER COLUMN badges TYPE jsonb USING badges::jsonb")

    for _ in range(2):
        assert cli("--mapping", "rep_progressions").exit_code == 0
    assert twenty_writes(twenty) == []
    assert (twenty.get(rid) or {})["badges"] == '["starter"]'


def test_pulled_only_json_in_a_text_column__is_kept_as_its_text(twenty, db, cli, tmp_path) -> None:
    """A field that is only pulled is never read back to be sent: JSON in a text column is
    its text, and the mapping runs."""
    execute(db, "ALTER TABLE rep_progressions ALTER COLUMN badges TYPE text USING badges::text")
    config = tmp_path / "pulled.toml"
    config.write_text(
        "[mappings.rep_progressions]\nfields = [{ remote = 'name', column = 'name' },\n"
        "  { remote = 'badges', column = 'badges', kind = 'json', json_as_text = true, "
        "direction = 'pull' }]\n"
    )
    seed_progressions(twenty, 1)

    result = cli("--config", str(config), "--mapping", "rep_progressions")

    assert result.exit_code == 0, result.output
    assert [r["badges"] for r in rows(db, "rep_progressions")] == ['["starter"]']


@pytest.mark.parametrize(
    ("kind", "column_type", "fits"),
    [
        (Kind.TEXT, "text", True),
        (Kind.TEXT, "character varying(40)", True),
        (Kind.TEXT, "public.citext", True),
        (Kind.TEXT, "integer", True),  # a number reads back as its text
        (Kind.TEXT, "character(10)", False),  # padded with spaces
        (Kind.TEXT, "lead_status", True),  # an enum: taken on trust
        (Kind.TEXT, "jsonb", False),
        (Kind.TEXT, "uuid", True),  # read back as its text
        (Kind.NUMBER, "numeric(12,2)", True),
        (Kind.NUMBER, "double precision", True),
        (Kind.NUMBER, "text", False),
        (Kind.INTEGER, "bigint", True),
        (Kind.BOOLEAN, "boolean", True),
        (Kind.BOOLEAN, "text", False),
        (Kind.DATETIME, "timestamp(3) with time zone", True),
        (Kind.DATETIME, "timestamp without time zone", True),
        (Kind.DATETIME, "date", False),
        (Kind.DATE, "date", True),
        (Kind.DATE, "timestamp with time zone", False),
        (Kind.JSON, "jsonb", True),
        (Kind.JSON, "json", True),
        (Kind.JSON, "text", False),
        (Kind.JSON, "text[]", True),  # an array type: taken on trust
    ],
)
def test_column_types__a_pushed_kind_and_the_types_that_hold_it(
    kind: Kind, column_type: str, fits: bool
) -> None:
    pushed = FieldSpec("f", "f", kind, Direction.BOTH)
    pulled = FieldSpec("f", "f", kind, Direction.PULL)
    live = {"f": LiveColumn(column_type, False), LEADS.key_column: LiveColumn("text", False)}

    assert (_unfit_columns(replace(LEADS, fields=(pushed,)), live) == []) is fits
    assert _unfit_columns(replace(LEADS, fields=(pulled,)), live) == []


def test_generated_column__may_be_pushed_but_not_pulled(airtable, db, cli, tmp_path) -> None:
    """Only the database writes a generated column: mapped as pulled, every record failed on
    it ('cannot insert a non-DEFAULT value'); the mapping now stops, naming the fix. Pushed, it
    is the application's value sent out."""
    execute(
        db,
        "ALTER TABLE leads ADD COLUMN full_name text "
        "GENERATED ALWAYS AS (first_name || ' ' || last_name) STORED",
    )
    airtable.add_field("Leads", "Full Name", "singleLineText")
    (lead,) = seed_leads(airtable, 1)
    config = tmp_path / "generated.toml"

    def mapped(direction: str) -> str:
        config.write_text(
            "[mappings.leads]\nfields = [{ remote = 'Full Name', column = 'full_name', "
            f"direction = '{direction}' }}]\n"
        )
        return str(config)

    stopped = cli("--config", mapped("both"), "--mapping", "leads")

    assert stopped.exit_code == 3, stopped.output
    (error,) = stopped.report["errors"]
    assert error["message"].startswith(
        "mapping 'leads': full_name in leads only the database writes (GENERATED ALWAYS), so a "
        'pull cannot: give that field direction = "push"'
    )
    assert rows(db) == []
    assert cli("--mapping", "leads").exit_code == 0  # the built-in fields bring the lead in

    pushed = cli("--config", mapped("push"), "--mapping", "leads")

    assert pushed.exit_code == 0, pushed.output
    assert (airtable.get("Leads", lead) or {})["fields"]["Full Name"] == "Ann0 Lee0"


def test_search_path__a_table_of_another_schema_syncs_beside_the_built_in_ones(
    airtable, db, cli, tmp_path, monkeypatch
) -> None:
    """A table in another schema is reached through the connection's search path, as the
    config's error for ``crm.people`` says. Tables were looked up in the first schema of the
    path alone: the built-in ``leads`` in public was then "missing". They are found as an
    unqualified name is, and the view's triggers behind it too."""
    with db.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA crm")
        conn.exec_driver_sql("SET search_path = crm, public")
        for script in (PEOPLE, PEOPLE_VIEW):
            for statement in script.split(";"):
                conn.exec_driver_sql(statement)
    url = os.environ["DATABASE_URL"]
    joiner = "&" if "?" in url else "?"
    monkeypatch.setenv("DATABASE_URL", f"{url}{joiner}options=-csearch_path%3Dcrm,public")
    config = tmp_path / "people.toml"
    config.write_text(
        "[mappings.people]\nremote = 'airtable'\ntable = 'Leads'\nlocal_table = 'people_sync'\n"
        "key_column = 'airtable_id'\nfields = [{ remote = 'First Name', column = 'first_name' }]\n"
    )
    seed_leads(airtable, 2)

    checked = cli("check", "--config", str(config))
    result = cli("--config", str(config), "--mapping", "leads", "--mapping", "people")

    assert checked.exit_code == 0, checked.output
    assert [x[0] for x in checked.stdout.splitlines() if "local table" in x] == ["✓"] * 3
    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["pull"]["inserted"] == 2
    assert result.mapping("people")["pull"]["inserted"] == 2
    assert len(rows(db, "crm.people")) == 2 and len(rows(db, "public.leads")) == 2


@pytest.mark.parametrize(
    ("remote", "key_type", "fits"),
    [
        ("airtable", "text", True),
        ("airtable", "character varying(17)", True),
        ("airtable", "uuid", False),
        ("airtable", "bigint", False),
        ("twenty", "uuid", True),
        ("twenty", "text", True),
        ("twenty", "integer", False),
    ],
)
def test_column_types__the_key_column_must_hold_the_remotes_ids(
    remote: str, key_type: str, fits: bool
) -> None:
    mapping = replace(LEADS, remote=remote, fields=())
    live = {LEADS.key_column: LiveColumn(key_type, not_null=False)}

    unfit = _unfit_columns(mapping, live)

    assert (unfit == []) is fits
    if not fits:
        (found,) = unfit
        assert found.startswith(f"airtable_record_id is {key_type}, which cannot hold ")
        assert found.endswith(
            "(ALTER TABLE leads ALTER COLUMN airtable_record_id TYPE text USING "
            "airtable_record_id::text)"
        )


def test_uuid_column__holds_a_text_field_that_goes_both_ways(airtable, db, cli, tmp_path) -> None:
    """A text field kept in a ``uuid`` column reads back as a UUID object: each row failed to
    be read ("expected text, got UUID") on every run. It is its text now: pulled, quiet on the
    next run, and a local change is pushed."""
    execute(db, "ALTER TABLE leads ADD COLUMN owner uuid")
    airtable.add_field("Leads", "Owner", "singleLineText")
    (lead,) = seed_leads(airtable, 1)
    first, second = "0b6f8d7e-4c1a-4f2e-9a51-3c2d1e0f9a8b", "5e0c7a44-1b2d-4e3f-8a9b-0c1d2e3f4a5b"
    airtable.update("Leads", lead, {"Owner": first}, modified_at=ago(4))
    config = tmp_path / "owner.toml"
    config.write_text(
        "[mappings.leads]\nfields = [{ remote = 'Owner', column = 'owner', direction = 'both' }]\n"
    )
    run = ("--config", str(config), "--mapping", "leads")
    assert cli(*run).exit_code == 0
    airtable.reset_log()

    quiet = cli(*run)

    assert quiet.exit_code == 0, quiet.output
    assert airtable_writes(airtable) == 0
    assert [str(r["owner"]) for r in rows(db)] == [first]
    execute(db, "UPDATE leads SET owner = :o", o=second)

    pushed = cli(*run)

    assert pushed.exit_code == 0, pushed.output
    assert (airtable.get("Leads", lead) or {})["fields"]["Owner"] == second


# -- an application's triggers that refuse rows ---------------------------------------------------


def _refusing(name: str, table: str, events: str, condition: str, message: str) -> str:
    """An application's trigger that raises ``message`` for the rows ``condition`` holds."""
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF {condition} THEN RAISE EXCEPTION '{message}'; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER {name} BEFORE {events} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()
"""


REFUSE_LOST = _refusing(
    "refuse_lost", "leads", "INSERT OR UPDATE", "NEW.status = 'Lost'", "lost leads are not kept"
)
FREEZE_BAD = _refusing(
    "freeze_bad", "rep_progressions", "UPDATE", "NEW.name = 'Bad'", "bad reps are frozen"
)


def _run_sql(db: sa.Engine, script: str) -> None:
    with db.begin() as conn:
        conn.exec_driver_sql(script)


def test_trigger_raising_for_a_pulled_record__that_record_fails_alone(airtable, db, cli) -> None:
    """An application's trigger that raises for some rows (``RAISE EXCEPTION``) stopped the
    whole run (exit 3, nothing applied, the same again every run). The record it refuses now
    fails alone with the trigger's message; the others go in."""
    _run_sql(db, REFUSE_LOST)

    _, message = _one_refused(airtable, db, cli, {"Status": "Lost"})

    assert message.endswith("database refused the record: lost leads are not kept")


def test_trigger_refusing_a_link__the_row_fails_alone_and_nothing_is_made_twice(
    twenty, db, cli
) -> None:
    """A trigger that refuses every update of a row also refuses recording the remote id of
    the record created for it: that stopped every run (exit 3), so no other row was linked
    either. Now that row fails alone, once a run: the record created for it is neither
    created again nor brought in as a second row, and once the trigger is gone a run links
    them."""
    execute(
        db,
        "INSERT INTO rep_progressions (name, workspace_member_id) "
        "VALUES ('Bad', 'wm-bad'), ('Good', 'wm-good')",
    )
    _run_sql(db, FREEZE_BAD)

    first = cli("--mapping", "rep_progressions")

    assert first.exit_code == 1, first.output
    ((stage, key, message),) = [
        (e["stage"], e["record"], e["message"]) for e in first.report["errors"]
    ]
    (created,) = [r["id"] for r in twenty.records() if r["name"] == "Bad"]
    assert (stage, key) == ("push", "rep_progressions:1")
    assert message == (
        f"created as {created}, but the database refused to record its id in the row: bad reps "
        "are frozen; a later run links them"
    )
    assert [(r["name"], r["twenty_id"] is None) for r in rows(db, "rep_progressions")] == [
        ("Bad", True),
        ("Good", False),
    ]
    twenty.reset_log()

    second = cli("--mapping", "rep_progressions")

    assert second.exit_code == 1, second.output
    assert [(e["stage"], e["record"], e["message"]) for e in second.report["errors"]] == [
        ("pull", created, "the database refused to link row 1 to it: bad reps are frozen")
    ]
    assert twenty_writes(twenty) == [] and len(twenty.records()) == 2
    assert len(rows(db, "rep_progressions")) == 2
    execute(db, "DROP TRIGGER freeze_bad ON rep_progressions")
    execute(db, "UPDATE reconciler.failures SET next_attempt_at = now()")

    third = cli("--mapping", "rep_progressions")

    assert third.exit_code == 0, third.output
    assert [str(r["twenty_id"]) for r in rows(db, "rep_progressions", "name = 'Bad'")] == [created]
    assert len(twenty.records()) == 2
