"""Pure decisions: what a stage does with one record, given both sides and the shadow copy.

No I/O here, so every rule can be tested exhaustively. The shadow (``SyncState.shadow``) is the
remote's value of each field as last seen or written; against it:

* remote changed  = remote value != shadow value
* local changed   = local value  != shadow value (a row never synced, or a column newly mapped,
  has no shadow value: a field's value counts as changed on its side, an empty one does not, so
  an empty cell never overrides the other side's value; but a pair linked by natural key just
  now is merged as the contract's first contact says, every differing field contested)
* changed on one side only: that side's value wins;
* changed on both (contested): equal values agree; UNION fields take the union; otherwise the side
  with the newer modification time wins (remote modified time against local ``updated_at``).

After a pull the shadow is the remote's current values, so a local value that differs from it is
exactly what stage 2 still has to send.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Any

from reconciler.model import FieldSpec, Mapping, Merge, json_text, union
from reconciler.records import FieldChange, LocalRow, RemoteRecord, Values


class Outcome(StrEnum):
    """How a record is counted in the report."""

    INSERTED = "inserted"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED_LOCAL_NEWER = "skipped_local_newer"
    SKIPPED_REMOTE_NEWER = "skipped_remote_newer"
    FAILED = "failed"


class Rule(StrEnum):
    """Why a field took the value it did (recorded in the change log)."""

    REMOTE_ONLY = "remote_only"  # changed on the remote side only
    LOCAL_ONLY = "local_only"  # changed locally only
    REMOTE_NEWER = "remote_newer"
    LOCAL_NEWER = "local_newer"
    UNION = "union"
    NEW_RECORD = "new_record"
    MATCHED = "matched"  # a record and a row linked by natural key, then merged


@dataclass
class PullPlan:
    """What stage 1 does with one remote record."""

    remote: RemoteRecord
    local: LocalRow | None
    outcome: Outcome
    writes: Values = field(default_factory=dict)  # local columns to write
    shadow: Values = field(default_factory=dict)  # the new shadow
    # Each field's decision on an existing row; an insert's are all in ``writes`` (new record).
    changes: list[FieldChange] = field(default_factory=list)
    conflict: bool = False
    pending: bool = False  # push-capable local values still differ from the remote
    inserted_id: int | None = None  # the new local row's key, once the insert is applied
    matched: bool = False  # the row was linked to the record by natural key just now
    # When the remote change was made, on the database's clock (its modified time less the
    # skew between the two clocks).
    changed_at: datetime | None = None

    @cached_property
    def values_text(self) -> str:
        """A new record's values, empty ones left out, as one JSON object in field order.

        Encoded once: the insert and the change log entry both use this text (a first pull
        brings in every record, so encoding each twice would be a noticeable share of it).
        """
        return json_text({c: v for c, v in self.writes.items() if v is not None})


NO_SKEW = timedelta(0)


def remote_is_newer(remote: RemoteRecord, local: LocalRow, skew: timedelta = NO_SKEW) -> bool:
    """Whether the remote record changed after the local row, on one clock: ``skew`` is the
    remote's clock minus the database's (which stamps ``updated_at``)."""
    return remote.modified_at - skew > local.updated_at


def empty(value: Any) -> bool:
    """Whether a value is an empty cell: None, or False (an unticked Airtable checkbox is no
    value at all). Identity, not equality: 0 == False, and a zero is a value."""
    return value is None or value is False


def _changed(value: Any, base: Any, has_base: bool, matched: bool) -> bool:
    """Whether one side's value is a change: against the base when there is one. Without one (a
    row an application linked itself, never synced; a column newly mapped) a value is and an
    empty cell is not, so an empty cell never wins over the other side's value for want of
    history. A pair linked by natural key just now is merged as the contract's first contact
    says, "a conflict with no shadow": every value is a change, an empty one too."""
    if has_base:
        return bool(value != base)
    return matched or not empty(value)


def _decide_field(
    spec: FieldSpec,
    remote_value: Any,
    local_value: Any,
    base: Any,
    has_base: bool,
    remote_newer: bool,
    matched: bool,
) -> tuple[Any, Rule | None, bool]:
    """The value a field ends with locally, the rule that chose it, and whether it was contested."""
    remote_changed = _changed(remote_value, base, has_base, matched)
    local_changed = _changed(local_value, base, has_base, matched)
    if remote_value == local_value or not (remote_changed or local_changed):
        return local_value, None, False  # agreeing, or both empty (None and False) with no base
    if remote_changed and not local_changed:
        return remote_value, Rule.REMOTE_ONLY, False
    if local_changed and not remote_changed:
        return local_value, Rule.LOCAL_ONLY, False
    if spec.merge is Merge.UNION:
        return union(local_value, remote_value), Rule.UNION, True
    if remote_newer:
        return remote_value, Rule.REMOTE_NEWER, True
    return local_value, Rule.LOCAL_NEWER, True


def plan_pull(
    mapping: Mapping,
    remote: RemoteRecord,
    local: LocalRow | None,
    skew: timedelta = NO_SKEW,
    *,
    matched: bool = False,
) -> PullPlan:
    """Decide how one remote record is applied locally, field by field (``skew``: the remote's
    clock minus the database's; ``matched``: the row was linked to the record by natural key
    just now)."""
    if local is None:
        values = remote.values
        writes = {c: values.get(c) for c in mapping.pull_columns}
        return PullPlan(remote, None, Outcome.INSERTED, writes, dict(remote.values))
    state = local.state
    shadow = state.shadow if state is not None else {}
    remote_newer = remote_is_newer(remote, local, skew)
    plan = PullPlan(
        remote,
        local,
        Outcome.UNCHANGED,
        shadow=dict(remote.values),
        changed_at=remote.modified_at - skew,
        matched=matched,
    )
    local_won_all, contested_any = True, False
    for spec in mapping.fields:
        col = spec.column
        remote_value, local_value = remote.values.get(col), local.values.get(col)
        if remote_value == local_value:
            continue  # both sides agree: nothing to decide, write or send
        has_base = state is not None and col in shadow
        value, rule, contested = _decide_field(
            spec, remote_value, local_value, shadow.get(col), has_base, remote_newer, matched
        )
        contested_any |= contested
        if contested and rule is not Rule.LOCAL_NEWER:
            local_won_all = False
        if value != local_value and spec.pulls:
            plan.writes[col] = value
            plan.changes.append(FieldChange(col, local_value, value, str(rule)))
        elif rule in (Rule.LOCAL_ONLY, Rule.LOCAL_NEWER) and spec.pushes:
            plan.changes.append(FieldChange(col, remote_value, local_value, str(rule)))
        final = plan.writes.get(col, local_value)
        if spec.pushes and final != remote_value:
            plan.pending = True
    plan.conflict = contested_any
    if contested_any and local_won_all and not plan.writes:
        plan.outcome = Outcome.SKIPPED_LOCAL_NEWER
    elif plan.writes:
        plan.outcome = Outcome.UPDATED
    return plan


@dataclass
class PushPlan:
    """What stage 2 does with one local row."""

    local: LocalRow
    outcome: Outcome
    send: Values = field(default_factory=dict)  # push-capable columns to send
    changes: list[FieldChange] = field(default_factory=list)
    current: RemoteRecord | None = None  # the remote record as read just before, if it was


def local_changes(mapping: Mapping, local: LocalRow, base: Values | None) -> Values:
    """The push-capable columns whose local value differs from the base (the remote's values).

    With no base (a row never created remotely), every push-capable column that has a value.
    """
    if base is None:
        return {
            f.column: local.values.get(f.column)
            for f in mapping.push_fields
            if not empty(local.values.get(f.column))
        }
    return {
        f.column: local.values.get(f.column)
        for f in mapping.push_fields
        if local.values.get(f.column) != base.get(f.column)
    }


def remote_changed_since_sync(local: LocalRow, remote: RemoteRecord) -> bool:
    """Whether the remote record changed after the last sync of this row."""
    state = local.state
    if state is None:
        return True
    if state.remote_modified_at is not None and remote.modified_at == state.remote_modified_at:
        return False
    return any(remote.values.get(c) != v for c, v in state.shadow.items())


def plan_push(
    mapping: Mapping, local: LocalRow, remote: RemoteRecord | None, skew: timedelta = NO_SKEW
) -> PushPlan:
    """Decide what to send for one local row.

    Args:
        mapping: the mapping.
        local: the row, with its sync state.
        remote: the remote record as read just now, or None when not read (or not created yet).
        skew: the remote's clock minus the database's.
    """
    state = local.state
    if remote is not None and state is None:
        base: Values | None = remote.values  # never synced: the remote's values are the base
    else:
        base = state.shadow if state is not None and local.remote_id else None
    send = local_changes(mapping, local, base)
    if state is None and remote is not None:
        # No history: an empty local value is no data, not a clearing (as in ``_changed``).
        send = {c: v for c, v in send.items() if not empty(v)}
    if not send:
        return PushPlan(local, Outcome.UNCHANGED)
    old = base or {}
    changes = [FieldChange(c, old.get(c), v, str(Rule.LOCAL_ONLY)) for c, v in send.items()]
    if remote is not None and remote_changed_since_sync(local, remote):
        contested_union = any(
            mapping.field(c).merge is Merge.UNION and remote.values.get(c) != old.get(c)
            for c in send
        )
        if remote_is_newer(remote, local, skew) or contested_union:
            # Nothing is sent; ``changes`` says what is held back.
            return PushPlan(local, Outcome.SKIPPED_REMOTE_NEWER, changes=changes)
    outcome = Outcome.UPDATED if local.remote_id else Outcome.INSERTED
    return PushPlan(local, outcome, send, changes)
