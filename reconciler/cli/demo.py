"""``reconcile demo``: the whole job on embedded defaults, with a readable summary."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import typer

from reconciler.cli.app import app

if TYPE_CHECKING:
    from rich.console import Console

    from reconciler.demo import DemoResult

WIDTH = 120


@app.command("demo")
def demo_command() -> None:
    """Run the whole job on local emulators and an embedded Postgres, and show what happened.

    Starts Airtable and Twenty emulators in this process, an embedded Postgres under a fresh
    folder (inside RECONCILER_HOME when set, else a temporary one), seeds sample data, runs a
    full reconciliation, edits all three sides (with a conflict won by each side and an array
    edited on both), runs again, and stops everything. Exits 0 when everything ended as expected.
    """
    from rich.console import Console
    from rich.markup import escape

    from reconciler.demo import run_demo
    from reconciler.render import RunProgress

    console = Console(stderr=True, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=True, highlight=False, width=WIDTH)  # room for the tables
    started = time.monotonic()

    def say(message: str) -> None:
        console.print(f"[dim]·[/dim] {escape(message)}")

    with RunProgress(console, enabled=console.is_terminal) as progress:
        result = run_demo(os.environ.get("RECONCILER_HOME") or None, say=say, on_progress=progress)
    show(console, result, time.monotonic() - started)
    raise typer.Exit(0 if result.ok else 1)


def show(console: Console, result: DemoResult, seconds: float) -> None:
    """The runs' tables, the stories of the edits, and where the reports are."""
    from rich.markup import escape

    from reconciler.render import run_table, trouble_lines

    for run in result.runs:
        console.print()
        console.print(run_table(run.report, title=f"{run.label}: {run.report['status']}"))
        for line in trouble_lines(run.report):
            console.print(escape(line))
    console.print()
    console.print("[bold]What happened to the edits[/bold]")
    for story in result.stories:
        mark = "[green]✓[/green]" if story.ok else "[red]✗[/red]"
        console.print(f"{mark} [bold]{escape(story.title)}[/bold]: {escape(story.setup)}")
        console.print(f"    → {escape(story.outcome)}")
    console.print()
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
