"""Human output on stderr, fitted to where it runs.

On a terminal: progress bars per mapping and stage while a run works, then a summary table. With
no terminal (cron, CI): one concise line per mapping, plus one per error. ``quiet`` keeps only
trouble; ``verbose`` adds each mapping's window and API counts.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from reconciler.outcome import run_failure

TABLE_COLUMNS = (
    "mapping",
    "stage",
    "records",
    "new",
    "updated",
    "unchanged",
    "conflicts",
    "skipped",
    "failed",
    "requests",
)
NOT_RUN = "not run"  # a mapping that got to no stage (the run stopped before it)

TABLE_CAPTION = (
    "records: read (pull) or with a change to send (push) · new: inserted (pull) or created "
    "remotely (push) · unchanged: nothing to write (push: rows checked, already equal) · "
    "skipped: the other side was newer"
)


def _plain(console: Console, line: str) -> None:
    console.print(line, markup=False, highlight=False, soft_wrap=True)


# -- one run -----------------------------------------------------------------------------------


def mapping_line(m: dict[str, Any]) -> str:
    """One concise line for a mapping's part of a run."""
    if m["skipped"]:
        return f"{m['name']}: skipped ({m['skipped']})"
    p, q = m["pull"], m["push"]
    line = (
        f"{m['name']}: pulled {p['fetched']} (+{p['inserted']} ~{p['updated']}, "
        f"{p['conflicts']} conflicts, {p['failed']} failed); pushed "
        f"{q['created'] + q['updated']} of {q['pending']} (+{q['created']} ~{q['updated']}, "
        f"{q['skipped_remote_newer']} skipped, {q['failed']} failed, {q['dead']} dead)"
    )
    if m.get("remote_deleted"):
        line += f"; {m['remote_deleted']} deleted remotely"
    return line


def detail_lines(m: dict[str, Any]) -> list[str]:
    """The verbose details of a mapping: its window and its API counts."""
    if m["skipped"]:
        return []
    window = m.get("window")
    if window:
        since = window.get("since") or "the beginning (full read)"
        span = f"window {since} .. {window.get('until')}"
    else:
        span = "no pull window"
    a = m["api"]
    return [
        f"  {m['name']}: {span}",
        f"  {m['name']}: api {a['requests']} requests, {a['retries']} retries, "
        f"{a['throttled']} throttled",
    ]


def ran(report: dict[str, Any], m: dict[str, Any]) -> bool:
    """Whether the mapping got to a stage (a run that could not reach the database, or found it
    locked, ran none). Reports written before mappings listed their ``stages`` tell it by the
    run's window, which a run computes once it gets to its mappings' pulls."""
    if "stages" in m:
        return bool(m["stages"])
    return report.get("window") is not None


def trouble_lines(report: dict[str, Any]) -> list[str]:
    """Why a run did not go through: its fatal message and every error."""
    lines = []
    message = run_failure(report)
    if message:
        lines.append(f"reconcile: {report['status']}: {message}")
    for e in report["errors"]:
        where = f" {e['record']}" if e["record"] else ""
        lines.append(f"error: {e['mapping']} {e['stage']}{where}: {e['message']}")
    return lines


def note_lines(report: dict[str, Any]) -> list[str]:
    """What a person may want to do after the run: a remote that refused requests for their
    rate; a mapping's first window, which left out the records its remote held before; fields
    mapped since a mapping's last full read, which rows synced before hold no value for until
    their records change; computed fields that held an error instead of a value."""
    lines = []
    for m in report["mappings"]:
        lines += _throttled_note(m, kept=not report["dry_run"])
        if m.get("first_window"):
            remote = m["remote"].capitalize()
            lines.append(
                f"note: {m['name']}: a first run reads only its window (the last "
                f"{report['lookback_minutes']} min): records {remote} held before come in as "
                f"they change; `reconcile --full --mapping {m['name']}` reads them all now"
            )
        unfilled = m.get("unfilled_fields")
        if unfilled:
            lines.append(
                f"note: {m['name']}: {', '.join(unfilled)} mapped since the last full read: "
                "rows synced before fill in as their records change; "
                f"`reconcile --full --mapping {m['name']}` fills them in now"
            )
        for name, errors in (m.get("error_values") or {}).items():
            most = sorted(errors.items(), key=lambda item: (-item[1], item[0]))
            held = ", ".join(f"{error} in {count}" for error, count in most)
            remote = m["remote"].capitalize()
            lines.append(
                f"note: {m['name']}: {name} holds an error in {remote} instead of a value "
                f"({held}), read as empty: mend its formula there; a formula mended moves no "
                f"record's modified time, so `reconcile --full --mapping {m['name']}` then reads "
                "the values"
            )
    return lines


# What a remote's 429 counts against, and the setting that shares it with other clients.
_LIMITED = {
    "airtable": ("base", "AIRTABLE_RATE_LIMIT"),
    "twenty": ("workspace", "TWENTY_RATE_LIMIT"),
}


def _throttled_note(m: dict[str, Any], *, kept: bool) -> list[str]:
    """A mapping whose remote refused requests for their rate: the run slowed down (and the
    next week's runs start slower, see ``Pacer.refused``); another client of the same limit
    is the likely cause when it happens again."""
    refused = (m.get("api") or {}).get("throttled")
    if not refused:
        return []
    scope, setting = _LIMITED[m["remote"]]
    requests = "request" if refused == 1 else "requests"
    later = ", and the next week's runs keep that pace" if kept else ""
    return [
        f"note: {m['name']}: {m['remote'].capitalize()} refused {refused} {requests} for their "
        f"rate (429): the run slowed its pace{later}; if other clients share the {scope}'s "
        f"limit, lower {setting} (or the mapping's rate_limit) to leave them their share"
    ]


def summary_lines(report: dict[str, Any], *, verbose: bool = False) -> list[str]:
    """One concise line per mapping (plus details when verbose), for cron mail and logs."""
    lines = []
    if verbose:
        lines.append(
            f"run {report['run_id']}: {report['status']}"
            + (" (dry run)" if report["dry_run"] else "")
            + f" in {report['duration_ms']} ms"
        )
    for m in report["mappings"]:
        if not m["skipped"] and not ran(report, m):
            lines.append(f"{m['name']}: {NOT_RUN}")
            continue
        lines.append(mapping_line(m))
        if verbose:
            lines.extend(detail_lines(m))
    return lines


def run_table(report: dict[str, Any], title: str | None = None) -> Table:
    """A table for one run: one row per mapping and stage."""
    heading = title or f"run {report['run_id']} — {report['status']}"
    skipped = [f"{m['name']} skipped: {m['skipped']}" for m in report["mappings"] if m["skipped"]]
    table = Table(
        title=heading + (" (dry run)" if report["dry_run"] else ""),
        caption=escape("\n".join([*skipped, TABLE_CAPTION])),
    )
    for col in TABLE_COLUMNS:
        table.add_column(col, justify="left" if col in ("mapping", "stage") else "right")
    for m in report["mappings"]:
        if m["skipped"] or not ran(report, m):
            table.add_row(m["name"], "skipped" if m["skipped"] else NOT_RUN, *[""] * 8)
            continue
        p, q = m["pull"], m["push"]
        pull = (p["fetched"], p["inserted"], p["updated"], p["unchanged"], p["conflicts"])
        table.add_row(
            m["name"],
            "pull",
            *(str(n) for n in pull),
            str(p["skipped_local_newer"]),
            str(p["failed"]),
            str(m["api"]["requests"]),
        )
        push = (q["pending"], q["created"], q["updated"], q["unchanged"])
        dead = f" (+{q['dead']} dead)" if q["dead"] else ""
        table.add_row(
            "",
            "push",
            *(str(n) for n in push),
            "",
            str(q["skipped_remote_newer"]),
            f"{q['failed']}{dead}",
            "",
        )
    return table


def print_run(console: Console, report: dict[str, Any], title: str | None = None) -> None:
    """The run's table on the console, or, where the table does not fit (a narrow terminal),
    its title and one line per mapping: a table squeezed to fit would cut the mapping names
    and headers to "rep_…" and "unch…"."""
    table = run_table(report, title)
    if _fits(console, table):
        console.print(table)
        return
    if title:
        _plain(console, title)
    for line in summary_lines(report):
        _plain(console, line)


def _fits(console: Console, table: Table) -> bool:
    """Whether every cell of the table shows whole at the console's width."""
    unbounded = console.options.update_width(10_000)  # its natural width, not the console's
    return console.measure(table, options=unbounded).maximum <= console.width


def render_table(console: Console, report: dict[str, Any], *, verbose: bool = False) -> None:
    """The summary table of a run, then its errors (and details when verbose)."""
    print_run(console, report)
    if verbose:
        for m in (m for m in report["mappings"] if ran(report, m)):
            for line in detail_lines(m):
                _plain(console, line)
    for e in report["errors"]:
        where = f" {e['record']}" if e["record"] else ""
        text = f"{e['mapping']} {e['stage']}{where}: {e['message']}"
        console.print(f"[red]error[/red] {escape(text)}", markup=True, highlight=False)


def render_summary(
    console: Console,
    report: dict[str, Any],
    *,
    quiet: bool,
    verbose: bool = False,
    report_path: str | None = None,
) -> None:
    """The run summary where it runs: a table on a terminal, plain lines otherwise.

    Args:
        console: where to print (stderr); its ``is_terminal`` picks the table or the lines.
        report: the JSON run report.
        quiet: print only trouble (the fatal message and the errors), nothing on success.
        verbose: add each mapping's window and API counts, and the report's path.
        report_path: where the report was written.
    """
    if quiet:
        for line in trouble_lines(report):
            _plain(console, line)
        return
    message = run_failure(report)
    if message:
        _plain(console, f"reconcile: {report['status']}: {message}")
    if console.is_terminal:
        render_table(console, report, verbose=verbose)
    else:
        for line in summary_lines(report, verbose=verbose):
            _plain(console, line)
        for line in trouble_lines({**report, "message": None}):
            _plain(console, line)
    for line in note_lines(report):
        _plain(console, line)
    if report_path and (console.is_terminal or verbose):
        _plain(console, f"report: {report_path}")


# -- progress ----------------------------------------------------------------------------------


class RunProgress:
    """Progress bars on a terminal, one per mapping and stage, fed by the engine's callback.

    Use as a context manager; the object itself is the ``on_progress`` callback. Disabled (no
    terminal, or quiet), it accepts the calls and shows nothing.
    """

    def __init__(self, console: Console, *, enabled: bool) -> None:
        self._progress = (
            Progress(
                SpinnerColumn(),
                TextColumn("{task.description:<28}"),
                BarColumn(),
                TextColumn("{task.completed:>8,.0f} records"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            if enabled
            else None
        )
        self._tasks: dict[tuple[str, str], TaskID] = {}
        self._current: dict[str, TaskID] = {}  # per mapping: lanes run side by side

    @property
    def display(self) -> Progress | None:
        """The live display (None when disabled)."""
        return self._progress

    def __enter__(self) -> RunProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, mapping: str, stage: str, done: int) -> None:
        """Count ``done`` more records for a mapping's stage."""
        progress = self._progress
        if progress is None:
            return
        key = (mapping, stage)
        if key not in self._tasks:
            self._finish(mapping)
            self._tasks[key] = progress.add_task(f"{mapping} {stage}", total=None)
        self._current[mapping] = self._tasks[key]
        progress.advance(self._current[mapping], done)

    def _finish(self, mapping: str) -> None:
        """Show a mapping's previous stage as done."""
        current = self._current.get(mapping)
        if self._progress is not None and current is not None:
            task = self._progress.tasks[current]
            self._progress.update(current, total=max(task.completed, 1))


# -- run history -------------------------------------------------------------------------------


def _totals(item: dict[str, Any]) -> dict[str, int]:
    totals = {"pulled": 0, "pushed": 0, "conflicts": 0, "failed": 0}
    for m in item.get("mappings", []):
        if m.get("skipped"):
            continue
        p, q = m["pull"], m["push"]
        totals["pulled"] += p["inserted"] + p["updated"]
        totals["pushed"] += q["created"] + q["updated"]
        totals["conflicts"] += p["conflicts"]
        totals["failed"] += p["failed"] + q["failed"]
    return totals


def _window(item: dict[str, Any]) -> str:
    window = item.get("window") or {}
    if not window.get("until"):
        return "—"
    since = (window.get("since") or "full")[:19].replace("T", " ")
    return f"{since} .. {window['until'][11:19]}"


def _duration(item: dict[str, Any]) -> str:
    ms = item.get("duration_ms")
    return "running" if ms is None else f"{ms / 1000:.1f} s"


def history_row(item: dict[str, Any]) -> list[str]:
    """The cells of one run in the history: id, status, window, counts, duration, errors."""
    totals = _totals(item)
    return [
        item["run_id"],
        item["status"] + (" (dry run)" if item.get("dry_run") else ""),
        _window(item),
        *(str(totals[k]) for k in ("pulled", "pushed", "conflicts", "failed")),
        _duration(item),
        str(len(item.get("errors", []))),
    ]


HISTORY_COLUMNS = (
    "run",
    "status",
    "window (UTC)",
    "pulled",
    "pushed",
    "conflicts",
    "failed",
    "duration",
    "errors",
)


def render_runs(console: Console, items: list[dict[str, Any]]) -> None:
    """The run history, newest first: a table on a terminal, one line per run otherwise."""
    if not items:
        _plain(console, "no runs yet")
        return
    if console.is_terminal:
        reasons = [f"{i['run_id']}: {i['message']}" for i in items if i.get("message")]
        table = Table(title="runs, newest first", caption=escape("\n".join(reasons)) or None)
        for col in HISTORY_COLUMNS:
            table.add_column(col, justify="left" if col in HISTORY_COLUMNS[:3] else "right")
        for item in items:
            table.add_row(*history_row(item))
        console.print(table)
        return
    for item in items:
        cells = dict(zip(HISTORY_COLUMNS, history_row(item), strict=True))
        why = f"  — {item['message']}" if item.get("message") else ""
        _plain(
            console,
            f"{cells['run']}  {cells['status']:<8}  window {cells['window (UTC)']}  "
            f"pulled {cells['pulled']}  pushed {cells['pushed']}  "
            f"conflicts {cells['conflicts']}  failed {cells['failed']}  "
            f"{cells['duration']}  errors {cells['errors']}{why}",
        )
