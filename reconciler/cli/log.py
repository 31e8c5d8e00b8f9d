"""``reconcile log``: the change log, newest first, filtered by mapping, record, run and time."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reconciler.cli.app import JsonOut, app, console, open_database, stderr, utf8
from reconciler.errors import UsageError

if TYPE_CHECKING:
    from rich.table import Table

VALUE_WIDTH = 60  # a value longer than this is shortened in the table (never in --json)


def parse_moment(text: str | None, option: str) -> datetime | None:
    """An ISO-8601 date or datetime; one without a zone is taken as UTC."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{option}: expected an ISO-8601 datetime, got {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_local_key(text: str | None) -> tuple[str | None, int | None]:
    """``42`` (a local primary key in any mapped table) or ``table:42``."""
    if text is None:
        return None, None
    table, colon, key = text.strip().partition(":") if ":" in text else ("", "", text.strip())
    try:
        local_id = int(key)
    except ValueError:
        local_id = None
    if local_id is None or not -BIGINT_MAX - 1 <= local_id <= BIGINT_MAX or (colon and not table):
        raise UsageError(
            f"--local-key: expected a primary key (a whole number) or table:primary-key, "
            f"got {text!r}"
        )
    return table or None, local_id


BIGINT_MAX = 2**63 - 1  # primary keys are Postgres bigints


@app.command("log")
def log_command(
    mapping: Annotated[
        list[str] | None,
        typer.Option("--mapping", metavar="NAME", help="Only this mapping (repeatable)."),
    ] = None,
    remote_id: Annotated[
        str | None, typer.Option("--remote-id", metavar="ID", help="Only this remote record.")
    ] = None,
    local_key: Annotated[
        str | None,
        typer.Option("--local-key", metavar="KEY", help="Only this local row: PK or table:PK."),
    ] = None,
    run: Annotated[
        str | None, typer.Option("--run", metavar="RUN_ID", help="Only this run.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", metavar="DATETIME", help="Entries at or after (ISO).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="DATETIME", help="Entries at or before (ISO).")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, metavar="N", help="How many entries.")
    ] = 50,
    json_out: JsonOut = False,
) -> None:
    """The change log: every change a run applied or refused, newest first."""
    from reconciler.store.log_reader import LogFilter, read_log

    table, local_id = parse_local_key(local_key)
    where = LogFilter(
        mappings=tuple(mapping or ()),
        remote_id=remote_id,
        local_table=table,
        local_id=local_id,
        run_id=run,
        since=parse_moment(since, "--since"),
        until=parse_moment(until, "--until"),
        limit=limit,
    )
    engine = open_database()
    try:
        with engine.connect() as conn:
            entries = read_log(conn, where)
    finally:
        engine.dispose()
    out = console()
    if json_out:
        sys.stdout.write(json.dumps(entries, indent=2, ensure_ascii=not utf8(sys.stdout)) + "\n")
    elif not entries:
        stderr().print("no change log entries match", markup=False)
    elif out.is_terminal:
        out.print(log_table(entries))
    else:
        sys.stdout.write("".join(line + "\n" for e in entries for line in log_lines(e)))


def log_table(entries: list[dict[str, Any]]) -> Table:
    """One row per entry: when, run, mapping, stage, record, action, rule, and the fields.
    Cells are plain text: a value such as ``[red]x[/red]`` is shown as it is stored."""
    from rich.table import Table
    from rich.text import Text

    table = Table(show_lines=True)
    for column in ("when", "run", "mapping", "stage", "record", "action", "rule", "changes"):
        table.add_column(column, overflow="fold")
    for e in entries:
        record = "\n".join(k for k in (e["remote_id"], e["local_key"]) if k)
        cells = (
            e["logged_at"],
            e["run_id"],
            e["mapping"],
            e["stage"],
            record,
            e["action"],
            e["rule"] + (" (conflict)" if e["conflict"] else ""),
            _changes_text(e),
        )
        table.add_row(*(Text(cell) for cell in cells))
    return table


def log_lines(entry: dict[str, Any]) -> list[str]:
    """An entry as plain lines (for pipes and mail): a summary, then one indented line per field."""
    record = " ".join(k for k in (entry["remote_id"], entry["local_key"]) if k)
    rule = entry["rule"] + (" (conflict)" if entry["conflict"] else "")
    head = "  ".join(
        (entry["logged_at"], entry["run_id"], entry["mapping"], entry["stage"], entry["action"])
    )
    details = _changes_text(entry).splitlines()
    return [f"{head}  {rule}  {record}", *("    " + line for line in details)]


def _changes_text(entry: dict[str, Any]) -> str:
    lines = []
    for change in entry["changes"]:
        rule = "" if change["rule"] == entry["rule"] else f"  [{change['rule']}]"
        lines.append(f"{change['field']}: {_short(change['old'])} → {_short(change['new'])}{rule}")
    if entry["message"]:
        lines.append(entry["message"])
    return "\n".join(lines)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"
