"""``reconcile demo``: the whole job on embedded defaults, with a readable summary."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import typer

from reconciler.cli.app import app, console, marks

if TYPE_CHECKING:
    from rich.console import Console

    from reconciler.demo import DemoResult

WIDTH = 120


@app.command("demo")
def demo_command() -> None:
    """Run the whole job on local emulators and an embedded Postgres, and show what happened.

    Starts Airtable and Twenty emulators in this process, an embedded Postgres under a fresh
    folder (inside RECONCILER_HOME when set, else a temporary one), and maps Airtable's Reps
    table on rep_progressions too (a hub, by a config file written there). Seeds an adopter's
    data (the same reps on every side, not linked), runs a full reconciliation (first contact),
    edits all three sides (with a conflict won by each side, an array edited on both, and
    edits crossing the hub), runs again, and stops everything. Exits 0 when everything ended
    as expected.
    """
    from rich.markup import escape

    from reconciler.demo import run_demo
    from reconciler.render import RunProgress

    out = console(stderr=True, highlight=False)
    if not out.is_terminal:
        out = console(stderr=True, highlight=False, width=WIDTH)  # room for the tables
    started = time.monotonic()

    def say(message: str) -> None:
        out.print(f"[dim]·[/dim] {escape(message)}")

    with RunProgress(out, enabled=out.is_terminal) as progress:
        result = run_demo(os.environ.get("RECONCILER_HOME") or None, say=say, on_progress=progress)
    show(out, result, time.monotonic() - started)
    raise typer.Exit(0 if result.ok else 1)


def show(console: Console, result: DemoResult, seconds: float) -> None:
    """The runs' tables, the stories of first contact and of the edits, and where the config
    and the reports are."""
    from rich.markup import escape

    from reconciler.render import print_run, trouble_lines

    for run in result.runs:
        console.print()
        print_run(console, run.report, title=f"{run.label}: {run.report['status']}")
        linked = matched(run.report)
        if linked:
            console.print(f"  linked by match_on instead of created: {escape(linked)}")
        for line in trouble_lines(run.report):
            console.print(escape(line))
    for heading, stories in (
        ("What the first run did with the reps every side already had", result.first_contact),
        ("What happened to the edits", result.stories),
    ):
        console.print()
        console.print(f"[bold]{heading}[/bold]")
        passed, failed = marks()
        for story in stories:
            mark = f"[green]{passed}[/green]" if story.ok else f"[red]{failed}[/red]"
            console.print(f"{mark} [bold]{escape(story.title)}[/bold]: {escape(story.setup)}")
            console.print(f"    → {escape(story.outcome)}")
    console.print()
    console.print(
        f"Config (the hub mapping, for --config): {escape(str(result.config))}", soft_wrap=True
    )
    console.print("Reports (JSON, one per run):")
    for run in result.runs:
        console.print(f"  report: {escape(str(run.path))}", soft_wrap=True)
    if result.leftover_postgres:
        pids = ", ".join(map(str, result.leftover_postgres))
        console.print(f"[red]embedded Postgres still running (pid {pids})[/red]")
    else:
        console.print("Emulators and embedded Postgres stopped; nothing left running.")
    verdict = "everything ended as expected" if result.ok else "something did not end as expected"
    console.print(f"Demo finished in {seconds:.1f} s: {verdict}.")


def matched(report: dict[str, Any]) -> str:
    """The report's ``pull.matched``/``push.matched`` counts that are not 0, e.g.
    ``"rep_progressions pull.matched 40 · reps_airtable pull.matched 8"``."""
    return " · ".join(
        f"{m['name']} {stage}.matched {m[stage]['matched']}"
        for m in report["mappings"]
        for stage in ("pull", "push")
        if (m.get(stage) or {}).get("matched")
    )
