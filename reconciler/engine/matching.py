"""First contact: records and rows that already hold the same entity are linked by a natural key
(the mapping's ``match_on``), not duplicated.

Both sides often hold the same entities before the first run (reps created by an app in Postgres
and in Twenty). Linking is only ever considered for a remote record no row is linked to, and a
row that holds no remote id of this mapping: once linked, a key edit is an ordinary change.

* **Pull**: a remote record whose key equals exactly one unlinked row (and no other unlinked
  record of the remote) is linked to it instead of being inserted.
* **Push**: before an unlinked row is created remotely, the remote is searched for its key
  (batched); exactly one record: linked instead of created.
* **Ambiguity**: two or more candidates on either side: nothing is linked, created or inserted
  for that key; the record fails alone, naming the key and the candidates, and is retried until
  a person makes the key unique.
* A key with any NULL or empty part never matches.

A linked pair is then merged like a conflict with no shadow: each field that differs takes the
newer side's value, union fields the union (``plan_pull`` with no sync state does exactly that).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.engine.context import MappingContext
from reconciler.model import Mapping
from reconciler.records import LocalRow, RemoteRecord, Values
from reconciler.store.history import Failure

Key = tuple[Any, ...]


def natural_key(mapping: Mapping, values: Values) -> Key | None:
    """The natural key of canonical values, or None when the mapping has none or a part is
    empty (NULL or an empty string never matches)."""
    if not mapping.match_on:
        return None
    key = tuple(values.get(column) for column in mapping.match_on)
    if any(part is None or part == "" for part in key):
        return None
    return key


def describe_key(mapping: Mapping, key: Key) -> str:
    """``workspace_member_id='wm-1'`` (several columns joined with ``, ``)."""
    return ", ".join(f"{c}={v!r}" for c, v in zip(mapping.match_on, key, strict=True))


@dataclass
class Matches:
    """What matching decided for a batch.

    Attributes:
        links: ``(local_id, remote_id)`` pairs to link.
        records: the remote record of each link, by remote id (as just read or found).
        rows: the local row of each link as it was before linking, by remote id: recording
            the link writes the row, which moves its ``updated_at``, and the merge must judge
            the row by when it last changed, not by when it was linked.
        failures: one per record or row that failed for an ambiguous key.
        unmatched: rows (push) or record ids (pull) for which nothing was found.
    """

    links: list[tuple[int, str]] = field(default_factory=list)
    records: dict[str, RemoteRecord] = field(default_factory=dict)
    rows: dict[str, LocalRow] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    unmatched: list[Any] = field(default_factory=list)


def match_records(ctx: MappingContext, records: Sequence[RemoteRecord]) -> Matches:
    """Pull: the unlinked rows that records no row is linked to should be linked to.

    Runs inside the open unit of work (the rows it proposes are locked with it).
    """
    mapping, result = ctx.mapping, Matches()
    by_key: dict[Key, list[RemoteRecord]] = defaultdict(list)
    for record in records:
        key = natural_key(mapping, record.values)
        if key is None:
            result.unmatched.append(record.id)
        else:
            by_key[key].append(record)
    if not by_key:
        return result
    rows = _by_key(mapping, ctx.store.unlinked_by_key(mapping, list(by_key)))
    candidates = [k for k in by_key if len(rows.get(k, [])) == 1 and len(by_key[k]) == 1]
    others = _remote_candidates(ctx, candidates)
    for key, found in by_key.items():
        local = rows.get(key, [])
        remote_ids = sorted({r.id for r in found} | others.get(key, set()))
        if not local:
            result.unmatched += [r.id for r in found]
        elif len(local) > 1 or len(remote_ids) > 1:
            message = _ambiguous(ctx, key, local, remote_ids)
            result.failures += [
                Failure("pull", r.id, message, remote_id=r.id, retryable=True) for r in found
            ]
        else:
            result.links.append((local[0].local_id, found[0].id))
            result.records[found[0].id] = found[0]
            result.rows[found[0].id] = local[0]
    return result


def match_rows(ctx: MappingContext, rows: Sequence[LocalRow]) -> Matches:
    """Push: the remote records that unlinked rows should be linked to instead of created.

    One batched search of the remote for all the rows' keys (never one request per row).
    """
    mapping, result = ctx.mapping, Matches()
    by_key: dict[Key, list[LocalRow]] = defaultdict(list)
    for row in rows:
        key = natural_key(mapping, row.values)
        if key is None:
            result.unmatched.append(row)
        else:
            by_key[key].append(row)
    if not by_key:
        return result
    searched = ctx.remote.find(mapping.match_on, list(by_key))
    with ctx.store.unit():
        local = _by_key(mapping, ctx.store.unlinked_by_key(mapping, list(by_key), lock=False))
        found = _unlinked_remote(ctx, searched)
    for key, mine in by_key.items():
        siblings = local.get(key, mine)
        remote = found.get(key, [])
        if len(siblings) > 1 or len(remote) > 1:
            message = _ambiguous(ctx, key, siblings, sorted(r.id for r in remote))
            result.failures += [_row_failure(ctx, row, message) for row in mine]
        elif remote:
            result.links.append((mine[0].local_id, remote[0].id))
            result.records[remote[0].id] = remote[0]
            result.rows[remote[0].id] = mine[0]
        else:
            result.unmatched += mine
    return result


def _by_key(mapping: Mapping, rows: Sequence[LocalRow]) -> dict[Key, list[LocalRow]]:
    grouped: dict[Key, list[LocalRow]] = defaultdict(list)
    for row in rows:
        key = natural_key(mapping, row.values)
        if key is not None:
            grouped[key].append(row)
    return grouped


def _remote_candidates(ctx: MappingContext, keys: list[Key]) -> dict[Key, set[str]]:
    """Other unlinked remote records with these keys (a link must be the only candidate on the
    remote side too, not just in this page)."""
    if not keys:
        return {}
    found = _unlinked_remote(ctx, ctx.remote.find(ctx.mapping.match_on, keys))
    return {key: {r.id for r in records} for key, records in found.items()}


def _unlinked_remote(
    ctx: MappingContext, found: dict[Key, list[RemoteRecord]]
) -> dict[Key, list[RemoteRecord]]:
    """The found records no local row is linked to (a linked one is taken); in the open unit."""
    ids = [r.id for records in found.values() for r in records]
    if not ids:
        return {}
    linked = set(ctx.store.rows_by_remote_ids(ctx.mapping, ids, lock=False))
    return {
        key: [r for r in records if r.id not in linked and not r.deleted]
        for key, records in found.items()
    }


def _ambiguous(
    ctx: MappingContext, key: Key, rows: Sequence[LocalRow], remote_ids: Sequence[str]
) -> str:
    mapping = ctx.mapping
    parts = []
    if len(rows) > 1:
        keys = ", ".join(f"{mapping.local_table}:{r.local_id}" for r in rows)
        parts.append(f"{len(rows)} local rows ({keys})")
    if len(remote_ids) > 1:
        remote = mapping.remote.capitalize()
        parts.append(f"{len(remote_ids)} {remote} records ({', '.join(remote_ids)})")
    return (
        f"natural key {describe_key(mapping, key)} matches {' and '.join(parts)}: nothing is "
        f"linked or created until the key is unique (or {mapping.key_column} is set by hand)"
    )


def _row_failure(ctx: MappingContext, row: LocalRow, message: str) -> Failure:
    return Failure(
        "push",
        f"{ctx.mapping.local_table}:{row.local_id}",
        message,
        local_id=row.local_id,
        local_updated_at=row.updated_at,
        retryable=True,
    )
