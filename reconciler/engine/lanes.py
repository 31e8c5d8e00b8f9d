"""Lanes: which mappings of a run may work at the same time.

Mappings on different Airtable bases or Twenty workspaces have budgets of their own, so a run
with several of them finishes in about the time of the slowest one when they work side by side.
Two kinds of mapping must still take turns, and are put in one lane:

* mappings on the same remote budget (one base, one workspace): they share one pacer, so side
  by side they would gain nothing, only interleave;
* mappings on the same local table (a hub): two stages writing one table at once could lock
  its rows in opposite orders.

Each lane works through its mappings one after another on a database connection of its own;
the lanes of a stage run in threads, and every lane finishes a stage before the next begins
(stage 1 for every mapping before stage 2 for any).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

# Threads (and database connections) a run uses at the most. It also keeps a run under
# Airtable's 50 requests a second per user across bases (shared docs ``airtable-api.md``,
# "Limits and errors"): 8 bases at 5 a second each are 40.
MAX_LANES = 8


def lanes(items: Sequence[T], keys: Callable[[T], Sequence[Hashable]]) -> list[list[T]]:
    """Group items that share any key (transitively), each group in the items' order.

    Args:
        items: the mappings' contexts, in configuration order.
        keys: what each item must not share with another lane (its budget, its table).
    """
    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[Hashable, int] = {}
    for index, item in enumerate(items):
        for key in keys(item):
            if key in owner:
                parent[root(index)] = root(owner[key])
            else:
                owner[key] = index
    grouped: dict[int, list[T]] = {}
    for index, item in enumerate(items):
        grouped.setdefault(root(index), []).append(item)
    return list(grouped.values())


def side_by_side(groups: Sequence[Sequence[T]], work: Callable[[T], None]) -> None:
    """Run ``work`` on every item: the groups side by side, each group's items in turn.

    One group runs in the calling thread. An exception from a group is raised here once
    every group has finished (the others are never left running).
    """
    if len(groups) <= 1:
        for group in groups:
            for item in group:
                work(item)
        return

    def run(group: Sequence[T]) -> None:
        for item in group:
            work(item)

    with ThreadPoolExecutor(max_workers=min(len(groups), MAX_LANES)) as pool:
        futures = [pool.submit(run, group) for group in groups]
        for future in futures:
            future.result()
