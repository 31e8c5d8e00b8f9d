"""The change log: every applied or refused change is traceable with `reconcile log`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from reconciler.cli.log import log_table
from reconciler.engine.context import MappingContext, Tuning
from reconciler.model import LEADS
from reconciler.records import FieldChange
from reconciler.report import MappingResult
from reconciler.store.changelog import ChangeLog, _fields, clip
from reconciler.store.history import Failure
from reconciler.store.log_reader import LogFilter, purge_expired, read_log
from reconciler.store.schema import SCHEMA, metadata
from reconciler.store.sql import COPY_LINES, COPY_NULL, copy_lines, copy_text
from reconciler.store.sync import Store
from tests.helpers import ago, execute, explained, seed_leads, seed_progressions

M = "rep_progressions"


def log(cli: Any, *args: str) -> list[dict[str, Any]]:
    """The change log entries `reconcile log --json` prints for these filters."""
    result = cli("log", "--json", *args)
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout))


def trail(entries: list[dict[str, Any]]) -> list[tuple[str, str, str, bool]]:
    """(stage, action, rule, conflict) of each entry, as listed."""
    return [(e["stage"], e["action"], e["rule"], e["conflict"]) for e in entries]


def count_entries(db: sa.Engine) -> int:
    with db.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {SCHEMA}.change_log")).scalar_one())


def add_old_entries(db: sa.Engine, days_ago: int, count: int) -> None:
    """Entries logged ``days_ago`` days ago, written directly."""
    execute(
        db,
        f"INSERT INTO {SCHEMA}.change_log (logged_at, run_id, mapping, stage, action, rule) "
        "SELECT now() - make_interval(days => :d), 'old-run', 'leads', 'pull', 'updated', "
        "'remote_only' FROM generate_series(1, :n)",
        d=days_ago,
        n=count,
    )


def fail_in_units(db: sa.Engine, journal: ChangeLog, item: Failure, *, times: int) -> None:
    """Record ``item`` as failed ``times`` times, each in a unit of its own, through the
    ``leads`` mapping context of a run of its own (a record fails once a run), which
    dead-letters at the second attempt."""
    with db.connect() as conn:
        store = Store(conn)
        for _ in range(times):
            ctx = MappingContext(LEADS, None, store, MappingResult("leads", "airtable"), [])  # type: ignore[arg-type]
            ctx.tuning, ctx.journal = Tuning(max_attempts=2), journal
            with store.unit():
                ctx.fail([item])


# -- what gets recorded -------------------------------------------------------------------------


def test_log__traces_a_lead_through_insert_remote_edit_and_push(airtable, db, cli) -> None:
    (rid,) = seed_leads(airtable, 1)
    first = cli()
    airtable.update("Leads", rid, {"Status": "Qualified"})
    second = cli()
    execute(db, "UPDATE leads SET notes = 'called'")
    third = cli()
    assert third.exit_code == 0, third.output
    entries = log(cli, "--remote-id", rid)
    assert [e["run_id"] for e in entries] == [
        third.report["run_id"],
        second.report["run_id"],
        first.report["run_id"],
    ]
    assert trail(entries) == [
        ("push", "updated", "local_only", False),
        ("pull", "updated", "remote_only", False),
        ("pull", "inserted", "new_record", False),
    ]
    push, update, insert = entries
    assert push["changes"] == [
        {"field": "notes", "old": None, "new": "called", "rule": "local_only"}
    ]
    assert update["changes"] == [
        {"field": "status", "old": "New", "new": "Qualified", "rule": "remote_only"}
    ]
    created = {c["field"]: c["new"] for c in insert["changes"]}
    assert created["first_name"] == "Ann0" and created["icp_score"] == 50.5
    assert "notes" not in created  # nothing -> nothing is no change
    assert {e["local_key"] for e in entries} == {"leads:1"}
    assert {e["mapping"] for e in entries} == {"leads"}
    assert log(cli, "--local-key", "1") == entries == log(cli, "--local-key", "leads:1")


def test_log__conflict_won_locally_is_recorded_then_pushed(airtable, db, cli) -> None:
    (rid,) = seed_leads(airtable, 1)
    cli()
    airtable.update("Leads", rid, {"Notes": "remote note"}, modified_at=ago(3))
    execute(db, "UPDATE leads SET notes = 'local note'")
    result = cli()
    assert result.exit_code == 0, result.output
    entries = log(cli, "--run", result.report["run_id"])
    assert trail(entries) == [
        ("push", "updated", "local_only", False),
        ("pull", "skipped_local_newer", "local_newer", True),
    ]
    note = {"field": "notes", "old": "remote note", "new": "local note"}
    assert entries[1]["changes"] == [note | {"rule": "local_newer"}]
    assert entries[0]["changes"] == [note | {"rule": "local_only"}]


def test_log__conflict_won_remotely_is_recorded_and_nothing_pushed(airtable, db, cli) -> None:
    (rid,) = seed_leads(airtable, 1)
    cli()
    execute(db, "UPDATE leads SET notes = 'local note', updated_at = now() - interval '3 min'")
    airtable.update("Leads", rid, {"Notes": "remote note"})
    result = cli()
    assert result.exit_code == 0, result.output
    (entry,) = log(cli, "--run", result.report["run_id"])
    assert trail([entry]) == [("pull", "updated", "remote_newer", True)]
    assert entry["changes"] == [
        {"field": "notes", "old": "local note", "new": "remote note", "rule": "remote_newer"}
    ]


def test_log__push_skipped_because_remote_is_newer_lists_what_was_held_back(
    airtable, db, cli
) -> None:
    (rid,) = seed_leads(airtable, 1)
    cli()
    execute(db, "UPDATE leads SET notes = 'local', updated_at = now() - interval '2 min'")
    airtable.update("Leads", rid, {"Notes": "remote"})
    result = cli("--stage", "push")
    assert result.exit_code == 0, result.output
    (entry,) = log(cli, "--run", result.report["run_id"])
    assert trail([entry]) == [("push", "skipped_remote_newer", "skipped_remote_newer", True)]
    assert [(c["field"], c["old"], c["new"]) for c in entry["changes"]] == [
        ("notes", None, "local")
    ]


def test_log__bad_remote_record_is_dead_lettered_with_its_reason(airtable, db, cli) -> None:
    seed_leads(airtable, 2)
    bad = airtable.create("Leads", {"First Name": "Bad", "ICP Score": "high"}, validate=False)
    result = cli()
    assert result.exit_code == 1, result.output
    (entry,) = log(cli, "--remote-id", bad["id"])
    assert trail([entry]) == [("pull", "dead_letter", "dead_letter", False)]
    assert "ICP Score" in entry["message"] and entry["local_key"] is None
    assert result.report["change_log"] == {"written": 3, "removed": 0}


def test_log__rejected_push_is_recorded_for_that_row(airtable, db, cli) -> None:
    (rid,) = seed_leads(airtable, 1)
    cli()
    execute(db, "UPDATE leads SET notes = 'refused'")
    airtable.faults.fail(422, times=1, method="PATCH")
    result = cli()
    assert result.exit_code == 1, result.output
    (entry,) = log(cli, "--run", result.report["run_id"])
    assert trail([entry]) == [("push", "dead_letter", "dead_letter", False)]
    assert (entry["remote_id"], entry["local_key"]) == (rid, "leads:1")
    assert "422" in entry["message"]


def test_log__retryable_failure_is_failed_until_dead_lettered(db) -> None:
    journal = ChangeLog("run-direct")
    item = Failure("push", "leads:7", "timeout", local_id=7, remote_id="recAAAAAAAAAAAAAA")
    fail_in_units(db, journal, item, times=2)
    with db.connect() as conn:
        rows = conn.execute(
            sa.text(f"SELECT action, message, local_id FROM {SCHEMA}.change_log ORDER BY id")
        ).all()
    assert [tuple(r) for r in rows] == [("failed", "timeout", 7), ("dead_letter", "timeout", 7)]
    assert journal.written == 2


# Characters COPY's text format gives a meaning to (tab, newline, carriage return, backslash,
# and \N, \. as whole values), with quotes and text beyond ASCII.
AWKWARD = 'a\tb\nc\r\nd \\ e "q" \u00e9 \U0001f642'


def test_log__values_with_copy_format_characters_are_kept_exactly(airtable, db, cli) -> None:
    """Entries are written as lines of COPY text: a value holding a tab, a newline or a
    backslash must come back as it went in, in an insert's entry and in an update's."""
    rid = airtable.create("Leads", {"First Name": "\\N", "Notes": AWKWARD})["id"]
    assert cli().exit_code == 0
    airtable.update("Leads", rid, {"Notes": AWKWARD[::-1], "Last Name": "\\."})
    assert cli().exit_code == 0
    updated, inserted = log(cli, "--remote-id", rid)
    values = {c["field"]: c["new"] for c in inserted["changes"]}
    assert (values["first_name"], values["notes"]) == ("\\N", AWKWARD)
    changes = {c["field"]: (c["old"], c["new"]) for c in updated["changes"]}
    assert changes["notes"] == (AWKWARD, AWKWARD[::-1])
    assert changes["last_name"] == (None, "\\.")


def test_log__a_failure_message_with_copy_format_characters_is_kept_exactly(db) -> None:
    journal = ChangeLog("run\tdirect")
    item = Failure("push", "leads:7", AWKWARD, local_id=7, remote_id="rec\\odd\tid")
    fail_in_units(db, journal, item, times=1)
    with db.connect() as conn:
        row = conn.execute(
            sa.text(f"SELECT run_id, remote_id, message, local_id FROM {SCHEMA}.change_log")
        ).one()
    assert tuple(row) == ("run\tdirect", "rec\\odd\tid", AWKWARD, 7)


# Any text Postgres can hold: no NUL, no lone surrogate (test_copy_lines__a_lone_surrogate_…).
STORABLE = st.characters(exclude_characters="\x00", exclude_categories=["Cs"])


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(STORABLE), min_size=1, max_size=5))
def test_copy_text__any_text_comes_back_from_a_copy_as_it_went_in(db, texts: list[str]) -> None:
    probe = sa.Table(
        "copy_probe", sa.MetaData(), sa.Column("n", sa.Integer), sa.Column("t", sa.Text)
    )
    lines = [f"{n}\t{copy_text(text)}\n" for n, text in enumerate(texts)]
    lines.append(f"{len(texts)}\t{COPY_NULL}\n")
    with db.connect() as conn:
        conn.execute(sa.text("CREATE TEMP TABLE copy_probe (n integer, t text)"))
        copy_lines(conn, probe, ["n", "t"], lines)
        stored = conn.execute(sa.text("SELECT t FROM copy_probe ORDER BY n")).scalars().all()
        conn.rollback()
    assert stored == [*texts, None]


def test_copy_lines__a_lone_surrogate_is_refused_as_bad_data(db) -> None:
    """Refused as the server refuses a value (``DataError``, which fails its row alone), and
    the unit goes on after its savepoint."""
    probe = sa.Table("copy_probe", sa.MetaData(), sa.Column("t", sa.Text))
    with db.connect() as conn:
        conn.execute(sa.text("CREATE TEMP TABLE copy_probe (t text)"))
        refused = pytest.raises(sa.exc.DataError, match=r"lone surrogate \('\\udc00'\)")
        with refused, conn.begin_nested():
            copy_lines(conn, probe, ["t"], [copy_text("a \udc00 b") + "\n"])
        copy_lines(conn, probe, ["t"], ["fine\n"])
        assert conn.execute(sa.text("SELECT t FROM copy_probe")).scalars().all() == ["fine"]
        conn.rollback()


def test_copy_lines__sends_lines_in_chunks_in_order_and_nothing_without_lines(
    db, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = sa.Table("copy_probe", sa.MetaData(), sa.Column("n", sa.Integer))
    count = COPY_LINES * 2 + 7  # two whole chunks and a part
    sent: list[int] = []  # the lines in each write to the COPY
    write = psycopg.Copy.write

    def counted(copy: psycopg.Copy, data: Any) -> None:
        sent.append(str(data).count("\n"))
        write(copy, data)

    monkeypatch.setattr(psycopg.Copy, "write", counted)
    with db.connect() as conn:
        # The serial numbers the rows in the order the server received them.
        conn.execute(sa.text("CREATE TEMP TABLE copy_probe (received serial, n integer)"))
        assert copy_lines(conn, probe, ["n"], (f"{n}\n" for n in range(count))) == count
        assert copy_lines(conn, probe, ["n"], iter([])) == 0
        query = "SELECT n FROM copy_probe ORDER BY received"
        stored = conn.execute(sa.text(query)).scalars().all()
        conn.rollback()
    assert stored == list(range(count))
    assert sent == [COPY_LINES, COPY_LINES, 7]


def test_log__new_local_row_pushed_to_twenty_gets_its_new_id(twenty, db, cli) -> None:
    execute(db, "INSERT INTO rep_progressions (name, total_xp) VALUES ('Fresh', 5)")
    result = cli("--mapping", M)
    assert result.exit_code == 0, result.output
    (entry,) = log(cli, "--local-key", "rep_progressions:1")
    twenty_id = sa.text("SELECT twenty_id::text FROM rep_progressions WHERE id = 1")
    with db.connect() as conn:
        assert entry["remote_id"] == conn.execute(twenty_id).scalar_one()
    assert trail([entry]) == [("push", "created", "local_only", False)]
    assert {c["field"]: c["new"] for c in entry["changes"]} == {"name": "Fresh", "total_xp": 5}


def test_log__array_conflict_records_the_union(twenty, db, cli) -> None:
    (rid,) = seed_progressions(twenty, 1)
    cli("--mapping", M)
    execute(db, 'UPDATE rep_progressions SET completed_modules = \'["m1", "m2", "local"]\'')
    twenty.update(rid, {"completedModules": '["m1", "m2", "remote"]'})
    result = cli("--mapping", M)
    assert result.exit_code == 0, result.output
    pull = next(e for e in log(cli, "--run", result.report["run_id"]) if e["stage"] == "pull")
    assert (pull["rule"], pull["conflict"]) == ("union", True)
    (change,) = pull["changes"]
    assert change["field"] == "completed_modules" and sorted(change["new"]) == [
        "local",
        "m1",
        "m2",
        "remote",
    ]


def test_log__unchanged_records_leave_no_entry(airtable, db, cli) -> None:
    seed_leads(airtable, 3)
    assert cli().report["change_log"]["written"] == 3
    again = cli()
    assert again.report["change_log"] == {"written": 0, "removed": 0}
    assert log(cli, "--run", again.report["run_id"]) == []


def test_log__long_text_is_cut_with_a_marker(airtable, db, cli) -> None:
    seed_leads(airtable, 1)
    cli()
    execute(db, "UPDATE leads SET notes = repeat('x', 2500)")
    result = cli()
    (entry,) = log(cli, "--run", result.report["run_id"])
    assert entry["changes"][0]["new"] == "x" * 2000 + "…[truncated 500 chars]"


def test_log__never_holds_a_secret(airtable, db, cli) -> None:
    seed_leads(airtable, 2)
    cli()
    with db.connect() as conn:
        dump = conn.execute(sa.text(f"SELECT json_agg(c)::text FROM {SCHEMA}.change_log c"))
        assert airtable.token not in dump.scalar_one()


def test_dry_run__records_nothing(airtable, db, cli) -> None:
    seed_leads(airtable, 4)
    add_old_entries(db, 100, 2)
    result = cli("--dry-run")
    assert result.exit_code == 0, result.output
    assert result.report["change_log"] == {"written": 4, "removed": 2}  # what a run would do
    assert count_entries(db) == 2


# -- reading it ---------------------------------------------------------------------------------


def test_log_filters__narrow_by_mapping_run_time_and_limit(airtable, db, cli) -> None:
    ids = seed_leads(airtable, 3)
    first = cli()
    airtable.update("Leads", ids[0], {"Status": "Hot"})
    second = cli()
    everything = log(cli)
    assert len(everything) == 4 and everything[0]["run_id"] == second.report["run_id"]
    assert len(log(cli, "--run", first.report["run_id"])) == 3
    assert log(cli, "--mapping", "leads") == everything
    assert log(cli, "--mapping", M) == []
    assert log(cli, "--limit", "2") == everything[:2]
    assert log(cli, "--limit", str(2**64)) == everything  # past bigint: all, not an error
    latest = everything[0]["logged_at"]
    assert log(cli, "--since", latest) == everything[:1]
    assert log(cli, "--until", everything[1]["logged_at"]) == everything[1:]
    assert log(cli, "--local-key", f"{M}:1") == []


def test_log__prints_readable_lines_and_a_table_on_a_terminal(airtable, db, cli) -> None:
    (rid,) = seed_leads(airtable, 1)
    cli()
    airtable.update("Leads", rid, {"Status": "Hot"})
    cli()
    result = cli("log", "--remote-id", rid)
    assert result.exit_code == 0, result.output
    head, field = result.stdout.splitlines()[:2]
    assert head.endswith(f"leads  pull  updated  remote_only  {rid} leads:1")
    assert field == '    status: "New" → "Hot"'
    console = Console(record=True, width=200, force_terminal=True)
    console.print(log_table(log(cli, "--remote-id", rid)))
    table = console.export_text()
    for text in ("remote_only", "new_record", '"New" → "Hot"', "leads:1", rid):
        assert text in table


@pytest.mark.parametrize(
    "args",
    [
        ["--since", "yesterday"],
        ["--until", "2026-13-01"],
        ["--local-key", "leads:x"],
        ["--local-key", "99999999999999999999999"],
        ["--local-key", "leads:"],
        ["--local-key", ":5"],
        ["--local-key", "a:b:c"],
        ["--limit", "0"],
    ],
)
def test_log__bad_filter_exits_2(db, cli, args: list[str]) -> None:
    result = cli("log", *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1 and args[0] in result.stderr


# -- retention ----------------------------------------------------------------------------------


def test_retention__a_run_removes_entries_older_than_90_days(airtable, db, cli) -> None:
    add_old_entries(db, 100, 3)
    add_old_entries(db, 10, 1)
    result = cli()
    assert result.exit_code == 0, result.output
    assert result.report["change_log"] == {"written": 0, "removed": 3}
    assert count_entries(db) == 1


def test_retention__follows_the_setting(airtable, db, cli, monkeypatch) -> None:
    add_old_entries(db, 10, 2)
    monkeypatch.setenv("RECONCILER_LOG_RETENTION_DAYS", "7")
    assert cli().report["change_log"]["removed"] == 2
    monkeypatch.setenv("RECONCILER_LOG_RETENTION_DAYS", "abc")
    assert cli().exit_code == 2


def test_retention__is_bounded_per_run(db) -> None:
    add_old_entries(db, 100, 5)
    with db.connect() as conn:
        store = Store(conn)
        assert purge_expired(store, timedelta(days=90), batch=2, max_batches=2) == 4
        assert purge_expired(store, timedelta(days=90), batch=2, max_batches=2) == 1
    assert count_entries(db) == 0


# -- schema -------------------------------------------------------------------------------------


def test_migrations__the_migrated_database_matches_the_models(db) -> None:
    with db.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_schemas": True, "version_table_schema": SCHEMA}
        )
        assert compare_metadata(context, metadata) == []
    assert f"{SCHEMA}.change_log" in metadata.tables


def _plan(db: sa.Engine, where: LogFilter) -> tuple[list[dict[str, Any]], str]:
    """What ``reconcile log`` finds for ``where``, and the plan Postgres chose for it."""
    return explained(db, lambda conn: read_log(conn, where))


def _index_kind(db: sa.Engine, name: str) -> str:
    with db.connect() as conn:
        return str(
            conn.execute(
                sa.text(
                    "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam "
                    "WHERE c.relname = :name"
                ),
                {"name": name},
            ).scalar_one()
        )


def test_log__a_record_is_looked_up_by_its_hash_index(db) -> None:
    """``reconcile log --remote-id ID`` finds a record's entries by the remote id index, a hash
    index (one hash per entry written, where a btree compares text in the collation)."""
    execute(
        db,
        f"INSERT INTO {SCHEMA}.change_log (run_id, mapping, stage, action, rule, remote_id) "
        "SELECT 'r', 'leads', 'pull', 'updated', 'remote_only', 'rec' || md5(i::text) "
        "FROM generate_series(1, 5000) AS i",
    )
    execute(db, f"ANALYZE {SCHEMA}.change_log")
    found, plan = _plan(db, LogFilter(remote_id="rec" + "0" * 32))
    assert found == []
    assert _index_kind(db, "change_log_remote_id") == "hash"
    assert "Index Scan using change_log_remote_id" in plan, plan


def test_log__runs_and_times_are_found_by_one_brin_index(db) -> None:
    """Entries are appended in time order and run ids sort by their run's start, so one BRIN
    index over both serves ``--run`` and ``--since``/``--until`` without a btree written per
    entry; the entries come newest first, in the order they were written."""
    execute(
        db,
        f"INSERT INTO {SCHEMA}.change_log (logged_at, run_id, mapping, stage, action, rule, "
        "local_id) SELECT timestamptz '2026-01-01' + make_interval(secs => i), "
        "'2026' || lpad((i / 100)::text, 6, '0') || 'Z-abc', 'leads', 'pull', 'updated', "
        "'remote_only', i FROM generate_series(1, 100000) AS i",
    )
    execute(db, f"ANALYZE {SCHEMA}.change_log")
    assert _index_kind(db, "change_log_time_run") == "brin"

    found, plan = _plan(db, LogFilter(run_id="2026000123Z-abc", limit=500))
    assert [e["local_id"] for e in found] == list(range(12399, 12299, -1))
    assert "Bitmap Index Scan on change_log_time_run" in plan, plan

    since = datetime(2026, 1, 1, 3, tzinfo=UTC)
    found, plan = _plan(db, LogFilter(since=since, until=since + timedelta(seconds=9)))
    assert [e["local_id"] for e in found] == list(range(10809, 10799, -1))
    assert "Bitmap Index Scan on change_log_time_run" in plan, plan


def test_log__long_text_of_an_inserted_record_is_cut_and_marked(airtable, db, cli) -> None:
    airtable.create("Leads", {"First Name": "Long", "Notes": "n" * 2500})
    assert cli().exit_code == 0
    (entry,) = log(cli, "--mapping", "leads")
    notes = next(c["new"] for c in entry["changes"] if c["field"] == "notes")
    assert notes == "n" * 2000 + "…[truncated 500 chars]"
    first = next(c for c in entry["changes"] if c["field"] == "first_name")
    assert first == {"field": "first_name", "old": None, "new": "Long", "rule": "new_record"}


def test_log__an_inserted_record_is_stored_as_its_values_and_read_as_field_changes(
    airtable, db, cli
) -> None:
    """A first pull logs every record it brings in, so an insert keeps one object of the values
    it was created with (field order, empty fields left out); `reconcile log` lists them as the
    same field changes as any other entry."""
    rid = airtable.create("Leads", {"Status": "New", "First Name": "Ann", "SMS Sent Count": 0})[
        "id"
    ]
    assert cli().exit_code == 0
    with db.connect() as conn:
        stored = conn.execute(
            sa.text(f"SELECT changes::text FROM {SCHEMA}.change_log WHERE remote_id = :r"),
            {"r": rid},
        ).scalar_one()
    expected = {"first_name": "Ann", "status": "New", "sms_sent_count": 0, "booked": False}
    expected |= {"sms_stop": False}
    assert list(json.loads(stored).items()) == list(expected.items())
    (entry,) = log(cli, "--remote-id", rid)
    assert entry["changes"] == [
        {"field": field, "old": None, "new": value, "rule": "new_record"}
        for field, value in expected.items()
    ]


LOGGED_VALUES = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=40),
    st.integers(0, 2600).map(lambda n: "é" * n),  # either side of the 2,000-character cut
    st.lists(st.integers(0, 900).map(lambda n: "x" * n), max_size=4),
)


@given(
    st.lists(
        st.tuples(st.sampled_from(["notes", "email", "tags"]), LOGGED_VALUES, LOGGED_VALUES),
        max_size=4,
    )
)
def test_log__field_changes_are_cut_value_by_value(changes: list[tuple[str, Any, Any]]) -> None:
    """An entry's text is cut only where one value is too long, however long the whole entry:
    as if each value were clipped on its own, as the log first did."""
    fields = [FieldChange(column, old, new, "remote_only") for column, old, new in changes]
    expected = [
        {"field": f.column, "old": clip(f.old), "new": clip(f.new), "rule": f.rule}
        for f in fields
        if f.old != f.new
    ]
    assert _fields(fields) == json.dumps(expected, ensure_ascii=False)
