"""What a stage works with: the mapping, its remote, the store, counters and failure handling."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from reconciler.engine.plan import PullPlan, PushPlan
from reconciler.mapping import Mapping
from reconciler.remotes.base import Remote
from reconciler.report import MappingResult, RecordErrorEntry
from reconciler.store.history import Failure, record_failures
from reconciler.store.sync import Store

Progress = Callable[[str, str, int], None]  # mapping, stage, records done


@dataclass
class Tuning:
    """Knobs of the retry bookkeeping."""

    max_attempts: int = 8
    retry_base_minutes: float = 5.0


@dataclass
class MappingContext:
    """One mapping's run: where stages find their collaborators and put their results."""

    mapping: Mapping
    remote: Remote
    store: Store
    result: MappingResult
    errors: list[RecordErrorEntry]
    tuning: Tuning = field(default_factory=Tuning)
    install_id: str = ""
    on_progress: Progress | None = None

    def progress(self, stage: str, done: int) -> None:
        """Report progress to whoever watches (a progress bar on a terminal)."""
        if self.on_progress is not None:
            self.on_progress(self.mapping.name, stage, done)

    def fail(self, items: Sequence[Failure]) -> None:
        """Report failed records and schedule their retries (inside the open unit of work)."""
        from datetime import timedelta

        if not items:
            return
        record_failures(
            self.store.conn,
            self.mapping.name,
            list(items),
            max_attempts=self.tuning.max_attempts,
            base_delay=timedelta(minutes=self.tuning.retry_base_minutes),
        )
        for item in items:
            self.errors.append(
                RecordErrorEntry(self.mapping.name, item.stage, item.record_key, item.message)
            )
            if item.stage == "pull":
                self.result.pull.failed += 1
            else:
                self.result.push.failed += 1

    def log_pull(self, plans: Sequence[PullPlan]) -> None:
        """Hook for the change log of applied pulls."""

    def log_push(self, plans: Sequence[PushPlan]) -> None:
        """Hook for the change log of applied pushes."""
