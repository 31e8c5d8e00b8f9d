"""Stage 1: bring remote changes into Postgres, one page per transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy.exc import DataError, IntegrityError

from reconciler.engine.context import MappingContext
from reconciler.engine.matching import Matches, match_records
from reconciler.engine.plan import Outcome, PullPlan, plan_pull
from reconciler.engine.window import Window, WindowMoved
from reconciler.records import LocalRow, RemoteRecord
from reconciler.store.history import Failure, clear_failures, due_pull_retries


def pull(ctx: MappingContext, span: Window, should_stop: Callable[[], bool]) -> set[str] | None:
    """Read the window page by page and apply it; then retry earlier failures that are due.

    Returns the ids of the live remote records read when the window was read completely (so
    the watermark may move, and a full sweep may look for deletions), else None.

    Raises:
        WindowMoved: the first answer shows the remote's clock elsewhere than the window
            assumed; nothing was applied.
    """
    seen: dict[str, datetime] = {}
    live: set[str] = set()
    for number, page in enumerate(ctx.remote.list_changed(span.since, span.until)):
        if number == 0 and not span.holds(ctx.remote.clock.offset):
            raise WindowMoved
        fresh = [r for r in page if r.id not in seen or r.modified_at > seen[r.id]]
        seen.update({r.id: r.modified_at for r in fresh})
        live.update(r.id for r in page if not r.deleted)
        live.difference_update(r.id for r in page if r.deleted)
        apply_records(ctx, [r for r in fresh if not r.deleted])
        _mark_deleted(ctx, [r.id for r in fresh if r.deleted])
        ctx.progress("pull", len(page))
        if should_stop():
            return None
    with ctx.store.unit() as conn:
        due = [i for i in due_pull_retries(conn, ctx.mapping.name) if i not in seen]
    if due:
        found = ctx.remote.fetch(due)
        apply_records(ctx, [found[i] for i in due if i in found and not found[i].deleted])
        _mark_deleted(ctx, [i for i in due if i in found and found[i].deleted])
    return live


def _mark_deleted(ctx: MappingContext, remote_ids: Sequence[str]) -> None:
    """Stamp local rows whose remote record was explicitly (soft-)deleted."""
    if remote_ids:
        with ctx.store.unit():
            ctx.mark_gone("pull", remote_ids)


def apply_records(
    ctx: MappingContext,
    records: Sequence[RemoteRecord],
    *,
    matches: Matches | None = None,
    counted: bool = True,
) -> None:
    """Plan and apply one page in one transaction, with its sync state and failures.

    Records no row is linked to are first matched to existing rows by natural key (when the
    mapping has ``match_on``). A push that found matches passes them (``matches``), linked in
    the same transaction, and ``counted`` False: the pull counters are left alone.
    """
    if not records:
        return
    if counted:
        ctx.result.pull.fetched += len(records)
    good = [r for r in records if r.error is None]
    failed = [
        Failure("pull", r.id, r.error or "", remote_id=r.id, retryable=False)
        for r in records
        if r.error is not None
    ]
    with ctx.store.unit() as conn:
        rows, matches = _rows_for(ctx, good, matches)
        failed += matches.failures
        ambiguous = {f.record_key for f in matches.failures}
        plans = [
            plan_pull(ctx.mapping, r, rows.get(r.id), ctx.skew)
            for r in good
            if r.id not in ambiguous
        ]
        for plan in plans:
            plan.matched = plan.remote.id in matches.records
        failed += _apply_isolating(ctx, plans)
        failed_ids = {f.record_key for f in failed}
        clear_failures(
            conn,
            ctx.mapping.name,
            "pull",
            [p.remote.id for p in plans if p.remote.id not in failed_ids],
        )
        ctx.fail(failed)
        ctx.journal.pulled(ctx, [p for p in plans if p.remote.id not in failed_ids])
    if counted:
        ctx.result.pull.matched += sum(p.matched for p in plans if p.remote.id not in failed_ids)
        for plan in plans:
            if plan.remote.id not in failed_ids:
                _count(ctx, plan)


def _rows_for(
    ctx: MappingContext, records: Sequence[RemoteRecord], matches: Matches | None
) -> tuple[dict[str, LocalRow], Matches]:
    """The local rows of these records (locked), after linking the rows of unrecorded creates
    and, by natural key, rows that hold the same entity (``matches``, when already decided)."""
    ids = [r.id for r in records]
    rows = ctx.store.rows_by_remote_ids(ctx.mapping, ids)
    linked = _adopt_unrecorded_creates(ctx, [i for i in ids if i not in rows])
    if matches is None:
        unknown = [r for r in records if r.id not in rows]
        matches = match_records(ctx, unknown) if ctx.mapping.match_on and unknown else Matches()
    if matches.links:
        ctx.store.link(ctx.mapping, matches.links)
    if linked or matches.links:
        rows = ctx.store.rows_by_remote_ids(ctx.mapping, ids)
    for rid, before in matches.rows.items():
        if rid in rows:  # judged by when the row last changed, not by its linking
            rows[rid] = replace(rows[rid], updated_at=before.updated_at)
    return rows, matches


def _adopt_unrecorded_creates(ctx: MappingContext, unknown: Sequence[str]) -> bool:
    """Link local rows to the records this tool created for them but never recorded (a crash
    between the remote write and its transaction), instead of inserting those records as new
    rows: a create's id is derived from the local row. Returns whether any row was linked."""
    if not unknown or not ctx.mapping.create_remote:
        return False
    ours = {ctx.create_id(i): i for i in ctx.store.unlinked_ids(ctx.mapping)}
    pairs = [(ours[rid], rid) for rid in unknown if rid in ours]
    ctx.store.link(ctx.mapping, pairs)
    return bool(pairs)


def _apply_isolating(ctx: MappingContext, plans: list[PullPlan]) -> list[Failure]:
    """Apply plans set-based; if the database refuses one row, split until it fails alone."""
    if not plans:
        return []
    try:
        with ctx.store.conn.begin_nested():
            ctx.store.apply_pull(ctx.mapping, plans)
        return []
    except (DataError, IntegrityError) as exc:
        if len(plans) == 1:
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            return [
                Failure(
                    "pull",
                    plans[0].remote.id,
                    f"database refused the record: {reason}",
                    remote_id=plans[0].remote.id,
                    retryable=False,
                )
            ]
    middle = len(plans) // 2
    return _apply_isolating(ctx, plans[:middle]) + _apply_isolating(ctx, plans[middle:])


def _count(ctx: MappingContext, plan: PullPlan) -> None:
    counts = ctx.result.pull
    counts.conflicts += int(plan.conflict)
    if plan.outcome is Outcome.INSERTED:
        counts.inserted += 1
    elif plan.outcome is Outcome.UPDATED:
        counts.updated += 1
    elif plan.outcome is Outcome.SKIPPED_LOCAL_NEWER:
        counts.skipped_local_newer += 1
    else:
        counts.unchanged += 1
