"""Stage 1: bring remote changes into Postgres, one page per transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import NamedTuple

from sqlalchemy.exc import DBAPIError

from reconciler.engine.context import MappingContext
from reconciler.engine.matching import Matches, match_records
from reconciler.engine.plan import Outcome, PullPlan, plan_pull
from reconciler.engine.prefetch import Prefetch
from reconciler.engine.window import Window, WindowMoved
from reconciler.records import LocalRow, RemoteRecord
from reconciler.store.history import Failure, clear_failures, due_pull_retries, has_failures
from reconciler.store.sql import refusal, refused_row, sqlstate

# Pages read ahead of the one being applied, at the most; as many are applied together when
# the reading is that far ahead (1,000 records of Airtable's pages, 2,000 of Twenty's).
PAGES_AHEAD = 10


def pull(ctx: MappingContext, span: Window, should_stop: Callable[[], bool]) -> set[str] | None:
    """Read the window page by page and apply it; then retry earlier failures that are due.

    The first page is read, its clock checked and the page applied before anything else is
    read; from then on the next pages are read while this one is applied (:class:`Prefetch`,
    up to ``PAGES_AHEAD`` ahead). When the reading has got ahead of the applying, the pages
    already read are applied together, in one transaction: fewer statements and commits where
    the database is the slower side, each page on its own where the remote is. A group is
    applied with the remote's clock as it stood when its first page was read (the pages were
    read moments apart).

    Returns None when the window was not read completely; else (the watermark may move) the
    ids of the live remote records read when it was a full sweep (which may look for
    deletions with them), and an empty set for a window.

    Raises:
        WindowMoved: the first answer shows the remote's clock elsewhere than the window
            assumed; nothing was applied.
    """
    with ctx.store.unit() as conn:
        failing = has_failures(conn, ctx.mapping.name, "pull")
    listing = _Listing(failing=failing, sweeping=span.since is None)
    pages = ctx.remote.list_changed(span.since, span.until)
    first = next(pages, None)
    if first is not None:
        if not span.holds(ctx.remote.clock.offset):
            raise WindowMoved
        listing.apply(ctx, first, ctx.skew)
        if should_stop():
            return None
        with Prefetch(pages, lambda: ctx.skew, ahead=PAGES_AHEAD) as ahead:
            for page, skew in ahead:
                more = ahead.ready(PAGES_AHEAD)
                listing.apply(ctx, [r for p in [page, *(p for p, _ in more)] for r in p], skew)
                if should_stop():
                    return None
    with ctx.store.unit() as conn:
        due = [i for i in due_pull_retries(conn, ctx.mapping.name) if i not in listing.seen]
    if due:
        found = ctx.remote.fetch(due)
        apply_records(ctx, [found[i] for i in due if i in found and not found[i].deleted])
        _mark_deleted(ctx, [i for i in due if i in found and found[i].deleted])
    return listing.live


class _Listing:
    """What a pull has read so far: the newest modified time of each record (as a POSIX
    timestamp: half a datetime's memory, for every record of the window), on a full sweep the
    ids of the records alive at their last reading, and whether any record of the mapping may
    have a pull failure recorded (else no page has failures to clear)."""

    def __init__(self, *, failing: bool, sweeping: bool) -> None:
        self.seen: dict[str, float] = {}
        self.live: set[str] = set()
        self.failing = failing
        self.sweeping = sweeping

    def apply(self, ctx: MappingContext, page: list[RemoteRecord], skew: timedelta) -> None:
        """Apply a page's records not already applied in a newer version (a record read twice
        in one group of pages is applied once, in its newest version)."""
        seen = self.seen
        newest: dict[str, RemoteRecord] = {}
        for r in page:
            if (r.id not in seen or r.modified_at.timestamp() > seen[r.id]) and (
                r.id not in newest or r.modified_at > newest[r.id].modified_at
            ):
                newest[r.id] = r
        fresh = list(newest.values())
        seen.update({r.id: r.modified_at.timestamp() for r in fresh})
        if self.sweeping:
            for r in page:  # in reading order: a record's last reading says whether it lives
                if r.deleted:
                    self.live.discard(r.id)
                else:
                    self.live.add(r.id)
        failed = ctx.result.pull.failed
        apply_records(ctx, [r for r in fresh if not r.deleted], skew=skew, clear=self.failing)
        self.failing |= ctx.result.pull.failed > failed
        _mark_deleted(ctx, [r.id for r in fresh if r.deleted])
        ctx.progress("pull", len(page))


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
    skew: timedelta | None = None,
    clear: bool = True,
) -> None:
    """Plan and apply one page in one transaction, with its sync state and failures.

    Records no row is linked to are first matched to existing rows by natural key (when the
    mapping has ``match_on``). A push that found matches passes them (``matches``), linked in
    the same transaction, and ``counted`` False: the pull counters are left alone. ``skew`` is
    the remote's clock minus the database's as it stood when the records were read (default:
    as it stands now). ``clear`` False: the caller knows no pull failure of the mapping is
    recorded, so none is cleared.
    """
    if not records:
        return
    if counted:
        ctx.result.pull.fetched += len(records)
        for record in records:
            if record.errored:
                ctx.result.count_error_values(record.errored)
    skew = ctx.skew if skew is None else skew
    try:
        plans, failed_ids = _apply_page(ctx, records, matches, skew, clear, isolate=False)
    except _Refused:
        # The unit was rolled back: the page again, in savepoints, until the row fails alone.
        plans, failed_ids = _apply_page(ctx, records, matches, skew, clear, isolate=True)
    if counted:
        ctx.result.pull.matched += sum(p.matched for p in plans if p.remote.id not in failed_ids)
        for plan in plans:
            if plan.remote.id not in failed_ids:
                _count(ctx, plan)


class _Refused(Exception):
    """The database refused a row of a page applied whole."""


def _apply_page(
    ctx: MappingContext,
    records: Sequence[RemoteRecord],
    matches: Matches | None,
    skew: timedelta,
    clear: bool,
    *,
    isolate: bool,
) -> tuple[list[PullPlan], set[str]]:
    """Plan and apply a page in one unit of work; returns the plans and the ids that failed.

    A page is first applied whole, with no savepoint to pay for on every page: if the database
    refuses a row, ``_Refused`` rolls the unit back, and the page is applied again with
    ``isolate``, each part in a savepoint of its own (``_apply_isolating``).
    """
    good = [r for r in records if r.error is None]
    failed = [
        Failure("pull", r.id, r.error or "", remote_id=r.id, retryable=False)
        for r in records
        if r.error is not None
    ]
    with ctx.store.unit() as conn:
        rows, matches, unlinked = _rows_for(ctx, good, matches)
        failed += matches.failures + unlinked
        unreadable = _unreadable(good, rows)
        failed += unreadable.failures
        left = {f.record_key for f in failed} | unreadable.applied
        plans = [
            plan_pull(ctx.mapping, r, rows.get(r.id), skew, matched=r.id in matches.records)
            for r in good
            if r.id not in left
        ]
        if isolate:
            failed += _apply_isolating(ctx, plans)
        else:
            try:
                ctx.store.apply_pull(ctx.mapping, plans)
            except DBAPIError as exc:
                if not refused_row(exc):
                    raise
                raise _Refused from exc
        failed_ids = {f.record_key for f in failed}
        if clear:
            clear_failures(
                conn,
                ctx.mapping.name,
                "pull",
                [p.remote.id for p in plans if p.remote.id not in failed_ids],
            )
        ctx.fail(failed)
        ctx.journal.pulled(ctx, [p for p in plans if p.remote.id not in failed_ids])
    return plans, failed_ids


class _Unreadable(NamedTuple):
    failures: list[Failure]
    applied: set[str]


def _unreadable(records: Sequence[RemoteRecord], rows: dict[str, LocalRow]) -> _Unreadable:
    """The records whose local row holds a value no remote can hold (NaN, infinity): nothing
    can be decided for them, the row's value being unknown. One the row's state already holds
    in this version (read again by an overlapping window) brings nothing, and is left alone
    (``applied``): the row's push fails. Any other fails, and is tried again as any failed
    pull."""
    failures, applied = [], set()
    for record in records:
        row = rows.get(record.id)
        if row is None or row.error is None:
            continue
        if row.state is not None and row.state.remote_modified_at == record.modified_at:
            applied.add(record.id)
        else:
            failures.append(
                Failure("pull", record.id, row.error, local_id=row.local_id, remote_id=record.id)
            )
    return _Unreadable(failures, applied)


def _rows_for(
    ctx: MappingContext, records: Sequence[RemoteRecord], matches: Matches | None
) -> tuple[dict[str, LocalRow], Matches, list[Failure]]:
    """The local rows of these records (locked), after linking the rows of unrecorded creates
    and, by natural key, rows that hold the same entity (``matches``, when already decided).

    A row the database refuses to link (a trigger of the application) makes its record fail
    alone, tried again later: inserted as a new row instead, it would hold the entity twice.
    """
    ids = [r.id for r in records]
    rows = ctx.store.rows_by_remote_ids(ctx.mapping, ids)
    pairs = _unrecorded_creates(ctx, [i for i in ids if i not in rows])
    if matches is None:
        unknown = [r for r in records if r.id not in rows]
        matches = match_records(ctx, unknown) if ctx.mapping.match_on and unknown else Matches()
    links = list(dict.fromkeys(pairs + matches.links))  # a create's row may match it too
    refused = ctx.store.link(ctx.mapping, links)
    if links:
        rows = ctx.store.rows_by_remote_ids(ctx.mapping, ids)
    for rid, before in matches.rows.items():
        if rid in rows:  # judged by when the row last changed, not by its linking
            rows[rid] = replace(rows[rid], updated_at=before.updated_at)
    unlinked = [
        Failure(
            "pull",
            rid,
            f"the database refused to link row {local_id} to it: {refused[local_id]}",
            local_id=local_id,
            remote_id=rid,
        )
        for local_id, rid in links
        if local_id in refused
    ]
    return rows, matches, unlinked


def _unrecorded_creates(ctx: MappingContext, unknown: Sequence[str]) -> list[tuple[int, str]]:
    """The local rows of the records this tool created for them but never recorded (a crash
    between the remote write and its transaction), as ``(local_id, remote_id)`` pairs to link
    instead of inserting those records as new rows: a create's id is derived from the row."""
    if not unknown or not ctx.mapping.create_remote:
        return []
    ours = {ctx.create_id(i, deleted): i for i, deleted in ctx.store.unlinked_ids(ctx.mapping)}
    return [(ours[rid], rid) for rid in unknown if rid in ours]


def _apply_isolating(ctx: MappingContext, plans: list[PullPlan]) -> list[Failure]:
    """Apply plans set-based; if the database refuses one row, split until it fails alone."""
    if not plans:
        return []
    try:
        with ctx.store.conn.begin_nested():
            ctx.store.apply_pull(ctx.mapping, plans)
        return []
    except DBAPIError as exc:
        if not refused_row(exc):
            raise
        if len(plans) == 1:
            return [_refused(ctx, plans[0].remote.id, exc)]
    middle = len(plans) // 2
    return _apply_isolating(ctx, plans[:middle]) + _apply_isolating(ctx, plans[middle:])


# Postgres' SQLSTATEs for a NULL written into a NOT NULL column, and for a value a foreign key
# finds no row for.
NOT_NULL_VIOLATION = "23502"
FOREIGN_KEY_VIOLATION = "23503"


def _refused(ctx: MappingContext, remote_id: str, exc: DBAPIError) -> Failure:
    """The failure of a record the database refused. A value the table cannot take fails for
    good (until the record changes). Two refusals are the table's, not the record's, and the
    record is tried again on later runs: a NULL in a ``NOT NULL`` column (the message names the
    fix), and a value whose row a foreign key does not find yet (an application or another
    mapping may bring it)."""
    orig = getattr(exc, "orig", exc)
    reason = refusal(exc)
    state = sqlstate(exc)
    not_null = state == NOT_NULL_VIOLATION
    column = getattr(getattr(orig, "diag", None), "column_name", None)
    if state == FOREIGN_KEY_VIOLATION:
        reason += "; tried again on later runs, once the row it refers to exists"
    if not_null and column in ctx.mapping.columns:
        table = ctx.mapping.local_table
        reason = (
            f"{ctx.mapping.field(column).remote} is empty, and {table}.{column} is NOT NULL: "
            f"allow NULL in it (ALTER TABLE {table} ALTER COLUMN {column} DROP NOT NULL) and a "
            "later run takes the record"
        )
    return Failure(
        "pull",
        remote_id,
        f"database refused the record: {reason}",
        remote_id=remote_id,
        retryable=state in (NOT_NULL_VIOLATION, FOREIGN_KEY_VIOLATION),
    )


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
