"""`reconcile runs`: the run history, newest first, as JSON or a readable listing."""

from __future__ import annotations

import io
import json

import sqlalchemy as sa
from rich.console import Console

from reconciler.render import render_runs
from tests.helpers import execute, seed_leads


def test_runs_json__lists_both_runs_newest_first_with_their_reports(airtable, db, cli) -> None:
    seed_leads(airtable, 4)
    first = cli()
    execute(db, "UPDATE leads SET notes = 'x' WHERE id = 1")
    second = cli()
    assert first.exit_code == second.exit_code == 0
    result = cli("runs", "--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [r["run_id"] for r in listed] == [second.report["run_id"], first.report["run_id"]]
    timing = ("finished_at", "duration_ms")  # stamped again when the report file is written
    for stored, written in zip(listed, (second.report, first.report), strict=True):
        assert {k: v for k, v in stored.items() if k not in timing} == {
            k: v for k, v in written.items() if k not in timing
        }
    assert listed[0]["mappings"][0]["push"]["updated"] == 1


def test_runs_json__limit_keeps_the_newest(airtable, db, cli) -> None:
    seed_leads(airtable, 1)
    cli()
    last = cli()
    listed = json.loads(cli("runs", "--limit", "1", "--json").stdout)
    assert [r["run_id"] for r in listed] == [last.report["run_id"]]
    everything = cli("runs", "--limit", str(2**64), "--json")  # past bigint: all, not an error
    assert everything.exit_code == 0, everything.output
    assert len(json.loads(everything.stdout)) == 2


def test_runs_json__an_empty_history_is_an_empty_array(db, cli) -> None:
    result = cli("runs", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


def test_runs__bad_limit_is_a_usage_error(db, cli) -> None:
    assert cli("runs", "--limit", "0").exit_code == 2


def test_runs__one_line_per_run_without_a_terminal(airtable, db, cli) -> None:
    seed_leads(airtable, 3)
    first = cli()
    result = cli("runs")
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.stdout.splitlines() if x.strip()]
    run_id = first.report["run_id"]
    assert line.startswith(f"{run_id}  ok ")
    assert "pulled 3  pushed 0  conflicts 0  failed 0" in line and "errors 0" in line
    until = first.report["window"]["until"][11:19]
    assert f".. {until}" in line


def test_runs__a_table_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160, color_system=None)
    report = {
        "run_id": "20261120T101500Z-abc123",
        "status": "partial",
        "dry_run": False,
        "duration_ms": 1500,
        "window": {"since": "2026-11-20T09:55:00.000Z", "until": "2026-11-20T10:15:00.000Z"},
        "mappings": [
            {
                "skipped": None,
                "pull": {"inserted": 2, "updated": 3, "conflicts": 1, "failed": 1},
                "push": {"created": 0, "updated": 4, "failed": 0},
            }
        ],
        "errors": [{"mapping": "leads"}],
    }
    running = {"run_id": "20261120T103000Z-def456", "status": "running"}
    failed = {"run_id": "20261120T104500Z-0f0f0f", "status": "failed", "message": "[red]down"}
    render_runs(console, [failed, running, report])
    text = out.getvalue()
    assert "20261120T104500Z-0f0f0f: [red]down" in text  # why it failed, under the table
    for heading in ("run", "status", "window (UTC)", "pulled", "pushed", "duration", "errors"):
        assert heading in text
    row = next(line for line in text.splitlines() if "abc123" in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    assert cells == [
        "20261120T101500Z-abc123",
        "partial",
        "2026-11-20 09:55:00 .. 10:15:00",
        "5",
        "4",
        "1",
        "1",
        "1.5 s",
        "1",
    ]
    assert "running" in next(line for line in text.splitlines() if "def456" in line)


# -- a run that fails after it started ends in the history as failed, not interrupted ---------


def _fails_inside(monkeypatch) -> None:
    """A bug inside the run: reading push candidates raises."""
    from reconciler.store.sync import Store

    def boom(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(Store, "push_candidates", boom)


def _stored(db) -> dict[str, tuple[str, int | None, bool]]:
    """Each stored run's status, exit code and whether its end is recorded."""
    with db.connect() as conn:
        found = conn.execute(
            sa.text("SELECT run_id, status, exit_code, finished_at FROM reconciler.runs")
        )
        return {r[0]: (r[1], r[2], r[3] is not None) for r in found}


def _listed(cli) -> tuple[list[dict], list[str]]:
    as_json = cli("runs", "--json")
    plain = cli("runs")
    assert as_json.exit_code == plain.exit_code == 0, as_json.output + plain.output
    lines = [x for x in plain.stdout.splitlines() if x.strip()]
    return json.loads(as_json.stdout), lines


def test_runs__an_internal_error_mid_run_is_listed_failed_with_its_message(
    airtable, db, cli, monkeypatch
) -> None:
    seed_leads(airtable, 2)
    assert cli().exit_code == 0
    _fails_inside(monkeypatch)

    failed = cli()

    assert failed.exit_code == 3, failed.output
    assert failed.report["message"] == "internal error: RuntimeError: boom"
    listed, lines = _listed(cli)
    assert listed[0]["run_id"] == failed.report["run_id"]
    assert listed[0]["status"] == "failed"
    assert listed[0]["message"] == "internal error: RuntimeError: boom"
    assert lines[0].startswith(f"{failed.report['run_id']}  failed ")
    assert lines[0].endswith("  — internal error: RuntimeError: boom")  # why, on its line
    assert "interrupted" not in lines[0] and "running" not in lines[0]
    stored = _stored(db)
    assert stored[failed.report["run_id"]] == ("failed", 3, True)


def test_runs__a_statement_the_database_refuses_fails_the_run_in_the_history(
    airtable, db, cli, monkeypatch
) -> None:
    """A statement that fails mid-run: the run's own transaction is broken; its end is
    recorded on a connection of its own."""
    from reconciler.store.sync import Store

    def refused(self, *args, **kwargs):
        self.conn.execute(sa.text("SELECT 1 / 0"))  # division_by_zero, from Postgres

    seed_leads(airtable, 2)
    assert cli().exit_code == 0
    monkeypatch.setattr(Store, "push_candidates", refused)

    failed = cli()

    assert failed.exit_code == 3, failed.output
    message = failed.report["message"]
    assert message.startswith("the database refused a statement: "), message
    listed, lines = _listed(cli)
    assert (listed[0]["status"], listed[0]["message"]) == ("failed", message)
    assert lines[0].startswith(f"{failed.report['run_id']}  failed ")


def test_runs__a_dry_run_that_fails_writes_no_history(airtable, db, cli, monkeypatch) -> None:
    seed_leads(airtable, 2)
    _fails_inside(monkeypatch)

    failed = cli("--dry-run")

    assert failed.exit_code == 3, failed.output
    assert failed.report["status"] == "failed"
    assert _stored(db) == {}
