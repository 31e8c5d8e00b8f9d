"""What a stage works with: the mapping, its remote, the store, counters and failure handling."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from reconciler.engine.plan import PullPlan, PushPlan
from reconciler.model import Mapping
from reconciler.remotes.base import Remote
from reconciler.report import MappingResult, RecordErrorEntry
from reconciler.store.history import Failure, record_failures
from reconciler.store.sync import Store

Progress = Callable[[str, str, int], None]  # mapping, stage, records done


class Journal(Protocol):
    """Where a stage records what it decided, inside the unit of work that applies it.

    Every method runs on the open transaction, so an entry exists exactly when its change does.
    """

    def pulled(self, ctx: MappingContext, plans: Sequence[PullPlan]) -> None:
        """Remote records applied locally (inserted, updated, or kept by rule)."""

    def pushed(self, ctx: MappingContext, plans: Sequence[PushPlan]) -> None:
        """Local rows written to the remote (created or updated)."""

    def skipped(self, ctx: MappingContext, plans: Sequence[PushPlan]) -> None:
        """Local rows not pushed because the remote side is newer."""

    def failed(self, ctx: MappingContext, failures: Sequence[Failure], dead: set[str]) -> None:
        """Records that failed; ``dead`` holds the keys dead-lettered by this failure."""


class NullJournal:
    """Records nothing."""

    def pulled(self, ctx: MappingContext, plans: Sequence[PullPlan]) -> None:
        """Record nothing."""

    def pushed(self, ctx: MappingContext, plans: Sequence[PushPlan]) -> None:
        """Record nothing."""

    def skipped(self, ctx: MappingContext, plans: Sequence[PushPlan]) -> None:
        """Record nothing."""

    def failed(self, ctx: MappingContext, failures: Sequence[Failure], dead: set[str]) -> None:
        """Record nothing."""


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
    journal: Journal = field(default_factory=NullJournal)
    covered: bool = False  # a complete pull in this run brought every remote change into state

    def create_id(self, local_id: int) -> str:
        """The id a remote create uses for a local row: derived from the database's install id
        and the row, so a retried create cannot make a second record (the remote upserts on it),
        and a create that landed unrecorded can be recognised later."""
        namespace = uuid.UUID(self.install_id) if self.install_id else uuid.NAMESPACE_URL
        return str(uuid.uuid5(namespace, f"{self.mapping.name}:{local_id}"))

    def progress(self, stage: str, done: int) -> None:
        """Report progress to whoever watches (a progress bar on a terminal)."""
        if self.on_progress is not None:
            self.on_progress(self.mapping.name, stage, done)

    def fail(self, items: Sequence[Failure]) -> None:
        """Report failed records and schedule their retries (inside the open unit of work)."""
        if not items:
            return
        dead = record_failures(
            self.store.conn,
            self.mapping.name,
            list(items),
            max_attempts=self.tuning.max_attempts,
            base_delay=timedelta(minutes=self.tuning.retry_base_minutes),
        )
        self.journal.failed(self, items, dead)
        for item in items:
            self.errors.append(
                RecordErrorEntry(self.mapping.name, item.stage, item.record_key, item.message)
            )
            if item.stage == "pull":
                self.result.pull.failed += 1
            else:
                self.result.push.failed += 1
