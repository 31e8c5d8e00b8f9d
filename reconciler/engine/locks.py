"""The locks a run holds while it works: one per mapping that runs (two runs never work on one
mapping at once), and the run's own, which marks it alive while it lasts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Connection

from reconciler.store.database import available_locks

LOCKED_BY_ANOTHER_RUN = "locked by another run"  # a mapping's skip reason with --skip-locked


@dataclass
class Locks:
    """What a run got of the locks it asked for.

    Attributes:
        refusal: why the run may not go on (another run holds what it needs), or None.
        skipped: mappings another run holds, skipped with ``--skip-locked``.
    """

    refusal: str | None = None
    skipped: set[str] = field(default_factory=set)


@contextmanager
def run_locks(
    conn: Connection, names: list[str], own: str, *, skip_locked: bool
) -> Iterator[Locks]:
    """Hold the lock of every mapping in ``names`` and the run's own lock ``own`` while the
    context lasts.

    A mapping another run holds stops the whole run (naming every mapping held), or with
    ``skip_locked`` is skipped alone; the run stops only when every mapping is held elsewhere.
    """
    with available_locks(conn, [*names, own]) as taken:
        held = [name for name in names if name not in taken]
        locks = Locks()
        if skip_locked:
            locks.skipped = set(held)
            if len(held) < len(names):
                held = []  # the others run
        if held or own not in taken:
            locks.refusal = refusal(held, names)
        yield locks


def refusal(held: list[str], names: list[str]) -> str:
    """Why a run did nothing: another run holds the locks of ``held`` (of this run's mappings
    ``names``), or this run's own lock when ``held`` is empty."""
    if len(held) == 1:
        what = f"the lock of mapping {held[0]}"
    elif held and len(held) == len(names):
        what = f"the locks of every mapping of this run ({', '.join(held)})"
    elif held:
        what = f"the locks of mappings {', '.join(held)}"
    else:
        what = "this run's own lock"
    hint = " (--skip-locked runs the others)" if 0 < len(held) < len(names) else ""
    return f"another run holds {what}; nothing was done{hint}"
