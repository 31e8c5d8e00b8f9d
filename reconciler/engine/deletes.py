"""Deletions: marked, never applied, and only from a complete ``--full`` sweep.

Deletions are invisible to modified-time filters, and an outage or a paging bug can look like a
mass delete. So a row is never deleted locally: a complete sweep of every remote record marks the
rows whose record is gone with ``remote_deleted_at``, and a brake refuses to mark more than a
share of a table in one run unless the operator says so.
"""

from __future__ import annotations

from reconciler.engine.context import MappingContext
from reconciler.report import RecordErrorEntry


def sweep(ctx: MappingContext, live_ids: set[str], *, max_share: float, allow_mass: bool) -> None:
    """Mark local rows whose remote record was absent from a complete sweep."""
    with ctx.store.unit():
        linked = ctx.store.linked_remote_ids(ctx.mapping)
    gone = sorted(set(linked) - live_ids)
    if not gone:
        return
    share = len(gone) / len(linked)
    if share > max_share and not allow_mass:
        ctx.errors.append(
            RecordErrorEntry(
                ctx.mapping.name,
                "pull",
                None,
                f"refusing to mark {len(gone)} of {len(linked)} rows ({share:.0%}) as deleted "
                f"remotely: more than {max_share:.0%} looks like an outage; if the records "
                "really are gone, run again with --full --allow-mass-delete",
            )
        )
        return
    with ctx.store.unit():
        ctx.mark_gone("pull", gone)
