"""What a mapping leaves behind once its stages are done: after a complete pull, the watermark
moved (and, after a sweep, deletions looked for); at the end, its dead letters reported and what
the run learned of its remote kept for the next one."""

from __future__ import annotations

from reconciler.engine import window
from reconciler.engine.context import MappingContext
from reconciler.engine.deletes import sweep
from reconciler.report import RecordErrorEntry
from reconciler.store import history


def after_complete_pull(
    ctx: MappingContext,
    span: window.Window,
    live: set[str],
    *,
    full: bool,
    mass_delete_share: float,
    allow_mass_delete: bool,
) -> None:
    """Move the watermark; let push trust the state; after a sweep (``full``), look for
    deletions and count every mapped column as filled."""
    ctx.pulled_until = span.until  # every remote change up to it is now in the state
    if not ctx.store.dry_run:
        with ctx.store.unit() as conn:
            history.set_watermark(conn, ctx.mapping.name, span.until)
    if full:
        ctx.result.unfilled = []  # every record's values came in
        sweep(ctx, live, max_share=mass_delete_share, allow_mass=allow_mass_delete)


def finish_mapping(ctx: MappingContext, errors: list[RecordErrorEntry], *, full: bool) -> None:
    """Report dead letters; keep what this run learned of the remote, and which mapped columns
    the synced rows hold a base for, for the next one; then let the remote say whether what it
    found stops the mapping."""
    report_dead_letters(ctx, errors)
    ctx.result.clock_offset = ctx.clock_offset
    if not ctx.store.dry_run and ctx.kept is not None:
        with ctx.store.unit() as conn:
            history.keep_remote_state(
                conn,
                ctx.mapping.name,
                schema=ctx.remote.cache_update(),
                clock_offset=ctx.remote.clock.offset,
                filled=ctx.kept.filled_after(
                    ctx.mapping, swept=full and ctx.pulled_until is not None
                ),
                pacing=ctx.remote.pacer.lessons() if ctx.remote.pacer.taught_now else None,
            )
    ctx.remote.verdict()


def report_dead_letters(ctx: MappingContext, errors: list[RecordErrorEntry]) -> None:
    """Count the mapping's dead-lettered pushes, and add to ``errors`` every dead letter this
    run has not reported yet (one left by an earlier run, still waiting for a local edit)."""
    with ctx.store.unit() as conn:
        dead = history.dead_letters(conn, ctx.mapping.name)
    reported = {(e.stage, e.record) for e in errors if e.mapping == ctx.mapping.name}
    ctx.result.push.dead = sum(d.stage == "push" for d in dead)
    for item in dead:
        if (item.stage, item.record_key) not in reported:
            errors.append(
                RecordErrorEntry(
                    ctx.mapping.name,
                    item.stage,
                    item.record_key,
                    history.dead_letter_message(item.attempts, item.message),
                )
            )
