"""The change log: every change a run applied or refused, written with the change itself.

``ChangeLog`` is the engine's ``Journal``. Each of its methods runs inside the unit of work that
applies the change and appends that unit's entries with one ``COPY``, so an entry exists exactly
when its change does (a dry run's savepoints are rolled back, entries with them).

An entry names the run, mapping, stage, record (remote id, local table and key), what happened
(``action``) and the rule that decided it. ``changes`` lists, in field order, one object per
mapped field ``{"field", "old", "new", "rule"}``; only mapped fields ever get in, so no secret
can, and long values are cut with a marker. On a pull, old -> new is the local value before ->
after, except for a field the local side kept in a conflict (``local_newer``): old is the remote
value refused, new the local value kept (stage 2 sends it). On a push, old -> new is the remote
value before -> after; a push skipped because the remote is newer lists the local values held
back.

A record a pull inserts is stored more compactly, as one object of the values it was created
with (``{"first_name": "Ann", …}``): a first pull logs every record it brings in, and this keeps
that log to a fraction of the size. :func:`reconciler.store.log_reader.read_log` gives it the same
list form as every other entry (old null, rule ``new_record``), so readers of ``reconcile log`` see
one shape.
"""

from __future__ import annotations

import threading
from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY

from reconciler.engine.plan import Outcome, PullPlan, PushPlan, Rule
from reconciler.model import json_text
from reconciler.records import FieldChange
from reconciler.store.history import Failure
from reconciler.store.schema import change_log
from reconciler.store.sql import COPY_NULL, copy_lines, copy_text

if TYPE_CHECKING:
    from reconciler.engine.context import MappingContext

MAX_VALUE_CHARS = 2000

# When fields were decided by different rules, the entry is labelled by the most telling one.
_RULE_PRIORITY = (
    Rule.REMOTE_NEWER,
    Rule.LOCAL_NEWER,
    Rule.UNION,
    Rule.REMOTE_ONLY,
    Rule.LOCAL_ONLY,
    Rule.NEW_RECORD,
)


class Action(StrEnum):
    """What happened to one record."""

    INSERTED = "inserted"  # pull: new local row
    UPDATED = "updated"  # pull: local row updated; push: remote record updated
    UNCHANGED = "unchanged"  # pull: a conflict that left the local row as it was (union)
    SKIPPED_LOCAL_NEWER = "skipped_local_newer"
    CREATED = "created"  # push: new remote record
    SKIPPED_REMOTE_NEWER = "skipped_remote_newer"
    FAILED = "failed"
    DEAD_LETTER = "dead_letter"
    REMOTE_DELETED = "remote_deleted"  # the remote record was deleted: row kept, marked, not sent


def clip(value: Any) -> Any:
    """A value fit for the log: text (or JSON) longer than ``MAX_VALUE_CHARS`` is cut, marked."""
    if value is None or value.__class__ in _SCALARS:
        return value
    if isinstance(value, str):
        return _cut(value)
    if isinstance(value, dict | list):
        text = json_text(value)
        return _cut(text) if len(text) > MAX_VALUE_CHARS else value
    return value


_SCALARS = frozenset({bool, int, float})


def _cut(text: str) -> str:
    if len(text) <= MAX_VALUE_CHARS:
        return text
    return f"{text[:MAX_VALUE_CHARS]}…[truncated {len(text) - MAX_VALUE_CHARS} chars]"


def _fields(changes: Iterable[FieldChange]) -> str:
    """The field changes of an entry as its ``changes`` text, unchanged fields left out.

    Each field is written into its object's text directly (``json.dumps`` of the list, to the
    character): a pull logs every record it updates, and a dict per field, built only to be
    encoded, cost as much again.
    """
    changed = [c for c in changes if c.old != c.new]
    text = (
        "["
        + ", ".join(
            f'{{"field": {json_text(c.column)}, "old": {json_text(c.old)}, '
            f'"new": {json_text(c.new)}, "rule": {json_text(c.rule)}}}'
            for c in changed
        )
        + "]"
    )
    if len(text) > MAX_VALUE_CHARS:  # only then can a single value be too long
        text = json_text(
            [
                {"field": c.column, "old": clip(c.old), "new": clip(c.new), "rule": c.rule}
                for c in changed
            ]
        )
    return text


def _values(plan: PullPlan) -> str:
    """A new record's values as its entry's ``changes`` text: one object in field order, fields
    created empty left out (as in every entry, a field whose value did not change)."""
    text = plan.values_text  # the text its insert used
    if len(text) > MAX_VALUE_CHARS:  # only then can a single value be too long
        text = json_text({c: clip(v) for c, v in plan.writes.items() if v is not None})
    return text


# Each rule's place in ``_RULE_PRIORITY``; a rule not there ranks after them all.
_RANK = {str(rule): place for place, rule in enumerate(_RULE_PRIORITY)}
_UNRANKED = len(_RULE_PRIORITY)


def _pull_rule(plan: PullPlan, changes: Sequence[FieldChange]) -> str:
    if plan.matched:
        return Rule.MATCHED
    if plan.outcome is Outcome.SKIPPED_LOCAL_NEWER:
        return Rule.LOCAL_NEWER
    best = min([_RANK.get(c.rule, _UNRANKED) for c in changes], default=_UNRANKED)
    if best < _UNRANKED:
        return str(_RULE_PRIORITY[best])
    return Rule.UNION if plan.conflict else Rule.REMOTE_ONLY


# A pull's outcome as its entry's action; hot on a large pull, so kept as plain text.
_PULL_ACTIONS = {
    Outcome.INSERTED: str(Action.INSERTED),
    Outcome.UPDATED: str(Action.UPDATED),
    Outcome.SKIPPED_LOCAL_NEWER: str(Action.SKIPPED_LOCAL_NEWER),
    Outcome.UNCHANGED: str(Action.UNCHANGED),
}
_NEW_RECORD = str(Rule.NEW_RECORD)
_LOCAL_NEWER = str(Rule.LOCAL_NEWER)


class ChangeLog:
    """The ``Journal`` that writes the change log on the open unit of work.

    Args:
        run_id: the run the entries belong to.
    """

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.written = 0
        self._lock = threading.Lock()  # entries written (or, in a dry run, that would have been)

    def pulled(self, ctx: MappingContext, plans: Sequence[PullPlan]) -> None:
        """Remote records applied locally, and conflicts decided; unchanged records are left out.

        Written for every record a pull applies, so each entry goes straight to its line of
        ``COPY`` text, sent while the next are made.
        """
        self._write(ctx, self._pulled_lines(ctx, plans))

    def _pulled_lines(self, ctx: MappingContext, plans: Sequence[PullPlan]) -> Iterator[str]:
        head, table = self._head(ctx, "pull"), copy_text(ctx.mapping.local_table)
        for plan in plans:
            outcome = plan.outcome
            if outcome is Outcome.INSERTED:
                rule, changes = _NEW_RECORD, _values(plan)
            elif outcome is Outcome.UNCHANGED and not plan.conflict and not plan.matched:
                continue
            else:
                # A field kept locally only matters when a conflict decided it; stage 2 logs
                # the rest.
                writes = plan.writes
                kept = [c for c in plan.changes if c.column in writes or c.rule == _LOCAL_NEWER]
                rule, changes = _pull_rule(plan, kept), _fields(kept)
            local_id = plan.local.local_id if plan.local else plan.inserted_id
            yield _line(
                head,
                _PULL_ACTIONS[outcome],
                rule,
                plan.conflict,
                plan.remote.id,
                table,
                local_id,
                changes,
                None,
            )

    def pushed(self, ctx: MappingContext, plans: Sequence[PushPlan]) -> None:
        """Local rows written to the remote: created or updated, with the fields sent."""
        created = [p.local.local_id for p in plans if p.local.remote_id is None]
        remote_ids = _remote_ids(ctx, created) if created else {}
        entries = [
            self._entry(
                ctx,
                "push",
                Action.CREATED if p.outcome is Outcome.INSERTED else Action.UPDATED,
                Rule.LOCAL_ONLY,
                p.local.remote_id or remote_ids.get(p.local.local_id),
                p.local.local_id,
                changes=_fields(p.changes),
            )
            for p in plans
        ]
        self._write(ctx, entries)

    def skipped(self, ctx: MappingContext, plans: Sequence[PushPlan]) -> None:
        """Local rows not pushed because the remote side is newer, with the values held back."""
        entries = []
        rule = str(Action.SKIPPED_REMOTE_NEWER)
        for plan in plans:
            row = plan.local
            changes = [replace(c, rule=rule) for c in plan.changes]
            entries.append(
                self._entry(
                    ctx,
                    "push",
                    Action.SKIPPED_REMOTE_NEWER,
                    rule,
                    row.remote_id,
                    row.local_id,
                    conflict=True,
                    changes=_fields(changes),
                )
            )
        self._write(ctx, entries)

    def failed(
        self, ctx: MappingContext, failures: Sequence[Failure], dead: Container[str]
    ) -> None:
        """Records that failed, and those dead-lettered by this failure, with the reason."""
        unknown = [f.remote_id for f in failures if f.local_id is None and f.remote_id is not None]
        local_ids = _local_ids(ctx, unknown) if unknown else {}
        entries = []
        for item in failures:
            action = Action.DEAD_LETTER if item.record_key in dead else Action.FAILED
            local_id = item.local_id
            if local_id is None and item.remote_id is not None:
                local_id = local_ids.get(item.remote_id)
            entries.append(
                self._entry(
                    ctx,
                    item.stage,
                    action,
                    action,
                    item.remote_id,
                    local_id,
                    message=_cut(item.message),
                )
            )
        self._write(ctx, entries)

    def deleted(self, ctx: MappingContext, stage: str, marked: Sequence[tuple[str, int]]) -> None:
        """Rows marked as deleted remotely: kept here, never written to the remote again."""
        remote = ctx.mapping.remote.capitalize()
        if stage == "push":
            message = (
                f"deleted in {remote}: the local row is kept and marked remote_deleted_at, its "
                f"changes are not sent and the record is not recreated (to create it again, "
                f"clear {ctx.mapping.key_column})"
            )
        else:
            message = f"deleted in {remote}: the local row is kept and marked remote_deleted_at"
        action = Action.REMOTE_DELETED
        entries = [
            self._entry(ctx, stage, action, action, rid, local_id, message=message)
            for rid, local_id in marked
        ]
        self._write(ctx, entries)

    def _entry(
        self,
        ctx: MappingContext,
        stage: str,
        action: Action,
        rule: str,
        remote_id: str | None,
        local_id: int | None,
        *,
        conflict: bool = False,
        changes: str = "[]",
        message: str | None = None,
    ) -> str:
        """One entry of this run, for the record ``remote_id`` / ``local_id`` of the mapping."""
        return _line(
            self._head(ctx, stage),
            str(action),
            str(rule),
            conflict,
            remote_id,
            copy_text(ctx.mapping.local_table),
            local_id,
            changes,
            message,
        )

    def _head(self, ctx: MappingContext, stage: str) -> str:
        """The first cells of each entry of this run, mapping and stage (with the tab after)."""
        return "".join(f"{copy_text(cell)}\t" for cell in (self.run_id, ctx.mapping.name, stage))

    def _write(self, ctx: MappingContext, lines: Iterable[str]) -> None:
        """One ``COPY`` for the unit's entries, on its open transaction (none without any)."""
        written = copy_lines(ctx.store.conn, change_log, _COLUMNS, lines)
        with self._lock:  # mappings in different lanes write side by side
            self.written += written


# An entry's columns, in the order of its line (``id`` and ``logged_at`` are the table's own).
_COLUMNS = (
    "run_id",
    "mapping",
    "stage",
    "action",
    "rule",
    "conflict",
    "remote_id",
    "local_table",
    "local_id",
    "changes",  # json text
    "message",
)


def _line(
    head: str,
    action: str,
    rule: str,
    conflict: bool,
    remote_id: str | None,
    table: str,
    local_id: int | None,
    changes: str,
    message: str | None,
) -> str:
    """One entry as a line of ``COPY`` text, its cells in ``_COLUMNS`` order: ``head`` (run,
    mapping, stage) and ``table`` already as cells, the rest made so here. A first pull writes
    one for every record, so the line is put together directly, without psycopg adapting each
    value of a row."""
    remote = COPY_NULL if remote_id is None else copy_text(remote_id)
    local = COPY_NULL if local_id is None else local_id
    note = COPY_NULL if message is None else copy_text(message)
    flag = "t" if conflict else "f"
    cells = f"{remote}\t{table}\t{local}\t{copy_text(changes)}\t{note}"
    return f"{head}{action}\t{rule}\t{flag}\t{cells}\n"


def _local_ids(ctx: MappingContext, remote_ids: Sequence[str]) -> dict[str, int]:
    """Primary keys of local rows by remote id (rows the unit has just inserted)."""
    rows = _lookup(ctx, ctx.mapping.key_column, remote_ids)
    return {str(key): local_id for local_id, key in rows}


def _remote_ids(ctx: MappingContext, local_ids: Sequence[int]) -> dict[int, str]:
    """Remote ids of local rows by primary key (a create's id, written back in the same unit)."""
    rows = _lookup(ctx, "id", local_ids)
    return {local_id: str(key) for local_id, key in rows if key is not None}


def _lookup(ctx: MappingContext, column: str, values: Sequence[Any]) -> list[tuple[int, Any]]:
    """(primary key, remote key) of the mapped rows whose ``column`` is one of ``values``.

    The values arrive as one array, joined as a table on the column: Postgres looks each one up
    in the column's index, one statement whatever the number of values (a list of bound
    parameters would make a statement of its own text for every length).
    """
    table = ctx.store.table(ctx.mapping)
    match = table.c[column]
    wanted = (
        func.unnest(bindparam("wanted", list(values), type_=ARRAY(match.type)))
        .table_valued("value")
        .render_derived()
    )
    query = select(table.c.id, table.c[ctx.mapping.key_column]).join(
        wanted, match == wanted.c.value
    )
    return [(int(r[0]), r[1]) for r in ctx.store.conn.execute(query)]
