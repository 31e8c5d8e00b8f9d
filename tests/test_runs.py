"""`reconcile runs`: the run history, newest first, as JSON or a readable listing."""

from __future__ import annotations

import io
import json

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
    render_runs(console, [running, report])
    text = out.getvalue()
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
