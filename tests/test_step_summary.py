"""CI smoke runs: with ``GITHUB_STEP_SUMMARY`` set, every run appends a markdown table of its
counters to that file (per mapping, its status and errors, then the run's errors count)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.outcome import FAILED, OK, PARTIAL, SKIPPED, STOPPED, mapping_outcome
from reconciler.step_summary import SUMMARY_COLUMNS, step_summary
from tests.helpers import seed_leads

EARLIER = "## an earlier step\n\nits text\n"


@pytest.fixture
def summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The job summary file, holding what an earlier step wrote."""
    path = tmp_path / "step_summary.md"
    path.write_text(EARLIER)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(path))
    return path


def _rows(text: str) -> dict[str, dict[str, str]]:
    """The table rows of a summary by mapping name, as {column: cell}."""
    found = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] not in ("mapping",):
            found[cells[0]] = dict(zip(SUMMARY_COLUMNS, cells, strict=True))
    return found


def test_run__appends_a_table_of_its_counters(airtable, db, cli, summary: Path) -> None:
    seed_leads(airtable, 3)
    result = cli()

    assert result.exit_code == 0, result.output
    text = summary.read_text()
    assert text.startswith(EARLIER)  # appended, never replaced
    assert f"### reconcile {result.report['run_id']}: ok\n" in text
    rows = _rows(text)
    assert rows["leads"]["status"] == "ok"
    assert (rows["leads"]["pulled"], rows["leads"]["inserted"], rows["leads"]["errors"]) == (
        "3",
        "3",
        "0",
    )
    assert rows["rep_progressions"]["status"] == "skipped: not configured: TWENTY_API_KEY"
    assert "Errors: 0" in text
    assert result.stdout == ""  # the summary goes to its file only


def test_every_run_appends__dry_runs_and_failures_too(airtable, db, cli, summary: Path) -> None:
    seed_leads(airtable, 1)
    bad = airtable.create("Leads", {"First Name": "Bad", "ICP Score": "high"}, validate=False)

    first = cli("--dry-run")
    second = cli()

    assert (first.exit_code, second.exit_code) == (1, 1), second.output
    text = summary.read_text()
    assert f"### reconcile {first.report['run_id']}: partial (dry run)" in text
    assert f"### reconcile {second.report['run_id']}: partial\n" in text
    assert text.count("| leads | partial | 2 | 1 |") == 2
    assert text.count("Errors: 1") == 2
    assert bad["id"] not in text  # counts only: the messages stay in the report


def test_unwritable_summary__warns_and_keeps_the_exit_code(
    airtable, db, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_leads(airtable, 1)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "missing" / "summary.md"))
    result = cli()
    assert result.exit_code == 0, result.output
    assert "could not append to GITHUB_STEP_SUMMARY" in result.stderr


def test_no_summary_variable__writes_no_file(airtable, db, cli, tmp_path: Path) -> None:
    seed_leads(airtable, 1)
    assert cli().exit_code == 0
    assert not list(tmp_path.rglob("*.md"))


def _entry(name: str = "leads", skipped: str | None = None) -> dict[str, Any]:
    pull = dict.fromkeys(("fetched", "inserted", "updated", "conflicts", "failed"), 0)
    push = dict.fromkeys(("created", "updated", "skipped_remote_newer", "failed", "dead"), 0)
    return {"name": name, "skipped": skipped, "pull": pull, "push": push}


def _error(mapping: str, record: str | None) -> dict[str, Any]:
    return {"mapping": mapping, "stage": "pull", "record": record, "message": "x"}


@pytest.mark.parametrize(
    ("errors", "message", "skipped", "outcome"),
    [
        ([], None, None, OK),
        ([_error("leads", "rec1")], None, None, PARTIAL),
        ([_error("leads", None)], None, None, FAILED),
        ([_error("other", None)], None, None, OK),
        ([_error("*", None)], None, None, STOPPED),
        ([], "database connection lost mid-run", None, FAILED),
        ([], None, "locked by another run", SKIPPED),
    ],
)
def test_mapping_outcome__read_from_the_report(
    errors: list[dict[str, Any]], message: str | None, skipped: str | None, outcome: str
) -> None:
    report = {"status": "ok", "errors": errors, "message": message}
    assert mapping_outcome(report, _entry(skipped=skipped)) == outcome


def test_step_summary__escapes_pipes_and_states_a_fatal_message() -> None:
    report = {
        "run_id": "r1",
        "status": "failed",
        "dry_run": False,
        "message": "database unreachable at a|b",
        "mappings": [_entry("a|b")],
        "errors": [],
    }
    text = step_summary(report)
    assert "database unreachable at a\\|b" in text
    assert "| a\\|b | failed |" in text
