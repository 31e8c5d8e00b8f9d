"""The oracle of the whole-run convergence test: what the contract says each field ends with.

The model keeps, per record, the local values, the remote values, the values of the last sync
(the shadow) and each side's record-level modification time, and applies the contract's rules
stage by stage:

* a field changed on one side only since the last sync takes that side's value;
* a field changed on both sides takes the newer side's value, comparing the remote record's
  modified time with the local row's ``updated_at`` (record-level times: an edit to one field
  is "newer" than the other side's edit to another field when its record was touched later);
* set-like arrays changed on both sides take the union;
* a push stamps the remote record with the time of the run (the server's clock);
* a pull that writes a row dates it by when the value changed remotely, unless the row's own
  last change is later, never by the time of copying; linking a created record's id leaves the
  row's time as it was (``Store._update_rows``, ``Store.link``).

Test edits carry explicit times in the recent past; everything the engine writes is stamped
with the real clock, so it is later than every explicit edit. ``ENGINE`` models that.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from reconciler.model import FieldSpec, Mapping, Merge, union

Values = dict[str, Any]
ENGINE = 10**9  # model times at or above this are stamps the engine wrote (real clock)


@dataclass
class RecordModel:
    """One record as the contract sees it."""

    local_id: int
    local: Values
    remote: Values | None = None  # None until the record exists remotely
    shadow: Values | None = None
    local_time: int = 0
    remote_time: int = 0
    remote_id: str | None = None


@dataclass
class MappingModel:
    """The records of one mapping and the fields the test exercises."""

    mapping: Mapping
    fields: tuple[FieldSpec, ...]
    records: list[RecordModel] = field(default_factory=list)
    _ticks: Iterator[int] = field(default_factory=lambda: itertools.count(ENGINE))

    def tick(self) -> int:
        """A new engine stamp, later than every explicit edit and every earlier stamp."""
        return next(self._ticks)

    def sync(self, *, pull_ok: bool, push_ok: bool) -> None:
        """One run of this mapping: stage 1 if the pull succeeds, then stage 2 if the push
        succeeds too (a failed pull stops the mapping before stage 2)."""
        if not pull_ok:
            return
        for record in self.records:
            if record.remote is not None:
                self._pull(record)
        if push_ok:
            for record in self.records:
                self._push(record)

    def _pull(self, record: RecordModel) -> None:
        assert record.remote is not None and record.shadow is not None
        remote_newer = record.remote_time > record.local_time
        wrote = False
        for spec in self.fields:
            col = spec.column
            theirs, ours, base = record.remote[col], record.local[col], record.shadow[col]
            if theirs == ours:
                continue
            if theirs != base and ours == base:
                value = theirs
            elif ours != base and theirs == base:
                value = ours
            elif spec.merge is Merge.UNION:
                value = union(ours, theirs)
            else:
                value = theirs if remote_newer else ours
            if value != ours:
                record.local[col], wrote = value, True
        record.shadow = dict(record.remote)
        if wrote:
            record.local_time = max(record.local_time, record.remote_time)

    def _push(self, record: RecordModel) -> None:
        pushable = [s.column for s in self.fields if s.pushes]
        if record.remote is None:
            send = {c: v for c in pushable if (v := record.local[c]) is not None and v is not False}
            if not send:
                return
            record.remote = {s.column: send.get(s.column) for s in self.fields}
            record.shadow = dict(record.remote)
            record.remote_time = self.tick()
            return
        assert record.shadow is not None
        send = {c: record.local[c] for c in pushable if record.local[c] != record.shadow[c]}
        if send:
            record.remote.update(send)
            record.shadow.update(send)
            record.remote_time = self.tick()

    def edit_local(self, record: RecordModel, column: str, value: Any, at: int) -> None:
        """An application writes one column with an explicit ``updated_at``."""
        record.local[column] = value
        record.local_time = at

    def edit_remote(self, record: RecordModel, column: str, value: Any, at: int) -> None:
        """A user edits one field remotely at an explicit modified time."""
        assert record.remote is not None
        record.remote[column] = value
        record.remote_time = at
