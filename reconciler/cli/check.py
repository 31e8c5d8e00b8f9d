"""``reconcile check``: one line per check, a mark and, on failure, a hint."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from reconciler.cli.app import app, console, marks
from reconciler.cli.run import ConfigPath

if TYPE_CHECKING:
    from reconciler.check import Check


def check_line(check: Check, *, color: bool) -> str:
    """The line of one check (rich markup; the text itself is escaped)."""
    from rich.markup import escape

    passed, failed = marks()
    mark = ("!" if check.warning else passed) if check.ok else failed
    if color:
        tint = ("yellow" if check.warning else "green") if check.ok else "red"
        mark = f"[{tint}]{mark}[/{tint}]"
    line = f"{mark} {escape(check.name)}"
    if check.detail:
        line += f": {escape(check.detail)}"
    if (check.warning or not check.ok) and check.hint:
        line += f" — hint: {escape(check.hint)}"
    return line


@app.command("check")
def check_command(config: ConfigPath = None) -> None:
    """Verify config, credentials, database schema and every mapped remote field.

    Prints one line per check. Exits 0 when all pass, 2 when a configuration check fails
    (config file, credentials, a missing field or column), else 3 (database or remote
    unreachable, credentials refused, schema not migrated).
    """
    from reconciler.check import exit_code, run_checks

    out = console(highlight=False, soft_wrap=True)
    checks = []
    for check in run_checks(config):
        out.print(check_line(check, color=out.is_terminal))
        checks.append(check)
    raise typer.Exit(exit_code(checks))
