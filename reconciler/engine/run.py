"""One run: database, locks, window, both stages per mapping, run history, the report."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from reconciler.config import RunOptions, Settings
from reconciler.engine.context import MappingContext, Progress, Tuning
from reconciler.engine.deletes import sweep
from reconciler.engine.pull import pull
from reconciler.engine.push import push
from reconciler.errors import AuthError, ReconcilerError, RemoteUnavailable
from reconciler.model import Mapping, iso_ms
from reconciler.remotes.base import Remote
from reconciler.report import MappingResult, RecordErrorEntry, RunReport, now_utc
from reconciler.store import history
from reconciler.store.changelog import ChangeLog, purge_expired
from reconciler.store.database import (
    advisory_locks,
    connect,
    embedded_url,
    migrate,
    require_migrated,
    run_lock_name,
)
from reconciler.store.sync import Store

RemoteFactory = Callable[[Mapping, Settings], Remote]
logger = logging.getLogger("reconciler")


def new_run_id(moment: datetime) -> str:
    """A sortable, unique run id."""
    return f"{moment:%Y%m%dT%H%M%S}Z-{secrets.token_hex(3)}"


def open_database(settings: Settings) -> Engine:
    """``DATABASE_URL`` (which must be migrated) or the embedded Postgres (migrated here)."""
    embedded = settings.database_url is None
    url = (
        embedded_url(settings.home)
        if settings.database_url is None
        else settings.database_url.value
    )
    engine = connect(url)
    try:
        if embedded:
            migrate(engine)
        else:
            require_migrated(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _first_line(exc: Exception) -> str:
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _truncate_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


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
        self.change_log = ChangeLog(self.report.run_id)

    def execute(self) -> RunReport:
        """Run to the end and return the report; never raises for run-level failures."""
        report = self.report
        for mapping, reason in self.mappings:
            report.mappings.append(MappingResult(mapping.name, mapping.remote, skipped=reason))
        try:
            engine = open_database(self.settings)
            try:
                self._with_database(engine)
            finally:
                engine.dispose()
        except ReconcilerError as exc:
            report.fatal = str(exc)
        except (OperationalError, InterfaceError) as exc:
            report.fatal = "database connection lost mid-run: " + _first_line(exc)
        except SQLAlchemyError as exc:
            report.fatal = "the database refused a statement: " + _first_line(exc)
        except Exception as exc:  # a bug must still leave a report and a clear exit code
            logger.debug("internal error", exc_info=True)  # shown with -v
            report.fatal = f"internal error: {type(exc).__name__}: {exc}"
        if report.finished_at is None:
            report.finish()
        return report

    def _with_database(self, engine: Engine) -> None:
        names = [m.name for m, reason in self.mappings if reason is None]
        names.append(run_lock_name(self.report.run_id))  # marks this run alive while it lasts
        with engine.connect() as conn, advisory_locks(conn, names) as locked_all:
            report = self.report
            if not locked_all:
                report.locked = True
                report.fatal = "another run holds the lock; nothing was done"
                return
            store = Store(conn, dry_run=self.options.dry_run)
            with store.unit():
                install = history.install_id(conn)
                if not store.dry_run:
                    history.start_run(
                        conn, report.run_id, report.started_at, self.options.lookback, store.dry_run
                    )
            report.window_until = _truncate_ms(report.started_at)
            for mapping, reason in self.mappings:
                if reason is None and not self.should_stop():
                    self._run_mapping(store, mapping, install)
            if self.should_stop():
                report.errors.append(
                    RecordErrorEntry(
                        "*",
                        "run",
                        None,
                        "stopped by a signal after finishing the current batch; the next run "
                        "continues from the recorded state",
                    )
                )
            self._log_retention(store)
            report.finish()
            if store.dry_run:
                store.discard()
            else:
                with store.unit():
                    history.finish_run(conn, report.to_dict(), report.exit_code)

    def _log_retention(self, store: Store) -> None:
        """Remove expired change log entries (bounded per run) and report the log's counts."""
        removed = purge_expired(store, timedelta(days=self.settings.log_retention_days))
        self.report.extra["change_log"] = {"written": self.change_log.written, "removed": removed}

    def _since(self, store: Store, mapping: Mapping) -> datetime | None:
        if self.options.full:
            return None
        assert self.report.window_until is not None
        since = self.report.window_until - timedelta(minutes=self.options.lookback)
        with store.unit() as conn:
            mark = history.watermark(conn, mapping.name)
        if mark is not None:
            since = min(since, mark - timedelta(minutes=self.settings.overlap_minutes))
        return _truncate_ms(since)

    def _run_mapping(self, store: Store, mapping: Mapping, install: str) -> None:
        result = next(m for m in self.report.mappings if m.name == mapping.name)
        remote = self.remote_factory(mapping, self.settings)
        result.api = remote.stats
        ctx = MappingContext(
            mapping,
            remote,
            store,
            result,
            self.report.errors,
            Tuning(max_attempts=self.settings.max_attempts),
            install,
            self.on_progress,
            journal=self.change_log,
        )
        since = self._since(store, mapping)
        self._note_window(result, since)
        try:
            self._stages(ctx, since)
        finally:
            remote.close()

    def _stages(self, ctx: MappingContext, since: datetime | None) -> None:
        store, mapping, result = ctx.store, ctx.mapping, ctx.result
        stage = "pull"
        try:
            store.table(mapping)
            if self.options.stage in ("pull", "both"):
                live = pull(ctx, since, self.should_stop)
                if live is not None:
                    self._after_complete_pull(ctx, live)
            stage = "push"
            if self.options.stage in ("push", "both"):
                push(ctx, self.should_stop)
            self._dead_letters(ctx)
        except (RemoteUnavailable, AuthError) as exc:
            result.failed = True
            self.report.errors.append(RecordErrorEntry(mapping.name, stage, None, str(exc)))

    def _after_complete_pull(self, ctx: MappingContext, live: set[str]) -> None:
        """Move the watermark; let push trust the state; look for deletions after a sweep."""
        ctx.covered = True  # every remote change up to window.until is now in the sync state
        until = self.report.window_until
        if until is not None and not ctx.store.dry_run:
            with ctx.store.unit() as conn:
                history.set_watermark(conn, ctx.mapping.name, until)
        if self.options.full:
            sweep(
                ctx,
                live,
                max_share=self.settings.mass_delete_share,
                allow_mass=self.options.allow_mass_delete,
            )

    def _note_window(self, result: MappingResult, since: datetime | None) -> None:
        until = self.report.window_until
        result.window = {
            "since": iso_ms(since) if since else None,
            "until": iso_ms(until) if until else None,
        }
        current = self.report.window_since
        if since is not None and (current is None or since < current):
            self.report.window_since = since

    def _dead_letters(self, ctx: MappingContext) -> None:
        with ctx.store.unit() as conn:
            dead = history.dead_letters(conn, ctx.mapping.name)
        reported = {
            (e.stage, e.record) for e in self.report.errors if e.mapping == ctx.mapping.name
        }
        ctx.result.push.dead = sum(d.stage == "push" for d in dead)
        for item in dead:
            if (item.stage, item.record_key) not in reported:
                self.report.errors.append(
                    RecordErrorEntry(
                        ctx.mapping.name,
                        item.stage,
                        item.record_key,
                        f"dead-lettered after {item.attempts} attempt(s): {item.message}",
                    )
                )
