"""Stage 2: send local changes out, checking batched remote modified times first."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Container, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

from reconciler.engine.context import MappingContext
from reconciler.engine.matching import match_rows
from reconciler.engine.plan import Outcome, PushPlan, local_changes, plan_push
from reconciler.engine.pull import apply_records
from reconciler.records import LocalRow, RemoteRecord, WriteResult
from reconciler.remotes.base import PushItem, chunks
from reconciler.report import now_utc
from reconciler.store.history import Failure, clear_failures, failing_pulls

CANDIDATE_CHUNK = 600  # a multiple of both remotes' write batches (10 and 60)


def push(ctx: MappingContext, should_stop: Callable[[], bool]) -> None:
    """Find local changes from sync state (whatever their age) and push them in batches."""
    after = 0
    left: tuple[dict[str, RemoteRecord], set[str]] | None = None
    while not should_stop():
        with ctx.store.unit():
            rows = ctx.store.push_candidates(ctx.mapping, after, CANDIDATE_CHUNK)
        if not rows:
            return
        if left is None:
            left = _left_by_pull(ctx)
        after = rows[-1].local_id
        _push_rows(ctx, rows, should_stop, *left)


def _left_by_pull(ctx: MappingContext) -> tuple[dict[str, RemoteRecord], set[str]]:
    """What this run's pull did not bring in, for a push that does not read a record before
    writing it (Airtable's, after a complete pull), which would otherwise write an older local
    value over a newer remote edit:

    - the records changed remotely after the pull read its window, by id: a person editing
      while the run runs (its pull, or another mapping's). One listing, an empty page when
      nobody edited;
    - the ids of the records whose pull is failing: their remote changes never came in.

    A remote that reads before every write (Twenty's) needs neither."""
    if ctx.pulled_until is None or ctx.remote.read_before_write:
        return {}, set()
    with ctx.store.unit() as conn:
        unpulled = failing_pulls(conn, ctx.mapping.name)
    late = {r.id: r for page in ctx.remote.list_changed(ctx.pulled_until) for r in page}
    return late, unpulled


def _target_id(ctx: MappingContext, row: LocalRow) -> str:
    """The remote id a push writes to: the linked one, or the id a create would choose."""
    return row.remote_id if row.remote_id is not None else _create_id(ctx, row)


def _create_id(ctx: MappingContext, row: LocalRow) -> str:
    """The id a create of this row uses (a new one for a row created again)."""
    return ctx.create_id(row.local_id, row.remote_deleted_at)


def _needs_read(ctx: MappingContext, row: LocalRow, unpulled: Container[str]) -> bool:
    """Whether a row's push needs the remote's current record first (``unpulled``: remote ids
    whose pull is failing)."""
    if ctx.remote.read_before_write:
        return row.remote_id is not None or ctx.mapping.create_remote
    if row.remote_id is None:
        return False
    if row.state is None:
        return True  # never synced: the remote's current values are the base
    if ctx.pulled_until is not None and row.remote_id not in unpulled:
        return False  # this run's complete pull brought every remote change in (and the later
        # ones are listed once: _left_by_pull), but for records it failed to apply
    return bool(local_changes(ctx.mapping, row, row.state.shadow))


def _push_rows(
    ctx: MappingContext,
    rows: list[LocalRow],
    should_stop: Callable[[], bool],
    late: dict[str, RemoteRecord],
    unpulled: Container[str],
) -> None:
    valid, failures = _usable(ctx, rows)
    found: dict[str, RemoteRecord] = {}
    if ctx.mapping.match_on:
        valid, found, unmatched = _link_by_natural_key(ctx, valid)
        failures += unmatched
    found.update({t: late[t] for r in valid if (t := _target_id(ctx, r)) in late})
    check = [
        t for r in valid if _needs_read(ctx, r, unpulled) and (t := _target_id(ctx, r)) not in found
    ]
    current = {**(ctx.remote.fetch(check) if check else {}), **found}
    valid = _merge_first_contact(ctx, valid, current)
    plans, noop, gone = _plans(ctx, valid, current, set(check) | set(found))
    counts = ctx.result.push
    counts.pending += len(plans) + len(failures)
    counts.unchanged += len(noop)
    counts.skipped_remote_newer += sum(p.outcome is Outcome.SKIPPED_REMOTE_NEWER for p in plans)
    with ctx.store.unit():
        ctx.store.refresh_states(ctx.mapping, noop)
        ctx.fail(failures)
        ctx.journal.skipped(ctx, [p for p in plans if p.outcome is Outcome.SKIPPED_REMOTE_NEWER])
        _mark_gone(ctx, gone)
    sendable = [p for p in plans if p.outcome in (Outcome.UPDATED, Outcome.INSERTED)]
    _send(ctx, list(chunks(sendable, ctx.remote.write_batch)), should_stop)


def _usable(ctx: MappingContext, rows: list[LocalRow]) -> tuple[list[LocalRow], list[Failure]]:
    """The rows a push may go on with, and the failures of the others: a row holding a value no
    remote can hold fails alone and is tried again (a person may mend it), waiting out its
    retry delay like any failed push; one whose key column holds no valid record id fails for
    good."""
    failures = [_failure(ctx, r, r.error, True) for r in rows if r.error is not None]
    readable = [r for r in rows if r.error is None]
    valid = [r for r in readable if r.remote_id is None or ctx.remote.valid_id(r.remote_id)]
    valid_ids = {r.local_id for r in valid}
    key = ctx.mapping.key_column
    failures += [
        _failure(ctx, r, f"{key} {r.remote_id!r} is not a valid record id", False)
        for r in readable
        if r.local_id not in valid_ids
    ]
    return valid, failures


def _plans(
    ctx: MappingContext, rows: list[LocalRow], current: dict[str, RemoteRecord], read: set[str]
) -> tuple[list[PushPlan], list[LocalRow], list[LocalRow]]:
    """Each row's plan against its remote record as just read (``current``; ``read``: the
    ids asked for), split into the plans, the rows with nothing to send and the rows whose
    record was deleted remotely."""
    plans: list[PushPlan] = []
    noop: list[LocalRow] = []
    gone: list[LocalRow] = []
    for row in rows:
        target = _target_id(ctx, row)
        record = current.get(target)
        if _deleted_remotely(row, target in read, record):
            gone.append(row)
            continue
        plan = plan_push(ctx.mapping, row, record if row.remote_id else None, ctx.skew)
        plan.current = record
        if plan.outcome is Outcome.UNCHANGED:
            noop.append(row)
        else:
            plans.append(plan)
    return plans, noop, gone


def _send(
    ctx: MappingContext, batches: list[Sequence[PushPlan]], should_stop: Callable[[], bool]
) -> None:
    """Send the batches, up to the remote's ``in_flight`` at once after the first, and record
    each answer in the batches' order as it comes.

    The first batch goes alone: what it shows of the server (a lockout, a server without
    upsert, a refused key) holds before the others go. After a batch raises, no new one is
    sent; those in flight are answered and recorded (what they wrote is not lost), then the
    error is raised. A dry run sends nothing and records each batch at once.
    """
    depth = 1 if ctx.store.dry_run else max(1, ctx.remote.in_flight)
    queue = iter(batches)
    flying: deque[tuple[Sequence[PushPlan], Future[list[WriteResult]]]] = deque()
    error: BaseException | None = None
    with ThreadPoolExecutor(max_workers=depth, thread_name_prefix="push") as pool:

        def fill(most: int) -> None:
            while len(flying) < most and error is None and not should_stop():
                batch = next(queue, None)
                if batch is None:
                    return
                items = [_item(ctx, p) for p in batch]
                flying.append((batch, pool.submit(_write, ctx, items)))

        fill(1)
        while flying:
            batch, answer = flying.popleft()
            try:
                results = answer.result()
            except Exception as exc:  # raised once those in flight are recorded
                error = error or exc
                continue
            _record(ctx, batch, results)
            ctx.progress("push", len(batch))
            fill(depth)
    if error is not None:
        raise error


def _link_by_natural_key(
    ctx: MappingContext, rows: list[LocalRow]
) -> tuple[list[LocalRow], dict[str, RemoteRecord], list[Failure]]:
    """Before creating remote records for unlinked rows, look the remote up for their natural
    keys (one batched search): a row with exactly one match is linked to it and merged (the
    newer side per field; what the local side won is then pushed), instead of created.

    Returns the rows to go on with (linked ones re-read; rows that can neither be matched nor
    created left out, marked as examined), the records found for them, and the failures of
    ambiguous keys.
    """
    unlinked = [r for r in rows if r.remote_id is None]
    if not unlinked:
        return rows, {}, []
    matches = match_rows(ctx, unlinked)
    linked: dict[int, LocalRow] = {}
    dropped = {f.local_id for f in matches.failures}
    if matches.links:
        links = replace(matches, failures=[], unmatched=[])  # those are this stage's to report
        apply_records(ctx, list(matches.records.values()), matches=links, counted=False)
        with ctx.store.unit():
            linked = ctx.store.rows_by_ids(ctx.mapping, [i for i, _ in matches.links], lock=False)
        # A row the database would not link failed with its record; it is not created either.
        refused = {i for i, _ in matches.links if i in linked and linked[i].remote_id is None}
        ctx.result.push.matched += len(matches.links) - len(refused)
        dropped |= refused
    if not ctx.mapping.create_remote and matches.unmatched:
        with ctx.store.unit():
            ctx.store.mark_examined(ctx.mapping, matches.unmatched)
        dropped |= {r.local_id for r in matches.unmatched}
    kept = [linked.get(r.local_id, r) for r in rows if r.local_id not in dropped]
    return kept, matches.records, matches.failures


def _merge_first_contact(
    ctx: MappingContext, rows: list[LocalRow], current: dict[str, RemoteRecord]
) -> list[LocalRow]:
    """Rows linked to a record by an application (a remote id, no sync state) whose record the
    pull did not bring in (outside its window) meet it here: each is merged with it as a pull
    merges a first contact (a cell empty on one side takes the other side's value; the newer
    side wins the rest), so that the push then sends what the local side won, never its empty
    cells, which would clear the record's values then or a run later.

    Returns the rows, the merged ones re-read with their new state.
    """
    first = {
        r.local_id: record
        for r in rows
        if r.state is None
        and r.remote_id is not None
        and (record := current.get(r.remote_id)) is not None
        and not record.deleted
    }
    if not first:
        return rows
    apply_records(ctx, list(first.values()), counted=False)
    with ctx.store.unit():
        merged = ctx.store.rows_by_ids(ctx.mapping, list(first), lock=False)
    return [merged.get(r.local_id, r) for r in rows]


def _deleted_remotely(row: LocalRow, was_read: bool, record: RemoteRecord | None) -> bool:
    """Whether the record a row would be written to was deleted remotely (soft or for good).

    A linked row whose record was read and not found, or found soft-deleted, must not be
    written: an upsert would bring it back. A create whose chosen id turns up soft-deleted was
    created by an earlier run that never recorded it, and deleted since: it stays deleted too.
    """
    if not was_read:
        return False
    if row.remote_id is None:
        return record is not None and record.deleted
    return record is None or record.deleted


def _mark_gone(ctx: MappingContext, rows: Sequence[LocalRow]) -> None:
    """Mark rows whose remote record was deleted remotely (in the open unit); a create's row is
    linked to the id it had chosen first, so that it is never created again either."""
    links = [(r.local_id, _create_id(ctx, r)) for r in rows if r.remote_id is None]
    ctx.mark_gone("push", [_target_id(ctx, r) for r in rows], links=links)


def _item(ctx: MappingContext, plan: PushPlan) -> PushItem:
    row = plan.local
    if row.remote_id is not None:
        return PushItem(row.local_id, row.remote_id, plan.send, current=plan.current)
    return PushItem(
        row.local_id, _create_id(ctx, row), plan.send, create=True, current=plan.current
    )


def _write(ctx: MappingContext, items: Sequence[PushItem]) -> list[WriteResult]:
    """One batch's answer: the remote's, or in a dry run the records as sent."""
    if ctx.store.dry_run:
        return [WriteResult(i.local_id, record=_assumed(i)) for i in items]
    return ctx.remote.write(items)


def _record(ctx: MappingContext, batch: Sequence[PushPlan], results: list[WriteResult]) -> None:
    """A batch's answer in the store (sync state, failures, change log) and the counters."""
    by_id = {r.local_id: r for r in results}
    done = [
        (p, by_id[p.local.local_id]) for p in batch if by_id[p.local.local_id].record is not None
    ]
    gone = [p.local for p in batch if by_id[p.local.local_id].gone]
    failed = [
        _failure(
            ctx, p.local, by_id[p.local.local_id].error or "", by_id[p.local.local_id].retryable
        )
        for p in batch
        if by_id[p.local.local_id].error is not None
    ]
    with ctx.store.unit() as conn:
        refused = {} if ctx.store.dry_run else ctx.store.record_push(ctx.mapping, done)
        if refused:  # created remotely, but the row would not take the record's id
            failed += [
                _failure(ctx, p.local, _unlinked(r, refused[p.local.local_id]), True)
                for p, r in done
                if p.local.local_id in refused
            ]
            done = [(p, r) for p, r in done if p.local.local_id not in refused]
        clear_failures(conn, ctx.mapping.name, "push", [_key(ctx, p.local) for p, _ in done])
        ctx.fail(failed)
        ctx.journal.pushed(ctx, [p for p, _ in done])
        _mark_gone(ctx, gone)
    for plan, _ in done:
        if plan.outcome is Outcome.INSERTED:
            ctx.result.push.created += 1
        else:
            ctx.result.push.updated += 1


def _unlinked(result: WriteResult, reason: str) -> str:
    """Why a row created remotely holds no remote id: the database refused to write it."""
    assert result.record is not None
    return (
        f"created as {result.record.id}, but the database refused to record its id in the row: "
        f"{reason}; a later run links them"
    )


def _assumed(item: PushItem) -> RemoteRecord:
    """What a dry run takes the remote's answer to be: the record as sent."""
    return RemoteRecord(item.remote_id or "", now_utc(), dict(item.values))


def _key(ctx: MappingContext, row: LocalRow) -> str:
    return row.remote_id or f"{ctx.mapping.local_table}:{row.local_id}"


def _failure(ctx: MappingContext, row: LocalRow, message: str, retryable: bool) -> Failure:
    return Failure(
        "push",
        _key(ctx, row),
        message,
        local_id=row.local_id,
        remote_id=row.remote_id,
        local_updated_at=row.updated_at,
        retryable=retryable,
    )
