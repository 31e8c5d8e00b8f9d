"""What a stage works with: the mapping, its remote, the store, counters and failure handling."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from reconciler.engine.plan import PullPlan, PushPlan
from reconciler.model import Mapping
from reconciler.remotes.base import Remote
from reconciler.report import MappingResult, RecordErrorEntry
from reconciler.store.history import (
    Failure,
    RemoteState,
    clear_failures,
    dead_letter_message,
    record_failures,
)
from reconciler.store.sync import Store

Progress = Callable[[str, str, int], None]  # mapping, stage, records done
REPORTED_IDS = 100  # the report lists at most this many ids of records deleted remotely


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

    def failed(
        self, ctx: MappingContext, failures: Sequence[Failure], dead: Container[str]
    ) -> None:
        """Records that failed; ``dead`` holds the keys dead-lettered by this failure."""

    def deleted(self, ctx: MappingContext, stage: str, marked: Sequence[tuple[str, int]]) -> None:
        """Rows marked as deleted remotely, as ``(remote_id, local_id)`` pairs."""


class NullJournal:
    """Records nothing."""

    def pulled(self, ctx: MappingContext, plans: Sequence[PullPlan]) -> None:
        """Record nothing."""

    def pushed(self, ctx: MappingContext, plans: Sequence[PushPlan]) -> None:
        """Record nothing."""

    def skipped(self, ctx: MappingContext, plans: Sequence[PushPlan]) -> None:
        """Record nothing."""

    def failed(
        self, ctx: MappingContext, failures: Sequence[Failure], dead: Container[str]
    ) -> None:
        """Record nothing."""

    def deleted(self, ctx: MappingContext, stage: str, marked: Sequence[tuple[str, int]]) -> None:
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
    # The end of this run's complete pull window (on the remote's clock): every remote change up
    # to it is in the state. None when no complete pull ran.
    pulled_until: datetime | None = None
    kept: RemoteState | None = None  # what earlier runs kept of the remote, once prepared
    db_offset: timedelta = timedelta(0)  # the database's clock minus this host's
    failed_keys: set[tuple[str, str]] = field(default_factory=set)  # (stage, key) this run

    @property
    def clock_offset(self) -> timedelta | None:
        """The remote's clock minus this host's: as its answers in this run show it, else as
        kept from an earlier run, else unknown."""
        seen = self.remote.clock.offset
        if seen is None and self.kept is not None:
            return self.kept.clock_offset
        return seen

    @property
    def skew(self) -> timedelta:
        """The remote's clock minus the database's: remote modified times are compared with
        local ``updated_at`` (stamped by the database) on one clock."""
        offset = self.clock_offset
        return (timedelta(0) if offset is None else offset) - self.db_offset

    def create_id(self, local_id: int, deleted_at: datetime | None = None) -> str:
        """The id a remote create uses for a local row: derived from the database's install id
        and the row, so a retried create cannot make a second record (the remote upserts on it),
        and a create that landed unrecorded can be recognised later.

        A row marked deleted remotely whose key a person cleared (``deleted_at``, its
        ``remote_deleted_at``) is created again under an id derived from that mark too: the
        deleted record may hold the row's first id, and an upsert on it would restore that
        record instead of creating one."""
        namespace = uuid.UUID(self.install_id) if self.install_id else uuid.NAMESPACE_URL
        name = f"{self.mapping.name}:{local_id}"
        if deleted_at is not None:
            name += f":{deleted_at.astimezone(UTC).isoformat()}"
        return str(uuid.uuid5(namespace, name))

    def progress(self, stage: str, done: int) -> None:
        """Report progress to whoever watches (a progress bar on a terminal)."""
        if self.on_progress is not None:
            self.on_progress(self.mapping.name, stage, done)

    def mark_gone(
        self, stage: str, remote_ids: Sequence[str], *, links: Sequence[tuple[int, str]] = ()
    ) -> None:
        """Mark the rows of records deleted remotely (inside the open unit of work): rows are
        kept, never deleted, and a marked row is never pushed, so the record is never recreated.
        The records' failures are forgotten: neither stage retries them.

        Args:
            stage: the stage that found out.
            remote_ids: the deleted records' ids.
            links: ``(local_id, remote_id)`` pairs to record first in rows that hold no id yet.
        """
        if links:
            self.store.link(self.mapping, links)
        for failing in ("pull", "push"):  # nothing of a deleted record is retried
            clear_failures(self.store.conn, self.mapping.name, failing, list(remote_ids))
        marked = self.store.mark_remote_deleted(self.mapping, remote_ids) if remote_ids else []
        if not marked:
            return
        self.result.remote_deleted += len(marked)
        room = max(0, REPORTED_IDS - len(self.result.remote_deleted_ids))
        self.result.remote_deleted_ids.extend(rid for rid, _ in marked[:room])
        self.journal.deleted(self, stage, marked)

    def fail(self, items: Sequence[Failure]) -> None:
        """Report failed records and schedule their retries (inside the open unit of work).

        A record fails once a run and stage: met again in the same run (the push stage reads
        records the pull stage failed), it is neither reported again nor counted as another
        attempt (``RECONCILER_MAX_ATTEMPTS`` counts runs)."""
        items = [i for i in items if (i.stage, i.record_key) not in self.failed_keys]
        self.failed_keys.update((i.stage, i.record_key) for i in items)
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
            message = item.message
            if item.record_key in dead:  # worded as every later run lists it
                message = dead_letter_message(dead[item.record_key], message)
            self.errors.append(
                RecordErrorEntry(self.mapping.name, item.stage, item.record_key, message)
            )
            if item.stage == "pull":
                self.result.pull.failed += 1
            else:
                self.result.push.failed += 1
