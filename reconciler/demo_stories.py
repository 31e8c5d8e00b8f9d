"""How the demo's edits ended: one story per edit, checked on both sides."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler.demo_data import CLAIMED, CLAIMER, LOCAL_NEWER, REMOTE_NEWER, local_progressions

if TYPE_CHECKING:
    from reconciler.demo import Demo


@dataclass
class Story:
    """One thing the demo set up on purpose, and where it ended."""

    title: str
    setup: str
    outcome: str
    ok: bool


def tell(demo: Demo) -> list[Story]:
    """Each edit, and where it ended on both sides."""
    return [
        _remote_edit(demo),
        _portal_edits(demo),
        _conflict(demo, 1, LOCAL_NEWER, "Postgres", "2 min ago", "just now"),
        _conflict(demo, 2, REMOTE_NEWER, "Airtable", "just now", "2 min ago"),
        _union(demo),
        _twenty_edits(demo),
        _created(demo),
    ]


def _remote_edit(demo: Demo) -> Story:
    local, _ = demo.lead(0)
    return Story(
        "Airtable edit, pulled",
        f"lead {local['first_name']} {local['last_name']}: Status 'Qualified' and "
        "ICP Score 92.5 set in Airtable",
        f"Postgres has Status {local['status']!r}, ICP Score {local['icp_score']}",
        local["status"] == "Qualified" and float(local["icp_score"]) == 92.5,
    )


def _portal_edits(demo: Demo) -> Story:
    claimed = [demo.lead(i)[1].get("Claimed By") for i in CLAIMED]
    done = sum(c == CLAIMER for c in claimed)
    return Story(
        "Portal edits, pushed",
        f"{len(CLAIMED)} leads claimed in Postgres (claimed_by, claimed_at, status)",
        f"{done} of {len(CLAIMED)} now claimed in Airtable",
        done == len(CLAIMED),
    )


def _conflict(
    demo: Demo, index: int, notes: tuple[str, str], winner: str, remote_at: str, local_at: str
) -> Story:
    local, remote = demo.lead(index)
    expected = notes[1] if winner == "Postgres" else notes[0]
    return Story(
        f"Conflict, {winner} newer",
        f"lead {local['first_name']} {local['last_name']}, Notes: Airtable {notes[0]!r} "
        f"({remote_at}), Postgres {notes[1]!r} ({local_at})",
        f"{winner} wins; " + _both(local["notes"], remote.get("Notes")),
        local["notes"] == remote.get("Notes") == expected,
    )


def _union(demo: Demo) -> Story:
    local, remote = demo.progression(demo.progressions[0])
    there = json.loads(remote.get("completedModules") or "[]")
    expected = demo.expect["union"]
    return Story(
        "Array union",
        f"rep {local['name']}: completedModules got 'negotiation' in Twenty and "
        "'cold-calling' in Postgres",
        "union; " + _both(local["completed_modules"], there),
        local["completed_modules"] == there and sorted(there) == sorted(expected),
    )


def _twenty_edits(demo: Demo) -> Story:
    local, remote = demo.progression(demo.progressions[1])
    return Story(
        "Edits to different fields",
        f"rep {local['name']}: totalXp and currentRank edited in Twenty, streak_days in Postgres",
        f"Postgres total_xp {local['total_xp']}, rank {local['current_rank']}; "
        f"Twenty streakDays {remote.get('streakDays')}",
        local["total_xp"] == 4200
        and local["current_rank"] == "E-5"
        and remote.get("streakDays") == 12,
    )


def _created(demo: Demo) -> Story:
    ids = demo.sql(
        "SELECT twenty_id FROM rep_progressions WHERE workspace_member_id LIKE 'wm-new-%'"
    ).scalars()
    found = [i for i in ids if i is not None and demo.twenty.get(str(i)) is not None]
    count = len(local_progressions())
    return Story(
        "Local rows created remotely",
        f"{count} rep progressions existed only in Postgres",
        f"{len(found)} of {count} now in Twenty, their twenty_id stored locally",
        len(found) == count,
    )


def _both(local: Any, remote: Any) -> str:
    """Where a value ended: one value on both sides, or each side's own."""
    if local == remote:
        return f"both sides now {local!r}"
    return f"Postgres {local!r} but the remote {remote!r}"
