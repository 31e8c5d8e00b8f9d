"""Typed records passed between the remotes, the store and the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Values = dict[str, Any]  # column -> canonical value


@dataclass(frozen=True)
class RemoteRecord:
    """A remote record as the engine sees it: canonical values keyed by local column.

    ``error`` is set when the record could not be typed (a text in a number field, invalid JSON);
    such a record fails alone. ``keep`` holds wire values that a write must send back as they
    are, or the remote would change them (Twenty's ``position``). ``errored`` names the fields
    the remote computes that hold an error instead of a value (an Airtable formula's
    ``#ERROR!``), each with that error: they read as empty.
    """

    id: str
    modified_at: datetime
    values: Values
    error: str | None = None
    deleted: bool = False
    keep: dict[str, Any] = field(default_factory=dict, compare=False)
    errored: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SyncState:
    """What the last successful sync of one record saw (the shadow copy).

    ``shadow`` holds the remote's values as last seen or written, per column.
    """

    remote_id: str | None
    remote_modified_at: datetime | None
    local_updated_at: datetime | None
    shadow: Values
    pending: bool = False


@dataclass(frozen=True)
class LocalRow:
    """A row of a mapped local table with its sync state (None when never synced).

    ``error`` is set when a value could not be made canonical (a number or a time no remote
    can hold, such as NaN or infinity); its column is then left out of ``values``, and the
    row's record fails alone, in either stage.
    """

    local_id: int
    remote_id: str | None
    updated_at: datetime
    values: Values
    state: SyncState | None = None
    remote_deleted_at: datetime | None = None  # when it was marked deleted on the remote side
    error: str | None = None

    @property
    def remote_deleted(self) -> bool:
        """Whether the row is marked as deleted on the remote side."""
        return self.remote_deleted_at is not None


@dataclass(frozen=True)
class WriteResult:
    """The outcome of writing one record to a remote."""

    local_id: int
    record: RemoteRecord | None = None
    error: str | None = None
    retryable: bool = True
    gone: bool = False  # the record was deleted remotely: nothing was written


@dataclass
class FieldChange:
    """One field's decision, for the change log."""

    column: str
    old: Any
    new: Any
    rule: str
