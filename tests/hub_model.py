"""The oracle of the hub property test: what a rep kept on three sides (Airtable, Twenty and the
Postgres row between them) ends with, by the documented rules.

Per rep the model keeps the local values and ``updated_at``, and per remote the record's values,
its record-level modified time and the mapping's shadow (the values of the last sync). A run is
stage 1 (pull) of every mapping whose remote answers, in the run's mapping order, then stage 2
(push) of each of those whose writes go through (contract, "Meaning of a run", **Order**: a
mapping whose pull failed does not push). Each stage applies the contract's per-field rules:

* changed on one side only since the last sync (against that mapping's shadow): that side wins;
* changed on both sides: equal values agree, union fields take the union, otherwise the newer
  side wins, comparing the remote **record's** modified time with the row's ``updated_at``
  (record-level times: an edit to one field makes the whole record newer);
* a pulled write dates the row by when the change was made remotely, not by when it was copied
  (README, "A table shared by several remotes"): ``updated_at`` becomes the later of its own
  value and the remote record's modified time;
* a push sends every push-capable field whose local value differs from the shadow, and stamps
  the remote record with the engine's clock.

Test edits carry explicit times in the recent past, spaced two seconds apart (wider than the
half second a clock offset read from a ``Date`` header can be off by); everything the engine
stamps uses the real clock, so it is later than every explicit edit: ``ENGINE`` models that.
Under these rules the row's ``updated_at`` only ever holds an explicit edit time, so every
contest the model decides compares two explicit edit times, in the order the test made them.

The engine deviates today: when the remote change is older than the row's own last change, the
row is dated by the time of copying (the trigger's stamp), and a later edit on the next remote
loses to it (``tests/test_hub_bugs.py``). With ``date`` overridden to do the same, the model
agreed with the engine on over a thousand random scenarios; as written, it agreed on 300 with an
engine dating by ``greatest(updated_at + 1 µs, changed_at)`` (``Store.link``'s ``LINK_TICK``).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.model import FieldSpec, Merge, union

Values = dict[str, Any]
ENGINE = 10**9  # model times at or above this are stamps the engine wrote (real clock)
LOCAL = "local"


@dataclass
class Copy:
    """One remote's record of a rep, and the mapping's shadow of it."""

    values: Values
    shadow: Values
    time: int


@dataclass(frozen=True)
class Edit:
    """One edit the test made: where, which column, the value, and when (model time)."""

    side: str  # "airtable", "twenty" or LOCAL
    column: str
    value: Any
    at: int


@dataclass
class RepModel:
    """One rep on three sides."""

    local_id: int
    local: Values
    local_time: int
    copies: dict[str, Copy]  # remote name -> its record
    edits: list[Edit] = field(default_factory=list)

    def sides(self, column: str) -> set[str]:
        """The sides on which the test edited a column."""
        return {e.side for e in self.edits if e.column == column}

    def written(self, column: str) -> list[Any]:
        """Every value the test wrote to a column, in order, whatever the side."""
        return [e.value for e in self.edits if e.column == column]


@dataclass
class HubModel:
    """The reps of a hub and the fields the test exercises, per remote.

    Args:
        fields: per remote (``"airtable"``, ``"twenty"``), the exercised fields of its mapping.
    """

    fields: dict[str, tuple[FieldSpec, ...]]
    reps: list[RepModel] = field(default_factory=list)
    # How each contested field was decided (``"remote newer"``, ``"local newer"``, ``"union"``),
    # so a test can show its scenarios do reach the interesting rules.
    decided: Counter[str] = field(default_factory=Counter)
    _ticks: Iterator[int] = field(default_factory=lambda: itertools.count(ENGINE))

    def tick(self) -> int:
        """A new engine stamp, later than every explicit edit and every earlier stamp."""
        return next(self._ticks)

    def columns(self, remote: str) -> tuple[str, ...]:
        """The exercised columns of a remote's mapping."""
        return tuple(s.column for s in self.fields[remote])

    # -- edits -----------------------------------------------------------------------------------

    def edit(self, rep: RepModel, side: str, column: str, value: Any, at: int) -> None:
        """The test wrote ``value`` to ``column`` on ``side`` at explicit time ``at``. Every
        side moves its record's time on such a write, even when the value did not change."""
        if side == LOCAL:
            rep.local[column] = value
            rep.local_time = at
        else:
            copy = rep.copies[side]
            copy.values[column] = value
            copy.time = at
        rep.edits.append(Edit(side, column, value, at))

    # -- runs ------------------------------------------------------------------------------------

    def run(self, order: Sequence[str], outcomes: dict[str, tuple[bool, bool]]) -> None:
        """One run over the remotes in ``order``; ``outcomes`` says, per remote, whether its
        pull and its push get through."""
        pulled = [r for r in order if outcomes[r][0]]
        for remote in pulled:
            for rep in self.reps:
                self._pull(rep, remote)
        for remote in pulled:
            if outcomes[remote][1]:
                for rep in self.reps:
                    self._push(rep, remote)

    def _pull(self, rep: RepModel, remote: str) -> None:
        copy = rep.copies[remote]
        remote_newer = copy.time > rep.local_time
        wrote = False
        for spec in self.fields[remote]:
            col = spec.column
            theirs, ours, base = copy.values[col], rep.local[col], copy.shadow[col]
            if theirs == ours:
                continue
            if theirs != base and ours == base:
                value = theirs
            elif ours != base and theirs == base:
                value = ours
            elif spec.merge is Merge.UNION:
                value = union(ours, theirs)
                self.decided["union"] += 1
            else:
                value = theirs if remote_newer else ours
                self.decided["remote newer" if remote_newer else "local newer"] += 1
            if value != ours:
                rep.local[col], wrote = value, True
        copy.shadow = dict(copy.values)
        if wrote:
            # A write is pulled only when the remote changed since its last sync, which only an
            # explicit edit does (after a push the shadow holds what the push sent).
            assert copy.time < ENGINE, "the model pulled a change the engine made"
            self.date(rep, copy)

    def date(self, rep: RepModel, copy: Copy) -> None:
        """Date the row after a pulled write: by when the value changed remotely, unless the
        row's own last change is later."""
        rep.local_time = max(rep.local_time, copy.time)

    def _push(self, rep: RepModel, remote: str) -> None:
        copy = rep.copies[remote]
        send = {c: rep.local[c] for c in self.columns(remote) if rep.local[c] != copy.shadow[c]}
        if send:
            copy.values.update(send)
            copy.shadow.update(send)
            copy.time = self.tick()
