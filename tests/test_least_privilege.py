"""The documented least-privilege role runs the reconciler, and can do nothing more."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.helpers import execute, rows, seed_leads, seed_progressions

GRANTS = Path(__file__).resolve().parents[1] / "docs" / "least-privilege.sql"


def statements(sql: str) -> list[str]:
    """The statements of a plain SQL file (comments dropped; no function bodies in it)."""
    text = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    return [s.strip() for s in text.split(";") if s.strip()]


@pytest.fixture
def app_url(database_url: str, db: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A role created from docs/least-privilege.sql; DATABASE_URL set to connect as it."""
    role, password = f"reconciler_app_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    sql = re.sub(r"\breconciler_app\b", role, GRANTS.read_text()).replace("change-me", password)
    with db.begin() as conn:
        for statement in statements(sql):
            conn.exec_driver_sql(statement)
    url = make_url(database_url).set(username=role, password=password)
    app = url.render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", app)
    yield app
    with db.begin() as conn:
        conn.exec_driver_sql(f"DROP OWNED BY {role}")
        conn.exec_driver_sql(f"DROP ROLE {role}")


def test_least_privilege__role_runs_pull_push_and_reads_the_logs(
    app_url, airtable, twenty, db, cli
) -> None:
    ids = seed_leads(airtable, 5)
    seed_progressions(twenty, 3)
    execute(db, "INSERT INTO rep_progressions (name, total_xp) VALUES ('Local rep', 9)")
    execute(
        db,
        "INSERT INTO reconciler.change_log (logged_at, run_id, mapping, stage, action, rule) "
        "VALUES (now() - interval '200 days', 'old', 'leads', 'pull', 'updated', 'remote_only')",
    )
    first = cli()
    assert first.exit_code == 0, first.output
    assert first.mapping("rep_progressions")["push"]["created"] == 1
    assert first.report["change_log"]["removed"] == 1
    airtable.update("Leads", ids[0], {"Status": "Hot"})
    execute(db, "UPDATE leads SET notes = 'called' WHERE airtable_record_id = :r", r=ids[1])
    second = cli()
    assert second.exit_code == 0, second.output
    assert second.mapping("leads")["pull"]["updated"] == 1
    assert second.mapping("leads")["push"]["updated"] == 1
    assert rows(db, where=f"airtable_record_id = '{ids[0]}'")[0]["status"] == "Hot"
    for command in (["log", "--json"], ["runs", "--json"], ["check"], ["status", "--json"]):
        result = cli(*command)
        assert result.exit_code == 0, result.output


def test_least_privilege__a_failed_record_is_recorded_and_cleared(
    app_url, airtable, db, cli
) -> None:
    bad = airtable.create("Leads", {"First Name": "Bad", "ICP Score": "high"}, validate=False)
    failed = cli()
    assert failed.exit_code == 1, failed.output
    assert "permission denied" not in failed.output
    airtable.update("Leads", bad["id"], {"ICP Score": 70})
    fixed = cli()
    assert fixed.exit_code == 0, fixed.output
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM reconciler.failures")).scalar() == 0


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM leads",
        "TRUNCATE leads",
        "DROP TABLE leads",
        "ALTER TABLE leads ADD COLUMN extra text",
        "CREATE TABLE public.extra (i int)",
        "CREATE TABLE reconciler.extra (i int)",
        "UPDATE reconciler.change_log SET rule = 'forged'",
        "DELETE FROM reconciler.runs",
        "UPDATE reconciler.meta SET value = 'x'",
    ],
)
def test_least_privilege__role_is_refused_anything_else(app_url, statement: str) -> None:
    engine = sa.create_engine(app_url.replace("postgresql://", "postgresql+psycopg://", 1))
    refused = pytest.raises(sa.exc.ProgrammingError, match=r"permission denied|must be owner")
    try:
        with refused, engine.begin() as conn:
            conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


@pytest.fixture
def bare_url(database_url: str, db: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A role that may log in to the migrated database and nothing more (no grants from
    docs/least-privilege.sql); DATABASE_URL set to connect as it."""
    role = f"bare_{uuid.uuid4().hex[:8]}"
    with db.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
    url = make_url(database_url).set(username=role).render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", url)
    yield url
    with db.begin() as conn:
        conn.exec_driver_sql(f"DROP ROLE {role}")


@pytest.mark.parametrize("command", [["runs"], ["log"], ["status"], ["check"], ["--dry-run"], []])
def test_role_without_the_grants__every_command_says_what_to_grant_in_one_line_exit_3(
    bare_url, airtable, cli, command: list[str]
) -> None:
    result = cli(*command)
    assert result.exit_code == 3, result.output
    said = [line for line in result.output.splitlines() if "permission denied" in line]
    assert len(said) == 1, result.output
    assert "the database refused a statement: permission denied for schema reconciler" in said[0]
    assert "docs/least-privilege.sql" in said[0]
    assert "internal error" not in result.output and "[SQL:" not in result.output
    if result.report_path is not None and result.report_path.exists():  # a run: its report
        assert result.report["message"] in said[0]
