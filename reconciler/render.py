"""Human output on stderr: a summary table on a terminal, one line per mapping elsewhere."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def summary_lines(report: dict[str, Any]) -> list[str]:
    """One concise line per mapping, plus one per error (for cron mail and logs)."""
    lines = []
    for m in report["mappings"]:
        if m["skipped"]:
            lines.append(f"{m['name']}: skipped ({m['skipped']})")
            continue
        p, q, a = m["pull"], m["push"], m["api"]
        lines.append(
            f"{m['name']}: pulled {p['fetched']} (+{p['inserted']} ~{p['updated']} "
            f"conflicts {p['conflicts']}, failed {p['failed']}); pushed "
            f"{q['created'] + q['updated']} of {q['pending']} "
            f"(skipped {q['skipped_remote_newer']}, failed {q['failed']}, dead {q['dead']}); "
            f"{a['requests']} requests"
        )
    for e in report["errors"]:
        where = f" {e['record']}" if e["record"] else ""
        lines.append(f"error: {e['mapping']} {e['stage']}{where}: {e['message']}")
    return lines


def render_table(console: Console, report: dict[str, Any]) -> None:
    """A table per run: one row per mapping and stage."""
    table = Table(
        title=f"run {report['run_id']} — {report['status']}"
        + (" (dry run)" if report["dry_run"] else "")
    )
    for col in (
        "mapping",
        "stage",
        "read/pending",
        "inserted/created",
        "updated",
        "unchanged",
        "conflicts/skipped",
        "failed",
        "requests",
    ):
        table.add_column(col, justify="left" if col in ("mapping", "stage") else "right")
    for m in report["mappings"]:
        if m["skipped"]:
            table.add_row(m["name"], "—", m["skipped"], *[""] * 6)
            continue
        p, q, a = m["pull"], m["push"], m["api"]
        table.add_row(
            m["name"],
            "pull",
            str(p["fetched"]),
            str(p["inserted"]),
            str(p["updated"]),
            str(p["unchanged"]),
            f"{p['conflicts']}/{p['skipped_local_newer']}",
            str(p["failed"]),
            str(a["requests"]),
        )
        table.add_row(
            "",
            "push",
            str(q["pending"]),
            str(q["created"]),
            str(q["updated"]),
            str(q["unchanged"]),
            f"-/{q['skipped_remote_newer']}",
            f"{q['failed']} (+{q['dead']} dead)",
            "",
        )
    console.print(table)
    for e in report["errors"]:
        where = f" {e['record']}" if e["record"] else ""
        console.print(
            f"[red]error[/red] {e['mapping']} {e['stage']}{where}: {e['message']}",
            markup=True,
            highlight=False,
        )


def render_summary(
    console: Console, report: dict[str, Any], *, quiet: bool, report_path: str | None
) -> None:
    """The run summary: a table on a terminal, plain lines otherwise; quiet shows only trouble."""
    trouble = report["status"] != "ok"
    if quiet and not trouble:
        return
    if report.get("message"):
        console.print(
            f"reconcile: {report['status']}: {report['message']}", markup=False, highlight=False
        )
    if console.is_terminal:
        render_table(console, report)
    else:
        for line in summary_lines(report):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    if report_path and console.is_terminal:
        console.print(f"report: {report_path}", markup=False, highlight=False)
