"""``python -m bench --profile NAME``: one run done in-process under cProfile.

The data is prepared as the scenario of the same name prepares it, but the measured run calls
``reconciler.cli.main`` in this process (no latency, no limits), so the profile shows where the
local time goes. The emulators run in this process too; cProfile only follows the main thread.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import os
import pstats
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, event

from bench.lab import Lab
from bench.measure import breakdown
from bench.scale import Scale, say
from bench.seeding import OLD_MINUTES, edit_leads, seed_leads, seed_progressions

TOP = 35


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set the process environment to ``values`` for the duration of the block."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class SqlTimer:
    """Wall time spent in each SQL statement (by its text), from SQLAlchemy's cursor events."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._started: list[float] = []

    def before(self, *args: Any) -> None:
        """Note when a statement starts."""
        self._started.append(time.perf_counter())

    def after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        """Add a finished statement's time to its total."""
        key = " ".join(statement.split())[:150]
        self.seconds[key] += time.perf_counter() - self._started.pop()
        self.calls[key] += 1

    @contextlib.contextmanager
    def listening(self) -> Iterator[SqlTimer]:
        """Time every statement of every engine while the block runs."""
        event.listen(Engine, "before_cursor_execute", self.before)
        event.listen(Engine, "after_cursor_execute", self.after)
        try:
            yield self
        finally:
            event.remove(Engine, "before_cursor_execute", self.before)
            event.remove(Engine, "after_cursor_execute", self.after)

    def table(self, top: int = 15) -> str:
        """The statements that took longest in all, one per line."""
        ranked = sorted(self.seconds.items(), key=lambda item: -item[1])[:top]
        return "\n".join(
            f"{seconds:8.3f} s {self.calls[sql]:6d} calls  {sql}" for sql, seconds in ranked
        )


def run_profiled(lab: Lab, *args: str) -> tuple[int, pstats.Stats, SqlTimer]:
    """Run ``reconcile ARGS`` in-process under cProfile; returns its exit code, the profile and
    the time spent per SQL statement."""
    from reconciler.cli import main

    profiler = cProfile.Profile()
    code = 0
    report = str(lab.home / "profiled-report.json")
    timer = SqlTimer()
    with (
        environment(lab.environment()),
        contextlib.redirect_stderr(io.StringIO()),
        timer.listening(),
    ):
        profiler.enable()
        try:
            main([*args, "-q", "--report", report])
        except SystemExit as exc:
            code = int(exc.code or 0)
        finally:
            profiler.disable()
    return code, pstats.Stats(profiler), timer


def _table(stats: pstats.Stats, order: str) -> str:
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.strip_dirs().sort_stats(order).print_stats(TOP)
    return out.getvalue()


def profile(
    name: str, scale: Scale, admin_url: str | None = None, records: int | None = None
) -> str:
    """Prepare the data of scenario ``name``, profile its measured run, return the report.

    Args:
        name: ``pull``, ``push`` or ``noop``.
        scale: the scale whose sizes are used (throughput, push and noop sizes).
        admin_url: an existing Postgres server to use instead of starting an embedded one.
        records: a size to use instead of the scale's.
    """
    with Lab(admin_url) as lab, lab.scenario() as db:
        if name == "pull":
            seed_leads(lab.airtable, records or scale.throughput)
            args: tuple[str, ...] = ("--stage", "pull", "--mapping", "leads")
        elif name == "push":
            seed_leads(lab.airtable, records or scale.push)
            lab.reconcile_ok("--mapping", "leads")
            edit_leads(db, records or scale.push)
            args = ("--stage", "push", "--mapping", "leads")
        else:
            seed_leads(lab.airtable, records or scale.noop, age_minutes=OLD_MINUTES)
            seed_progressions(lab.twenty, records or scale.noop, age_minutes=OLD_MINUTES)
            lab.reconcile_ok("--full")
            lab.postgres.settle(lab.database_url)  # as the noop scenario does
            args = ()
        lab.reset_logs()
        say(f"profiling `reconcile {' '.join(args)}` in-process")
        code, stats, sql = run_profiled(lab, *args)
        requests = f"airtable: {breakdown(lab.airtable)}; twenty: {breakdown(lab.twenty)}"
    return "\n".join(
        [
            f"profile of `reconcile {' '.join(args)}` ({name}, {scale.name} scale): exit {code}",
            f"requests: {requests}",
            "",
            "== SQL statements by total time ==",
            sql.table(),
            "",
            f"== by cumulative time (top {TOP}) ==",
            _table(stats, "cumulative"),
            f"== by own time (top {TOP}) ==",
            _table(stats, "tottime"),
        ]
    )
