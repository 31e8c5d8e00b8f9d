"""The command line: option validation, credentials, database states, exit codes."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import make_url

from reconciler.cli import main
from tests.helpers import events_config, execute, rows, seed_leads


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--lookback", "0"], {}, "--lookback"),
        (["--lookback", "abc"], {}, "--lookback"),
        ([], {"RECONCILER_LOOKBACK": "abc"}, "RECONCILER_LOOKBACK"),
        ([], {"RECONCILER_LOOKBACK": "-5"}, "RECONCILER_LOOKBACK"),
        (["--stage", "sideways"], {}, "--stage"),
        (["--mapping", "nope"], {}, "--mapping"),
        ([], {"AIRTABLE_RATE_LIMIT": "fast"}, "AIRTABLE_RATE_LIMIT"),
        (["--bogus"], {}, "--bogus"),
        (["--lookback", "2147483648"], {}, "--lookback"),
        ([], {"AIRTABLE_RATE_LIMIT": "nan"}, "AIRTABLE_RATE_LIMIT"),
        ([], {"TWENTY_RATE_LIMIT": "inf"}, "TWENTY_RATE_LIMIT"),
        ([], {"RECONCILER_MAX_ATTEMPTS": "1.5"}, "RECONCILER_MAX_ATTEMPTS"),
        ([], {"RECONCILER_MASS_DELETE_SHARE": "5"}, "RECONCILER_MASS_DELETE_SHARE"),
        ([], {"RECONCILER_OVERLAP_MINUTES": "1e12"}, "RECONCILER_OVERLAP_MINUTES"),
        ([], {"RECONCILER_LOG_RETENTION_DAYS": "1e12"}, "RECONCILER_LOG_RETENTION_DAYS"),
        ([], {"RECONCILER_RETRY_BASE_SECONDS": "inf"}, "RECONCILER_RETRY_BASE_SECONDS"),
        ([], {"DATABASE_URL": "mysql://u:pw@db/x"}, "DATABASE_URL"),
        ([], {"DATABASE_URL": "postgresql://u:pw@ss@127.0.0.1:9/x"}, "DATABASE_URL"),
        ([], {"AIRTABLE_API_URL": "not-a-url"}, "AIRTABLE_API_URL"),
        ([], {"TWENTY_API_URL": "ftp://crm.example.com"}, "TWENTY_API_URL"),
        ([], {"AIRTABLE_BASE_ID": "../../v0/appOther"}, "AIRTABLE_BASE_ID"),  # into the path
        ([], {"AIRTABLE_BASE_ID": "app x"}, "AIRTABLE_BASE_ID"),
        ([], {"AIRTABLE_BASE_ID": ".."}, "AIRTABLE_BASE_ID"),
    ],
)
def test_bad_option__exits_2_with_one_line_naming_it(
    cli, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], named: str
) -> None:
    monkeypatch.setenv("AIRTABLE_TOKEN", "t")
    monkeypatch.setenv("AIRTABLE_BASE_ID", "appX")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = cli(*args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert "Traceback" not in result.output and "pw@" not in result.output
    assert "ss@" not in result.output  # nor the rest of a password holding an @
    assert result.report_path is not None and not result.report_path.exists()


@pytest.mark.parametrize("command", [["runs", "--help"], ["log", "--help"], ["check", "--help"]])
def test_bad_lookback_in_the_environment__other_commands_still_work(
    cli, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """RECONCILER_LOOKBACK is a run option: a bad value stops a run, not the other commands."""
    monkeypatch.setenv("RECONCILER_LOOKBACK", "abc")
    result = cli(*command)
    assert result.exit_code == 0, result.output
    assert "Usage: reconcile" in result.stdout


@pytest.mark.parametrize("args", [["--lookback", "abc", "run"], ["--lookback", "0", "run"]])
def test_bad_lookback_before_run__exits_2_as_after_it(
    cli, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.setenv("AIRTABLE_TOKEN", "t")
    monkeypatch.setenv("AIRTABLE_BASE_ID", "appX")
    before = cli(*args)
    after = cli("run", *args[:2])
    assert before.exit_code == after.exit_code == 2, before.output
    assert before.stderr == after.stderr and "--lookback" in before.stderr


@pytest.mark.parametrize(
    "message",
    [
        "something the tool did not expect",
        # as SQLAlchemy words a database error: the statement and its parameters follow
        "something the tool did not expect\n[SQL: SELECT 1]\n[parameters: {'id_1': 1}]",
    ],
)
def test_a_defect_of_the_tool__one_line_exit_3_never_a_traceback(cli, monkeypatch, message) -> None:
    import reconciler.config

    def broken(*args: object) -> None:
        raise RuntimeError(message)

    monkeypatch.setattr(reconciler.config, "load_settings", broken)
    result = cli("runs")
    assert result.exit_code == 3, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "reconcile: error: internal error: RuntimeError: something the tool did not expect; "
        "please report it with the command that caused it"
    ]


def test_missing_credentials__exit_2_names_the_variables(cli) -> None:
    result = cli()
    assert result.exit_code == 2
    assert "AIRTABLE_TOKEN" in result.stderr and "TWENTY_API_KEY" in result.stderr
    assert result.report_path is not None and not result.report_path.exists()


def test_unmigrated_database__exit_3_tells_to_migrate(airtable, unmigrated_url, cli) -> None:
    result = cli()
    assert result.exit_code == 3, result.output
    assert "reconcile migrate" in result.stderr
    assert result.report["status"] == "failed" and result.report["window"] is None
    migrated = cli("migrate")
    assert migrated.exit_code == 0, migrated.output
    assert cli("migrate").exit_code == 0  # safe to run twice
    seed_leads(airtable, 2)
    assert cli().exit_code == 0


def test_migrate_without_the_privilege__one_line_exit_3_saying_which_user_may(
    unmigrated_url, cli, monkeypatch
) -> None:
    """A role that may log in but not create in the database (Postgres 15 and later give no one
    CREATE on schema public by default)."""
    role = f"plain_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(unmigrated_url.replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
    monkeypatch.setenv("DATABASE_URL", str(make_url(unmigrated_url).set(username=role)))
    try:
        result = cli("migrate")
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()
    assert result.exit_code == 3, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "internal error" not in lines[0], lines
    assert "migration failed: permission denied for database" in lines[0]
    assert "as a user that may create schemas and tables" in lines[0]


def test_migrate_over_an_existing_leads_table__one_line_exit_3_nothing_half_done(
    unmigrated_url, cli
) -> None:
    """An adopter's own ``leads`` table: migrate neither takes it over nor stops half-way."""
    admin = sa.create_engine(unmigrated_url.replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE leads (id uuid PRIMARY KEY, email text NOT NULL)")
    result = cli("migrate")
    assert result.exit_code == 3, result.output
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith('reconcile: error: migration failed: relation "leads" already exists;')
    assert "rename the existing one" in line
    with admin.begin() as conn:
        assert conn.exec_driver_sql("SELECT to_regnamespace('reconciler')").scalar() is None
        conn.exec_driver_sql("ALTER TABLE leads RENAME TO crm_leads")
    admin.dispose()
    assert cli("migrate").exit_code == 0


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://nobody:secret@127.0.0.1:1/none",
        "postgresql://nobody@127.0.0.1:1/none?sslmode=disable&password=secret",
        "postgresql://nobody@127.0.0.1:1/none?sslpassword=secret&connect_timeout=5",
    ],
)
def test_unreachable_database__exit_3_and_a_report(airtable, cli, monkeypatch, url) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    result = cli("--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["status"] == "failed"
    assert "127.0.0.1:1/none" in result.stderr, result.stderr
    assert "secret" not in result.output
    assert result.report_path is not None and "secret" not in result.report_path.read_text()


def test_embedded_postgres__is_the_default_and_migrates_itself(
    airtable, cli, home, monkeypatch
) -> None:
    monkeypatch.setenv("RECONCILER_HOME", str(home))
    seed_leads(airtable, 3)
    result = cli()
    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["pull"]["inserted"] == 3
    assert (home / "pg").is_dir()
    again = cli()
    assert again.exit_code == 0 and again.mapping("leads")["pull"]["unchanged"] == 3


def test_default_report_path__is_under_reconciler_home(airtable, database_url, tmp_path):
    from reconciler.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["-q"])
    assert stop.value.code == 0
    (report,) = (tmp_path / "home" / "reports").glob("*.json")
    assert json.loads(report.read_text())["status"] == "ok"


def test_tilde__home_config_and_report_paths_read_as_a_shell_would(
    airtable, database_url, tmp_path, monkeypatch
):
    """An environment file (cron's, systemd's) passes ``~`` as it is; so does a quoted option.
    RECONCILER_HOME was made as a folder named ``~`` under the current one, while the embedded
    Postgres looked for it in the home folder, and RECONCILER_CONFIG was not found."""
    from reconciler.cli import main

    me = tmp_path / "me"
    me.mkdir()
    (me / "sync.toml").write_text('[mappings.leads]\ntable = "Leads"\n')
    monkeypatch.setenv("HOME", str(me))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECONCILER_HOME", "~/rh")
    monkeypatch.setenv("RECONCILER_CONFIG", "~/sync.toml")
    seed_leads(airtable, 1)
    for argv in (["-q", "--mapping", "leads"], ["-q", "--report", "~/r.json"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 0
    assert len(list((me / "rh" / "reports").glob("*.json"))) == 1
    assert json.loads((me / "r.json").read_text())["status"] == "ok"
    assert not (tmp_path / "~").exists()


def test_pacing__real_airtable_limit_gives_no_429(airtable, db, cli, monkeypatch) -> None:
    airtable.limiter.limit = 5
    airtable.limiter.lockout = 30.0
    monkeypatch.setenv("AIRTABLE_RATE_LIMIT", "5")
    seed_leads(airtable, 250)
    result = cli()
    assert result.exit_code == 0, result.output
    assert airtable.count(status=429) == 0
    assert result.mapping("leads")["api"]["throttled"] == 0


def test_run_options_before_run__are_the_run_s(airtable, db, cli) -> None:
    """`reconcile --dry-run run` is a dry run: the options before `run` are not dropped."""
    seed_leads(airtable, 3)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'held back'")
    result = cli("--dry-run", "--lookback", "7", "run")
    assert result.exit_code == 0, result.output
    assert result.report["dry_run"] is True and result.report["lookback_minutes"] == 7
    assert result.mapping("leads")["push"]["updated"] == 3
    assert all(r["fields"].get("Notes") is None for r in airtable.records("Leads"))


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--dry-run", "log"], "--dry-run before `log`"),
        (["--lookback", "5", "status"], "--lookback before `status`"),
        (["--lookback", "5", "run", "--lookback", "6"], "--lookback given both"),
    ],
)
def test_run_options_where_no_run_takes_them__exit_2(cli, args: list[str], named: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert result.report_path is None or not result.report_path.exists()


def test_report_path_a_folder__exit_2_before_anything_is_contacted(airtable, db, cli, tmp_path):
    seed_leads(airtable, 1)
    airtable.reset_log()
    result = cli("--report", str(tmp_path))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--report" in lines[0] and "is a folder" in lines[0], lines
    assert airtable.requests == []


@pytest.mark.parametrize("also_json", [False, True])
def test_report_dash__the_report_on_stdout_once_and_no_file(
    airtable, db, cli, tmp_path, monkeypatch, also_json
):
    """``--report -`` is stdout, as for other Unix tools: not a file named ``-``, and not also
    the default file."""
    monkeypatch.chdir(tmp_path)
    seed_leads(airtable, 2)
    result = cli("--report", "-", *(["--json"] if also_json else []))
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # one document: a second would not parse
    assert document["status"] == "ok" and document["mappings"][0]["pull"]["inserted"] == 2
    assert not (tmp_path / "-").exists()
    assert not list((tmp_path / "home" / "reports").glob("*.json"))


@pytest.mark.parametrize("command", [[], ["status"], ["migrate"]])
def test_reconciler_home_not_a_folder__exit_2_naming_it(cli, monkeypatch, tmp_path, command):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("AIRTABLE_TOKEN", "t")
    monkeypatch.setenv("AIRTABLE_BASE_ID", "appX")
    home = tmp_path / "a-file"
    home.write_text("not a folder")
    monkeypatch.setenv("RECONCILER_HOME", str(home))
    result = cli(*command)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("reconcile: error: RECONCILER_HOME: "), lines
    assert home.read_text() == "not a folder"


@pytest.mark.parametrize("command", [[], ["status"], ["migrate"], ["runs"], ["log"]])
def test_reconciler_home_with_a_space__the_embedded_postgres_refused_in_one_line_exit_2(
    cli, monkeypatch, tmp_path, command
):
    """pg_ctl starts the server through the shell with the folder unquoted: in a folder with a
    space (a home such as "/Users/Jane Doe", or the current folder's) it cannot start, and
    pgserver printed its whole command and log before the error."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("AIRTABLE_TOKEN", "t")
    monkeypatch.setenv("AIRTABLE_BASE_ID", "appX")
    home = tmp_path / "Jane Doe" / ".reconciler"
    monkeypatch.setenv("RECONCILER_HOME", str(home))
    result = cli(*command)
    assert result.exit_code == 2, result.output
    (line,) = [line for line in result.output.splitlines() if line.strip()]
    assert line.startswith("reconcile: error: RECONCILER_HOME: the embedded Postgres cannot start")
    assert "set DATABASE_URL" in line
    assert not (home / "pg").exists()


def test_reconciler_home_with_a_space__fine_with_database_url(
    cli, database_url, monkeypatch, tmp_path
):
    monkeypatch.setenv("RECONCILER_HOME", str(tmp_path / "Jane Doe" / ".reconciler"))
    result = cli("runs")
    assert result.exit_code == 0, result.output


def test_report_write__a_failed_write_leaves_no_temporary_file(tmp_path) -> None:
    from datetime import UTC, datetime

    from reconciler.report import RunReport

    target = tmp_path / "taken"
    (target / "inside").mkdir(parents=True)  # a folder, not empty: the rename must fail
    with pytest.raises(OSError):
        RunReport("r1", datetime.now(UTC), 20).write(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_report_write_fails_after_the_run__summary_then_one_error_line(
    airtable, db, cli, monkeypatch, tmp_path
) -> None:
    from reconciler.report import RunReport

    def full_disk(self: RunReport, path: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(RunReport, "write", full_disk)
    seed_leads(airtable, 2)
    result = cli("--json")
    assert result.exit_code == 3, result.output
    assert json.loads(result.stdout)["mappings"][0]["pull"]["inserted"] == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("leads: pulled 2 (+2")
    assert lines[-1] == (
        f"reconcile: error: could not write the report to {result.report_path} "
        "(No space left on device)"
    )


def test_mapped_table_missing__that_mapping_fails_alone(airtable, db, cli, tmp_path) -> None:
    """A configured local table found missing once the run reaches the database stops its
    mapping, reported for it, and the other mappings go on (exit 3, as for any mapping that
    cannot proceed)."""
    config = tmp_path / "config.toml"
    events = events_config('{ remote = "Day", column = "day" }')
    config.write_text(events.replace('local_table = "events"', 'local_table = "nonexist"'))
    seed_leads(airtable, 2)

    result = cli("--config", str(config))

    assert result.exit_code == 3, result.output
    (error,) = result.report["errors"]
    assert error["mapping"] == "events" and error["record"] is None
    assert "table 'nonexist' does not exist" in error["message"]
    assert "reconcile check" in error["message"]
    assert result.mapping("leads")["pull"]["inserted"] == 2 and len(rows(db)) == 2


def test_stage_push__a_linked_row_never_synced_that_equals_its_record_sends_nothing(
    airtable, db, cli
) -> None:
    """A row an application inserted with its Airtable record id, never synced: a push run
    alone reads the record, merges it with the row as a pull would and, finding nothing of the
    row's to send, writes nothing."""
    (rid,) = seed_leads(airtable, 1)
    execute(
        db,
        "INSERT INTO leads (airtable_record_id, first_name, processing_status) "
        "VALUES (:r, 'Ann', 'queued')",
        r=rid,
    )
    airtable.reset_log()

    result = cli("--stage", "push")

    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["push"]["unchanged"] == 1
    assert [r for r in airtable.requests if r.method == "PATCH"] == []


def test_airtable_rate_limit_of_zero__exit_2_before_any_request(
    airtable, db, cli, monkeypatch
) -> None:
    monkeypatch.setenv("AIRTABLE_RATE_LIMIT", "0")
    seed_leads(airtable, 1)
    airtable.reset_log()
    result = cli()
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "AIRTABLE_RATE_LIMIT must be at least 0.1" in lines[0], lines
    assert airtable.requests == [] and rows(db) == []


def test_settings_at_their_documented_upper_bound__are_accepted(
    airtable, db, cli, monkeypatch
) -> None:
    monkeypatch.setenv("RECONCILER_MASS_DELETE_SHARE", "1")
    monkeypatch.setenv("RECONCILER_MAX_ATTEMPTS", "1000")
    seed_leads(airtable, 2)
    result = cli("--mapping", "leads")
    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["pull"]["inserted"] == 2


def test_reconciler_home_unset__reports_go_under_dot_reconciler(
    airtable, database_url, tmp_path, monkeypatch
) -> None:
    monkeypatch.delenv("RECONCILER_HOME")
    monkeypatch.chdir(tmp_path)
    seed_leads(airtable, 1)
    with pytest.raises(SystemExit) as stop:
        main(["-q", "--mapping", "leads"])
    assert stop.value.code == 0
    (report,) = (tmp_path / ".reconciler" / "reports").glob("*.json")
    assert json.loads(report.read_text())["status"] == "ok"


def test_mapping_given_twice__runs_it_once(airtable, db, cli) -> None:
    seed_leads(airtable, 2)
    result = cli("--mapping", "leads", "--mapping", "leads")
    assert result.exit_code == 0, result.output
    assert [m["name"] for m in result.report["mappings"]] == ["leads"]
    assert result.mapping("leads")["pull"]["inserted"] == 2 and len(rows(db)) == 2


def test_lookback__defaults_to_20_minutes_and_reads_reconciler_lookback(
    airtable, db, cli, monkeypatch
) -> None:
    seed_leads(airtable, 1)
    default = cli()
    assert default.exit_code == 0, default.output
    assert default.report["lookback_minutes"] == 20
    monkeypatch.setenv("RECONCILER_LOOKBACK", "45")
    from_env = cli("run")
    assert from_env.exit_code == 0, from_env.output
    assert from_env.report["lookback_minutes"] == 45


def test_lookback_past_ten_years__exit_2_before_any_request(airtable, db, cli) -> None:
    seed_leads(airtable, 1)
    longest = cli("--lookback", "5256000")
    assert longest.exit_code == 0, longest.output
    assert longest.report["lookback_minutes"] == 5256000
    airtable.reset_log()
    result = cli("--lookback", "5256001")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--lookback" in lines[0], lines
    assert airtable.requests == [] and not result.report_path.exists()


def test_remote_clock_90_minutes_off__exit_3_unless_the_limit_allows_it(
    airtable, db, cli, monkeypatch
) -> None:
    airtable.clock.skew = timedelta(minutes=90)
    seed_leads(airtable, 1)
    refused = cli("--mapping", "leads", "--full")
    assert refused.exit_code == 3, refused.output
    (error,) = refused.report["errors"]
    assert error["record"] is None and "NTP" in error["message"]
    assert rows(db) == []
    monkeypatch.setenv("RECONCILER_MAX_CLOCK_OFFSET_MINUTES", "120")
    allowed = cli("--mapping", "leads", "--full")
    assert allowed.exit_code == 0, allowed.output
    assert len(rows(db)) == 1
