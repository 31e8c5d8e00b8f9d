"""The run report (``report_version`` 1): typed stage results, JSON, exit code."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reconciler.errors import EXIT_LOCKED, EXIT_OK, EXIT_PARTIAL, EXIT_UNAVAILABLE
from reconciler.model import iso_ms
from reconciler.outcome import stopped_mapping
from reconciler.remotes.base import ApiStats

REPORT_VERSION = 1


@dataclass
class PullCounts:
    """Stage 1 counters of one mapping."""

    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    conflicts: int = 0
    skipped_local_newer: int = 0
    failed: int = 0
    matched: int = 0  # records linked to existing rows by natural key (match_on)


@dataclass
class PushCounts:
    """Stage 2 counters of one mapping."""

    pending: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped_remote_newer: int = 0
    failed: int = 0
    dead: int = 0
    matched: int = 0  # rows linked to existing records by natural key instead of created


@dataclass
class RecordErrorEntry:
    """One failed record (or a mapping that could not proceed, with ``record`` None)."""

    mapping: str
    stage: str
    record: str | None
    message: str


@dataclass
class MappingResult:
    """Everything one mapping did in a run."""

    name: str
    remote: str
    skipped: str | None = None
    pull: PullCounts = field(default_factory=PullCounts)
    push: PushCounts = field(default_factory=PushCounts)
    api: ApiStats = field(default_factory=ApiStats)
    window: dict[str, str | None] | None = None
    stages: list[str] = field(default_factory=list)  # the stages it got to, in order
    remote_deleted: int = 0
    remote_deleted_ids: list[str] = field(default_factory=list)
    failed: bool = False  # the mapping could not proceed (remote or database unavailable)
    clock_offset: timedelta | None = None  # the remote's clock minus this host's
    # Mapped columns rows synced before they were mapped hold no value for yet (``--full``).
    unfilled: list[str] = field(default_factory=list)
    # The mapping had no earlier window: this one reached back only ``--lookback`` minutes, so
    # records the remote held before that were not read (``--full`` reads them).
    first_window: bool = False
    # Fields the remote computes that held an error instead of a value, read as empty: field ->
    # error -> records (an Airtable formula's ``#ERROR!``, ``NaN``).
    error_values: dict[str, dict[str, int]] = field(default_factory=dict)

    def count_error_values(self, errored: Iterable[tuple[str, str]]) -> None:
        """Count fields a pulled record held an error in, each with its error."""
        for name, error in errored:
            errors = self.error_values.setdefault(name, {})
            errors[error] = errors.get(error, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        """The report's entry for this mapping."""
        return {
            "name": self.name,
            "remote": self.remote,
            "skipped": self.skipped,
            "pull": asdict(self.pull),
            "push": asdict(self.push),
            "api": asdict(self.api),
            "window": self.window,
            "stages": self.stages,
            "remote_deleted": self.remote_deleted,
            "remote_deleted_ids": self.remote_deleted_ids,
            "clock_offset_seconds": (
                None if self.clock_offset is None else round(self.clock_offset.total_seconds(), 1)
            ),
            "unfilled_fields": self.unfilled,
            "first_window": self.first_window,
            "error_values": self.error_values,
        }


def now_utc() -> datetime:
    """The current time, aware UTC."""
    return datetime.now(UTC)


@dataclass
class RunReport:
    """The report of one run; ``status`` and the exit code derive from what happened."""

    run_id: str
    started_at: datetime
    lookback_minutes: int
    dry_run: bool = False
    finished_at: datetime | None = None
    window_since: datetime | None = None
    window_until: datetime | None = None
    mappings: list[MappingResult] = field(default_factory=list)
    errors: list[RecordErrorEntry] = field(default_factory=list)
    locked: bool = False
    fatal: str | None = None  # why the run could not proceed
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """ok, partial, failed or locked."""
        if self.locked:
            return "locked"
        if self.fatal is not None or any(m.failed for m in self.mappings):
            return "failed"
        return "partial" if self.errors else "ok"

    @property
    def message(self) -> str | None:
        """Why the run failed: what stopped it, or else the first mapping that could not
        proceed (the others are in ``errors``); None when it did not fail."""
        if self.fatal is not None or self.status != "failed":
            return self.fatal
        stopped = [e for e in self.errors if e.record is None]
        if not stopped:
            return None
        first = stopped[0]
        more = f" (and {len(stopped) - 1} more, in errors)" if len(stopped) > 1 else ""
        return stopped_mapping(first.mapping, first.stage, first.message) + more

    @property
    def exit_code(self) -> int:
        """The process exit code this report stands for."""
        return {
            "ok": EXIT_OK,
            "partial": EXIT_PARTIAL,
            "failed": EXIT_UNAVAILABLE,
            "locked": EXIT_LOCKED,
        }[self.status]

    def finish(self) -> None:
        """Stamp the end of the run."""
        self.finished_at = now_utc()

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (``report_version`` 1)."""
        finished = self.finished_at or now_utc()
        window = None
        if self.window_until is not None:
            since = iso_ms(self.window_since) if self.window_since is not None else None
            window = {"since": since, "until": iso_ms(self.window_until)}
        return {
            "report_version": REPORT_VERSION,
            "run_id": self.run_id,
            "status": self.status,
            "dry_run": self.dry_run,
            "started_at": iso_ms(self.started_at),
            "finished_at": iso_ms(finished),
            "duration_ms": int((finished - self.started_at).total_seconds() * 1000),
            "lookback_minutes": self.lookback_minutes,
            "window": window,
            "mappings": [m.to_dict() for m in self.mappings],
            "errors": [asdict(e) for e in self.errors],
            "message": self.message,
            **self.extra,
        }

    def write(self, path: Path) -> None:
        """Write the JSON report atomically (a reader never sees half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
            tmp.replace(path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
