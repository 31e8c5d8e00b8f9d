"""One run: database, locks, window, both stages per mapping, run history, the report."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from reconciler.config import RunOptions, Settings
from reconciler.engine import window
from reconciler.engine.context import MappingContext, Progress, Tuning
from reconciler.engine.finish import after_complete_pull, finish_mapping
from reconciler.engine.lanes import lanes, side_by_side
from reconciler.engine.locks import LOCKED_BY_ANOTHER_RUN, run_locks
from reconciler.engine.pull import pull
from reconciler.engine.push import push
from reconciler.errors import (
    AuthError,
    MappingError,
    ReconcilerError,
    RemoteUnavailable,
    UsageError,
)
from reconciler.model import Mapping, iso_ms
from reconciler.remotes.base import Remote
from reconciler.remotes.factory import budget_key
from reconciler.remotes.pacing import PacerPool
from reconciler.report import MappingResult, RecordErrorEntry, RunReport, now_utc
from reconciler.store import database as store_database
from reconciler.store import history
from reconciler.store.changelog import ChangeLog
from reconciler.store.database import run_lock_name
from reconciler.store.log_reader import purge_expired
from reconciler.store.sql import refusal
from reconciler.store.sync import Store


class RemoteFactory(Protocol):
    """Builds the remote of a mapping (``reconciler.remotes.factory.build_remote``)."""

    def __call__(
        self, mapping: Mapping, settings: Settings, *, pacers: PacerPool | None = None
    ) -> Remote: ...


logger = logging.getLogger("reconciler")


def new_run_id(moment: datetime) -> str:
    """A sortable, unique run id."""
    return f"{moment:%Y%m%dT%H%M%S}Z-{secrets.token_hex(3)}"


def open_database(settings: Settings) -> Engine:
    """``DATABASE_URL`` (which must be migrated) or the embedded Postgres (migrated here)."""
    url = None if settings.database_url is None else settings.database_url.value
    return store_database.open_database(url, settings.home)


MAPPING_FAILURES = (RemoteUnavailable, AuthError, MappingError)


class Run:
    """A reconciliation run over the selected mappings.

    Args:
        options: the run options.
        settings: the resolved settings.
        mappings: each selected mapping with its skip reason (None when it runs).
        remote_factory: builds the remote of a mapping.
        on_progress: called as records are done, for progress display.
        should_stop: polled between batches (set by SIGTERM/SIGINT).
    """

    def __init__(
        self,
        options: RunOptions,
        settings: Settings,
        mappings: list[tuple[Mapping, str | None]],
        remote_factory: RemoteFactory,
        *,
        on_progress: Progress | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.options = options
        self.settings = settings
        self.mappings = mappings
        self.remote_factory = remote_factory
        self.on_progress = on_progress
        self.should_stop = should_stop
        started = now_utc()
        self.report = RunReport(new_run_id(started), started, options.lookback, options.dry_run)
        self.db_offset = timedelta(0)  # the database's clock minus this host's
        self.pacers = PacerPool()  # one budget per Airtable base and Twenty workspace
        self._report_lock = threading.Lock()
        self.change_log = ChangeLog(self.report.run_id)
        self.history_started = False  # the run's row is in the history, marked running
        self.history_finished = False  # and its end is recorded there

    def execute(self) -> RunReport:
        """Run to the end and return the report; never raises for run-level failures."""
        report = self.report
        for mapping, reason in self.mappings:
            report.mappings.append(MappingResult(mapping.name, mapping.remote, skipped=reason))
        try:
            engine = open_database(self.settings)
        except Exception as exc:
            self._fail(exc)
        else:
            try:
                self._with_database(engine)
            except Exception as exc:
                self._fail(exc)
            finally:
                engine.dispose()
        if report.finished_at is None:
            report.finish()
        return report

    def _fail(self, exc: Exception) -> None:
        """Say in the report why the run could not go on."""
        report = self.report
        if isinstance(exc, ReconcilerError):
            report.fatal = str(exc)
        elif isinstance(exc, (OperationalError, InterfaceError)):
            report.fatal = "database connection lost mid-run: " + refusal(exc)
        elif isinstance(exc, SQLAlchemyError):
            report.fatal = store_database.database_failure(exc)
        else:  # a bug must still leave a report and a clear exit code
            logger.debug("internal error", exc_info=True)  # shown with -v
            report.fatal = f"internal error: {type(exc).__name__}: {exc}"

    def _record_end(self, engine: Engine) -> None:
        """Record the end of a run that started in the history but failed before recording it,
        on a connection of its own (the run's may be broken): only a process killed outright
        leaves its run marked running (shown as interrupted). When even that fails (the
        database is gone), the report still says why the run failed."""
        if not self.history_started or self.history_finished:
            return
        try:
            with engine.begin() as conn:
                history.finish_run(conn, self.report.to_dict(), self.report.exit_code)
            self.history_finished = True
        except Exception:
            logger.debug("could not record the end of the run", exc_info=True)

    @contextmanager
    def _locks(self, conn: Connection) -> Iterator[bool]:
        """Hold the locks of the mappings that run and the run's own (``engine/locks.py``);
        yields whether the run may go on, having said in the report why not, or which
        mappings ``--skip-locked`` skipped."""
        names = [m.name for m, reason in self.mappings if reason is None]
        own = run_lock_name(self.report.run_id)
        with run_locks(conn, names, own, skip_locked=self.options.skip_locked) as locks:
            self.mappings = [
                (m, LOCKED_BY_ANOTHER_RUN if m.name in locks.skipped else reason)
                for m, reason in self.mappings
            ]
            for result in self.report.mappings:
                if result.name in locks.skipped:
                    result.skipped = LOCKED_BY_ANOTHER_RUN
            if locks.refusal is not None:
                self.report.locked = True
                self.report.fatal = locks.refusal
            yield locks.refusal is None

    def _with_database(self, engine: Engine) -> None:
        with engine.connect() as conn, self._locks(conn) as proceed:
            report = self.report
            if not proceed:
                return
            store = Store(conn, dry_run=self.options.dry_run)
            with store.unit():
                install = history.install_id(conn)
                db_now = conn.execute(select(func.clock_timestamp())).scalar_one()
                self.db_offset = db_now - now_utc()
                if not store.dry_run:
                    history.start_run(
                        conn, report.run_id, report.started_at, self.options.lookback, store.dry_run
                    )
            self.history_started = not store.dry_run  # committed with the unit above
            try:
                self._run(engine, store, install)
            except Exception as exc:
                if not self.history_started:
                    raise
                self._fail(exc)
                report.finish()
                self._record_end(engine)  # while this run's own lock still marks it alive

    def _run(self, engine: Engine, store: Store, install: str) -> None:
        """The run proper, once it is in the history: both stages of every mapping, then its
        end recorded (a dry run discards everything instead)."""
        report = self.report
        contexts = [
            self._context(store, mapping, install)
            for mapping, reason in self.mappings
            if reason is None
        ]
        try:
            with ExitStack() as connections:
                groups = self._lanes(contexts, engine, connections)
                self._stages(groups)
        finally:
            for ctx in contexts:
                ctx.remote.close()
        self._stopped_note()
        self._log_retention(store)
        report.finish()
        if store.dry_run:
            store.discard()
        else:
            with store.unit() as conn:
                history.finish_run(conn, report.to_dict(), report.exit_code)
            self.history_finished = True

    def _lanes(
        self, contexts: list[MappingContext], engine: Engine, connections: ExitStack
    ) -> list[list[MappingContext]]:
        """The mappings grouped into lanes that may work side by side (``engine/lanes.py``),
        each lane but the first on a database connection of its own. A dry run keeps one lane:
        its writes are never committed, so only its own connection could see them."""
        if self.options.dry_run:
            return [contexts] if contexts else []
        groups = lanes(
            contexts,
            lambda ctx: [
                budget_key(ctx.mapping, self.settings),
                ("table", ctx.mapping.local_table),
            ],
        )
        for group in groups[1:]:
            store = Store(connections.enter_context(engine.connect()))
            for ctx in group:
                ctx.store = store
        return groups

    def _stages(self, groups: list[list[MappingContext]]) -> None:
        """Stage 1 for every mapping, then stage 2 for every mapping: a change pulled into a
        table shared by several mappings (a hub) reaches the other remotes in the same run.
        Within a stage, the lanes work side by side."""
        stages = [
            (name, fn)
            for name, fn in (("pull", self._pull), ("push", self._push))
            if self.options.stage in (name, "both")
        ]
        for stage, run_stage in stages:

            def step(ctx: MappingContext, stage: str = stage, run_stage: Any = run_stage) -> None:
                if not ctx.result.failed and not self.should_stop():
                    ctx.result.stages.append(stage)
                    self._guarded(ctx, stage, run_stage)

            side_by_side(groups, step)

        def finish(ctx: MappingContext) -> None:
            if not ctx.result.failed:
                self._guarded(
                    ctx,
                    "push",
                    lambda ctx: finish_mapping(ctx, self.report.errors, full=self.options.full),
                )

        side_by_side(groups, finish)

    def _guarded(
        self, ctx: MappingContext, stage: str, run_stage: Callable[[MappingContext], None]
    ) -> None:
        """Run one stage of one mapping; a failure that stops the mapping is reported for it
        alone, and the other mappings go on."""
        try:
            self._ready(ctx)
            run_stage(ctx)
        except MAPPING_FAILURES as exc:
            ctx.result.failed = True
            self.report.errors.append(RecordErrorEntry(ctx.mapping.name, stage, None, str(exc)))

    def _stopped_note(self) -> None:
        if self.should_stop():
            self.report.errors.append(
                RecordErrorEntry(
                    "*",
                    "run",
                    None,
                    "stopped by a signal after finishing the current batch; the next run "
                    "continues from the recorded state",
                )
            )

    def _log_retention(self, store: Store) -> None:
        """Remove expired change log entries (bounded per run) and report the log's counts."""
        removed = purge_expired(store, timedelta(days=self.settings.log_retention_days))
        self.report.extra["change_log"] = {"written": self.change_log.written, "removed": removed}

    def _context(self, store: Store, mapping: Mapping, install: str) -> MappingContext:
        result = next(m for m in self.report.mappings if m.name == mapping.name)
        remote = self.remote_factory(mapping, self.settings, pacers=self.pacers)
        result.api = remote.stats
        return MappingContext(
            mapping,
            remote,
            store,
            result,
            self.report.errors,
            Tuning(max_attempts=self.settings.max_attempts),
            install,
            self.on_progress,
            journal=self.change_log,
            db_offset=self.db_offset,
        )

    def _ready(self, ctx: MappingContext) -> None:
        """Before a mapping's first stage: its table checked, its remote prepared (from what
        earlier runs kept of it, so that an unchanged remote costs no request, and a remote
        that refused the pace is not paced so again)."""
        if ctx.kept is not None:
            return
        try:
            ctx.store.table(ctx.mapping)
        except UsageError as exc:  # its table or a column missing: this mapping alone stops
            raise MappingError(f"{exc}; `reconcile check` lists what the mapping needs") from exc
        with ctx.store.unit() as conn:
            ctx.kept = history.remote_state_of(conn, ctx.mapping.name)
        ctx.result.unfilled = ctx.kept.unfilled(ctx.mapping)
        ctx.remote.pacer.adopt(ctx.kept.pacing)
        ctx.remote.prepare(ctx.kept.schema)

    def _pull(self, ctx: MappingContext) -> None:
        """Stage 1 of a mapping, over a window placed on the remote's clock; placed again once
        if the remote's first answer shows its clock elsewhere than assumed."""
        for attempt in (1, 2):
            span = self._window(ctx)
            try:
                live = pull(ctx, span, self.should_stop)
            except window.WindowMoved:
                if attempt == 2:
                    raise MappingError(
                        f"clock: {ctx.mapping.remote}'s clock moved by more than "
                        f"{span.tolerance.total_seconds():.0f} s between two answers; its "
                        "modified times cannot be placed in a window: try again later"
                    ) from None
                continue
            if live is not None:
                after_complete_pull(
                    ctx,
                    span,
                    live,
                    full=self.options.full,
                    mass_delete_share=self.settings.mass_delete_share,
                    allow_mass_delete=self.options.allow_mass_delete,
                )
            return

    def _window(self, ctx: MappingContext) -> window.Window:
        """The mapping's window on its remote's clock, noted in the report."""
        offset = self._clock_offset(ctx)
        mark = None
        if not self.options.full:
            with ctx.store.unit() as conn:
                mark = history.watermark(conn, ctx.mapping.name)
        span = window.place(
            self.report.started_at,
            offset,
            lookback=timedelta(minutes=self.options.lookback),
            watermark=mark,
            overlap=timedelta(minutes=self.settings.overlap_minutes),
            full=self.options.full,
        )
        ctx.result.first_window = not self.options.full and mark is None
        self._note_window(ctx.result, span)
        return span

    def _clock_offset(self, ctx: MappingContext) -> timedelta:
        """The remote's clock minus this host's, refused when too large to trust. Unknown (a
        first run), the clocks are assumed to agree: the listing's first answer shows whether
        they do, and the window is placed anew if not (one request more, once)."""
        offset = ctx.clock_offset or timedelta(0)
        limit = timedelta(minutes=self.settings.max_clock_offset_minutes)
        window.check_offset(offset, ctx.mapping.remote.capitalize(), limit=limit)
        ctx.result.clock_offset = offset
        return offset

    def _push(self, ctx: MappingContext) -> None:
        self._clock_offset(ctx)  # checked here too: a push compares the remote's clock
        push(ctx, self.should_stop)

    def _note_window(self, result: MappingResult, span: window.Window) -> None:
        result.window = {
            "since": iso_ms(span.since) if span.since else None,
            "until": iso_ms(span.until),
        }
        report = self.report
        with self._report_lock:  # lanes place their windows side by side
            if span.since is not None and (
                report.window_since is None or span.since < report.window_since
            ):
                report.window_since = span.since
            if report.window_until is None or span.until > report.window_until:
                report.window_until = span.until
