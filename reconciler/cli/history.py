"""``reconcile runs``: the run history."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from reconciler.cli.app import JsonOut, app, console, open_database


@app.command("runs")
def runs_command(
    limit: Annotated[int, typer.Option("--limit", min=1, metavar="N", help="How many runs.")] = 10,
    json_out: JsonOut = False,
) -> None:
    """The last N runs from the run history, newest first."""
    from reconciler.model import iso_ms
    from reconciler.render import render_runs
    from reconciler.store.history import recent_runs

    engine = open_database()
    with engine.connect() as conn:
        rows = recent_runs(conn, limit)
    engine.dispose()
    items = [
        r["report"]
        or {"run_id": r["run_id"], "status": r["status"], "started_at": iso_ms(r["started_at"])}
        for r in rows
    ]
    if json_out:
        sys.stdout.write(json.dumps(items, indent=2) + "\n")
        return
    render_runs(console(), items)
