"""Human output fits where it runs: plain lines without a terminal, tables and bars on one."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from typing import Any

from rich.console import Console

from reconciler.cli.app import console
from reconciler.cli.log import log_table
from reconciler.render import RunProgress, render_summary
from tests.helpers import ago, execute, lead_fields, seed_leads
from tests.processes import ENTRY, ROOT


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_no_terminal__one_line_per_mapping_and_nothing_else(airtable, db, cli) -> None:
    assert cli("-q").exit_code == 0  # past the first run's note (below)
    seed_leads(airtable, 5)
    result = cli()
    assert result.exit_code == 0, result.output
    lines = _lines(result.stderr)
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("leads: pulled 5 (+5 ~0, 0 conflicts, 0 failed); pushed 0 of 0")
    assert lines[1] == "rep_progressions: skipped (not configured: TWENTY_API_KEY)"
    assert result.stdout == ""


def test_first_run__a_note_says_older_records_come_in_with_full(airtable, db, cli) -> None:
    """A mapping's first window reaches back only --lookback minutes: what the remote held
    before is not read, and the run says so, with the command that reads it."""
    seed_leads(airtable, 2, minutes_ago=3 * 24 * 60)  # held before: outside any first window
    seed_leads(airtable, 1)

    first = cli("--lookback", "20")
    assert first.exit_code == 0, first.output
    assert first.mapping("leads")["pull"]["inserted"] == 1
    assert first.mapping("leads")["first_window"] is True
    (note,) = [line for line in _lines(first.stderr) if line.startswith("note:")]
    assert "leads: a first run reads only its window (the last 20 min)" in note
    assert "`reconcile --full --mapping leads`" in note

    full = cli("--full", "--mapping", "leads")
    assert full.mapping("leads")["pull"]["inserted"] == 2
    assert full.mapping("leads")["first_window"] is False  # a full read has no window to miss
    later = cli()
    assert later.exit_code == 0 and later.mapping("leads")["first_window"] is False
    assert not [line for line in _lines(later.stderr) if line.startswith("note:")]


def test_quiet__prints_nothing_on_success(airtable, db, cli) -> None:
    seed_leads(airtable, 3)
    result = cli("-q")
    assert result.exit_code == 0, result.output
    assert result.stderr == "" and result.stdout == ""


def test_quiet__prints_only_the_failures(airtable, db, cli) -> None:
    seed_leads(airtable, 2)
    bad = airtable.create("Leads", {"First Name": "Bad", "ICP Score": "high"}, validate=False)
    result = cli("-q")
    assert result.exit_code == 1, result.output
    (line,) = _lines(result.stderr)
    assert line.startswith(f"error: leads pull {bad['id']}: ") and "ICP Score" in line


def test_default__adds_the_error_lines_after_the_mapping_lines(airtable, db, cli) -> None:
    assert cli("-q").exit_code == 0  # past the first run's note (below)
    bad = airtable.create("Leads", {"First Name": "Bad", "ICP Score": "high"}, validate=False)
    result = cli()
    assert result.exit_code == 1, result.output
    lines = _lines(result.stderr)
    assert [line.split(":")[0] for line in lines] == ["leads", "rep_progressions", "error"]
    assert bad["id"] in lines[2]


def test_verbose__adds_window_api_counts_and_the_report_path(airtable, db, cli) -> None:
    seed_leads(airtable, 3)
    cli()
    execute(db, "UPDATE leads SET notes = 'x'")
    result = cli("-v")
    assert result.exit_code == 0, result.output
    text = result.stderr
    assert text.startswith(f"run {result.report['run_id']}: ok in ")
    window = result.mapping("leads")["window"]
    assert f"leads: window {window['since']} .. {window['until']}" in text
    api = result.mapping("leads")["api"]
    assert f"leads: api {api['requests']} requests, 0 retries, 0 throttled" in text
    assert f"report: {result.report_path}" in text
    assert "pushed 3 of 3" in text


def test_push_only_run__its_mappings_print_what_they_did(airtable, db, cli) -> None:
    """A push-only run computes no window; its mappings still ran and print their counts."""
    seed_leads(airtable, 3)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'x' WHERE id = 1")
    result = cli("-v", "--stage", "push")
    assert result.exit_code == 0, result.output
    assert result.report["window"] is None
    assert result.mapping("leads")["stages"] == ["push"]
    assert result.mapping("rep_progressions")["stages"] == []  # skipped: not configured
    lines = _lines(result.stderr)
    assert any(line.startswith("leads: pulled 0 (") and "pushed 1 of 1" in line for line in lines)
    assert "leads: no pull window" in "\n".join(lines)
    assert not any("not run" in line for line in lines), lines
    terminal, out = _terminal()
    render_summary(terminal, result.report, quiet=False)
    assert "not run" not in out.getvalue()


def test_push_counts__a_row_whose_edits_only_pull_is_unchanged(airtable, db, cli) -> None:
    seed_leads(airtable, 2)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET company = 'local' WHERE id = 1")
    result = cli("--stage", "push")
    assert result.exit_code == 0, result.output
    push = result.mapping("leads")["push"]
    assert (push["pending"], push["updated"], push["unchanged"]) == (0, 0, 1)


def test_push_counts__a_row_failing_before_it_is_sent_is_pending(airtable, db, cli) -> None:
    seed_leads(airtable, 2)
    assert cli().exit_code == 0
    execute(db, "INSERT INTO leads (airtable_record_id, notes) VALUES ('not-an-id', 'x')")
    execute(db, "UPDATE leads SET notes = 'y' WHERE id = 2")
    result = cli()
    assert result.exit_code == 1, result.output
    assert "pushed 1 of 2 (+0 ~1, 0 skipped, 1 failed, 1 dead)" in _lines(result.stderr)[0]


def test_failed_run__says_why_even_when_quiet(airtable, db, cli) -> None:
    airtable.faults.fail(401, times=100)
    result = cli("-q")
    assert result.exit_code == 3, result.output
    lines = _lines(result.stderr)
    assert lines and all(line.startswith(("error: leads", "reconcile: failed")) for line in lines)


def _terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return console(file=out, force_terminal=True, width=140, color_system=None), out


def _report(**pull: int) -> dict[str, Any]:
    counts = {"fetched": 0, "inserted": 0, "updated": 0, "unchanged": 0, "conflicts": 0}
    counts |= {"skipped_local_newer": 0, "failed": 0} | pull
    push = {"pending": 2, "created": 0, "updated": 2, "unchanged": 0}
    push |= {"skipped_remote_newer": 0, "failed": 0, "dead": 1}
    mapping = {"name": "leads", "remote": "airtable", "skipped": None, "pull": counts}
    mapping |= {"push": push, "api": {"requests": 4, "retries": 0, "throttled": 0}}
    mapping |= {
        "window": {"since": "2026-11-20T10:00:00.000Z", "until": "2026-11-20T10:20:00.000Z"}
    }
    return {
        "run_id": "r1",
        "status": "ok",
        "dry_run": False,
        "duration_ms": 120,
        "window": {"since": None, "until": "2026-12-01T10:00:00.000Z"},
        "mappings": [mapping],
        "errors": [],
        "message": None,
    }


def test_terminal__a_table_per_mapping_and_stage_and_the_report_path() -> None:
    console, out = _terminal()
    render_summary(console, _report(fetched=7, inserted=5), quiet=False, report_path="/r/x.json")
    text = out.getvalue()
    assert "run r1 — ok" in text
    assert "mapping" in text and "conflicts" in text
    rows = [line for line in text.splitlines() if "│ pull" in line or "│ push" in line]
    assert len(rows) == 2
    assert "7" in rows[0] and "5" in rows[0]
    assert "1 (+1 dead)" not in rows[1] and "0 (+1 dead)" in rows[1]
    assert "report: /r/x.json" in text


def test_progress__one_bar_per_mapping_and_stage_on_a_terminal() -> None:
    console, out = _terminal()
    with RunProgress(console, enabled=True) as progress:
        progress("leads", "pull", 100)
        progress("leads", "pull", 50)
        progress("leads", "push", 10)
        bars = progress.display
        assert bars is not None
        assert [(t.description, t.completed) for t in bars.tasks] == [
            ("leads pull", 150),
            ("leads push", 10),
        ]
        assert bars.tasks[0].finished and not bars.tasks[1].finished
    assert "leads pull" in out.getvalue()


def test_progress__disabled_shows_nothing() -> None:
    console, out = _terminal()
    with RunProgress(console, enabled=False) as progress:
        progress("leads", "pull", 100)
    assert out.getvalue() == ""


MARKUP = "see [/bold] and [red]urgent[/red] :fire:"  # a value that looks like rich markup


def test_terminal__logged_values_are_shown_as_stored(airtable, db, cli) -> None:
    airtable.create("Leads", {"First Name": "Ann", "Notes": MARKUP})
    assert cli().exit_code == 0
    listed = cli("log", "--json")
    assert listed.exit_code == 0, listed.output
    terminal, out = _terminal()
    terminal.width = 400  # one line per field
    terminal.print(log_table(json.loads(listed.stdout)))
    assert MARKUP in out.getvalue()


def test_terminal__error_messages_are_shown_as_given() -> None:
    terminal, out = _terminal()
    report = _report() | {"status": "partial"}
    report["errors"] = [{"mapping": "leads", "stage": "push", "record": "rec1", "message": MARKUP}]
    render_summary(terminal, report, quiet=False, report_path="/r/x.json")
    assert f"error leads push rec1: {MARKUP}" in out.getvalue()


def test_error_line__emoji_codes_stay_as_typed(cli) -> None:
    result = cli("--mapping", "a:fire:b")
    assert result.exit_code == 2
    assert "'a:fire:b'" in result.stderr, result.stderr


def test_unreachable_remote__the_error_names_its_url_and_the_variable(
    airtable, db, cli, monkeypatch
) -> None:
    monkeypatch.setenv("AIRTABLE_API_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("RECONCILER_RETRY_BASE_SECONDS", "0.001")
    result = cli("--mapping", "leads")
    assert result.exit_code == 3, result.output
    assert result.report["window"] is None  # never computed: no answer showed the clock
    (error,) = result.report["errors"]
    assert error["record"] is None
    assert error["message"].endswith(
        "is http://127.0.0.1:9 reachable? check AIRTABLE_API_URL and the network"
    )
    # The report says why the run failed; the output says it once.
    assert result.report["message"] == f"leads pull: {error['message']}"
    assert [line for line in _lines(result.stderr) if "reachable?" in line] == [
        f"error: leads pull: {error['message']}"
    ]


def test_run_that_never_started__its_mappings_are_not_run(airtable, cli, monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    result = cli("-v")
    assert result.exit_code == 3, result.output
    assert result.report["window"] is None
    lines = _lines(result.stderr)
    assert "leads: not run" in lines
    assert not any("pulled 0" in line or "window" in line for line in lines), lines
    terminal, out = _terminal()
    render_summary(terminal, result.report, quiet=False)
    assert "│ leads" in out.getvalue() and "not run" in out.getvalue()


def test_terminal__too_narrow_for_the_table_gives_whole_lines() -> None:
    report = _report(fetched=7, inserted=5)
    report["mappings"].append({**report["mappings"][0], "name": "rep_progressions"})
    narrow, out = _terminal()
    narrow.width = 80
    render_summary(narrow, report, quiet=False)
    text = out.getvalue()
    assert "…" not in text and "┃" not in text, text
    assert "rep_progressions: pulled 7 (+5 ~0" in text
    wide, out = _terminal()  # 140 columns: the table, every name and header whole
    render_summary(wide, report, quiet=False)
    assert "│ rep_progressions │" in out.getvalue() and "unchanged" in out.getvalue()


def test_stdout_not_utf8__output_degrades_and_never_fails(airtable, database_url, cli) -> None:
    """A locale whose encoding cannot hold every character (here ASCII): JSON is escaped, and
    readable lines print ``?`` for what the stream cannot hold, with ASCII check marks."""
    fields = {**lead_fields(1), "First Name": "Zoë ✓"}
    airtable.create("Leads", fields, modified_at=ago(5))
    assert cli().exit_code == 0
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}

    def reconcile(*args: str) -> subprocess.CompletedProcess[bytes]:
        command = [sys.executable, "-c", ENTRY, *args]
        return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, check=False)

    logged = reconcile("log", "--json")
    assert logged.returncode == 0, logged.stderr
    entries = json.loads(logged.stdout.decode("ascii"))  # ASCII only, and valid JSON
    assert "Zoë ✓" in json.dumps(entries, ensure_ascii=False)
    readable = reconcile("log")
    assert readable.returncode == 0, readable.stderr
    assert b"Zo? ?" in readable.stdout + readable.stderr
    checked = reconcile("check")
    assert checked.returncode == cli("check").exit_code == 0, checked.stderr
    lines = checked.stdout.decode("ascii").splitlines()
    assert lines[0].startswith("+ configuration:"), lines
    assert all(line[:2] in ("+ ", "! ") for line in lines), lines


def test_throttled__a_note_names_the_limit_shared_and_the_setting() -> None:
    """A mapping whose remote refused requests for their rate gets a note: the run slowed down,
    later runs keep the pace (not after a dry run, which keeps nothing), and the setting that
    leaves other clients of the same limit their share."""
    from reconciler.render import note_lines

    def report(dry_run: bool) -> dict[str, Any]:
        return {
            "dry_run": dry_run,
            "lookback_minutes": 20,
            "mappings": [
                {"name": "rp", "remote": "twenty", "api": {"throttled": 2}},
                {"name": "leads", "remote": "airtable", "api": {"throttled": 0}},
            ],
        }

    (line,) = note_lines(report(False))
    assert line.startswith("note: rp: Twenty refused 2 requests for their rate (429): ")
    assert "the next week's runs keep that pace" in line
    assert "the workspace's limit, lower TWENTY_RATE_LIMIT" in line
    (dry,) = note_lines(report(True))
    assert "next week" not in dry
