"""The run's counters as a markdown job summary, appended to ``$GITHUB_STEP_SUMMARY`` when a CI
job sets it (README, "CI smoke runs")."""

from __future__ import annotations

from typing import Any

from reconciler.outcome import SKIPPED, mapping_errors, mapping_outcome

SUMMARY_COLUMNS = (
    "mapping",
    "status",
    "pulled",
    "inserted",
    "updated",
    "conflicts",
    "pull failed",
    "pushed",
    "created",
    "updated remotely",
    "skipped",
    "push failed",
    "dead",
    "errors",
)


def _cell(text: object) -> str:
    """A markdown table cell: pipes escaped, one line."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def summary_row(report: dict[str, Any], m: dict[str, Any]) -> list[str]:
    """One mapping's cells in the job summary (counters blank when it did not run)."""
    outcome = mapping_outcome(report, m)
    errors = str(len(mapping_errors(report, m["name"])))
    if outcome == SKIPPED:
        return [m["name"], f"skipped: {m['skipped']}", *[""] * 11, errors]
    p, q = m["pull"], m["push"]
    pulled = (p["fetched"], p["inserted"], p["updated"], p["conflicts"], p["failed"])
    pushed = (q["created"] + q["updated"], q["created"], q["updated"])
    counts = (*pulled, *pushed, q["skipped_remote_newer"], q["failed"], q["dead"])
    return [m["name"], outcome, *(str(n) for n in counts), errors]


def step_summary(report: dict[str, Any]) -> str:
    """The run's counters as markdown (for ``$GITHUB_STEP_SUMMARY``): a heading with the run's
    status, one table row per mapping, and the errors count."""
    heading = f"### reconcile {report['run_id']}: {report['status']}"
    lines = [heading + (" (dry run)" if report["dry_run"] else ""), ""]
    if report.get("message"):
        lines += [_cell(report["message"]), ""]
    lines.append("| " + " | ".join(SUMMARY_COLUMNS) + " |")
    lines.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(SUMMARY_COLUMNS) - 2)) + "|")
    for m in report["mappings"]:
        lines.append("| " + " | ".join(_cell(c) for c in summary_row(report, m)) + " |")
    lines += ["", f"Errors: {len(report['errors'])}", "", ""]
    return "\n".join(lines)
