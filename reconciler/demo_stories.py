"""How the demo's first contact and edits ended: one story each, checked on every side."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler.demo_data import (
    CLAIMED,
    CLAIMER,
    IN_AIRTABLE,
    LOCAL_NEWER,
    REMOTE_NEWER,
    RENAMED,
    REPS_TABLE,
    XP_CORRECTED,
    local_progressions,
)

if TYPE_CHECKING:
    from reconciler.demo import Demo


@dataclass
class Story:
    """One thing the demo set up on purpose, and where it ended."""

    title: str
    setup: str
    outcome: str
    ok: bool


def first_contact(demo: Demo, report: dict[str, Any]) -> list[Story]:
    """How the first run met the reps every side already held; told right after it."""
    return [_linked(demo, report), _newer_side(demo)]


def tell(demo: Demo, report: dict[str, Any]) -> list[Story]:
    """Each edit, and where it ended on every side; ``report`` is the second run's."""
    return [
        _remote_edit(demo),
        _portal_edits(demo),
        _conflict(demo, 1, LOCAL_NEWER, "Postgres", "2 min ago", "just now"),
        _conflict(demo, 2, REMOTE_NEWER, "Airtable", "just now", "2 min ago"),
        _union(demo),
        _twenty_edits(demo, report),
        _airtable_rename(demo, report),
        _created(demo),
    ]


def _linked(demo: Demo, report: dict[str, Any]) -> Story:
    matched = {m["name"]: m["pull"]["matched"] for m in report["mappings"]}
    rows = demo.sql(
        "SELECT workspace_member_id, twenty_id::text AS twenty_id, airtable_rep_id "
        "FROM rep_progressions"
    ).all()
    twenty = {str(r["id"]): r["workspaceMemberId"] for r in demo.twenty.records()}
    airtable = {
        r["id"]: r["fields"].get("Workspace Member") for r in demo.airtable.records(REPS_TABLE)
    }
    members = [r.workspace_member_id for r in rows]
    # Every side one record per rep, and every link joins the same rep on both of its ends.
    unique = all(
        len(set(side)) == len(side)
        for side in (members, list(twenty.values()), list(airtable.values()))
    )
    linked = all(twenty.get(r.twenty_id) == r.workspace_member_id for r in rows) and all(
        airtable.get(r.airtable_rep_id) == r.workspace_member_id for r in rows if r.airtable_rep_id
    )
    to_airtable = sum(r.airtable_rep_id is not None for r in rows)
    reps, in_airtable = len(demo.progressions), len(IN_AIRTABLE)
    new = len(local_progressions())
    return Story(
        "First contact: linked, not duplicated",
        f"{reps} reps already in Twenty and in Postgres, {in_airtable} of them in Airtable's "
        f"{REPS_TABLE}, none linked; {new} new hires only in Postgres",
        f"linked by workspace_member_id (pull.matched): {matched.get('rep_progressions')} to "
        f"Twenty, {matched.get('reps_airtable')} to Airtable; one per rep on every side: "
        f"Postgres {len(rows)} rows, Twenty {len(twenty)}, Airtable's {REPS_TABLE} {len(airtable)}",
        matched.get("rep_progressions") == reps
        and matched.get("reps_airtable") == in_airtable
        and len(rows) == len(twenty) == reps + new
        and len(airtable) == to_airtable == in_airtable
        and unique
        and linked,
    )


def _newer_side(demo: Demo) -> Story:
    local, twenty, airtable = demo.rep(XP_CORRECTED)
    old, new = demo.expect["xp"]
    values = (local["total_xp"], twenty.get("totalXp"), airtable.get("Total XP"))
    return Story(
        "First contact: the newer side wins",
        f"rep {local['name']}: Total XP {new} in Twenty (corrected 1 h ago), {old} in "
        f"Postgres (3 h ago) and Airtable's {REPS_TABLE} (2 h ago)",
        f"Twenty's edit is the newest; Postgres {_number(values[0])}, Twenty "
        f"{_number(values[1])}, Airtable {_number(values[2])}",
        all(v is not None and float(v) == new for v in values),
    )


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


def _twenty_edits(demo: Demo, report: dict[str, Any]) -> Story:
    local, remote, airtable = demo.rep(1)
    same_run = demo.updated_in(report, "rep_progressions", "pull", demo.progressions[1])
    same_run &= demo.updated_in(report, "reps_airtable", "push", demo.reps[1])
    return Story(
        "Twenty edit, to Airtable's Reps too",
        f"rep {local['name']}: totalXp and currentRank edited in Twenty, streak_days in Postgres",
        f"Postgres total_xp {_number(local['total_xp'])}, rank {local['current_rank']}; "
        f"{'the same run pushed them to' if same_run else 'not pushed by the same run to'} "
        f"Airtable's {REPS_TABLE}: Total XP {_number(airtable.get('Total XP'))}, rank "
        f"{airtable.get('Current Rank')}; Twenty streakDays {remote.get('streakDays')}",
        same_run
        and local["total_xp"] == airtable.get("Total XP") == 4200
        and local["current_rank"] == airtable.get("Current Rank") == "E-5"
        and remote.get("streakDays") == 12,
    )


def _airtable_rename(demo: Demo, report: dict[str, Any]) -> Story:
    local, remote, airtable = demo.rep(RENAMED)
    old, new = demo.expect["renamed"]
    same_run = demo.updated_in(report, "reps_airtable", "pull", demo.reps[RENAMED])
    same_run &= demo.updated_in(report, "rep_progressions", "push", demo.progressions[RENAMED])
    return Story(
        "Airtable edit, to Twenty too",
        f"rep {old}: renamed {new!r} in Airtable's {REPS_TABLE}",
        f"{'the same run pulled it and pushed it to Twenty' if same_run else 'not in one run'}: "
        f"Postgres {local['name']!r}, Twenty {remote.get('name')!r}",
        same_run and local["name"] == remote.get("name") == airtable.get("Name") == new,
    )


def _created(demo: Demo) -> Story:
    ids = demo.sql(
        "SELECT twenty_id FROM rep_progressions WHERE workspace_member_id LIKE 'wm-new-%'"
    ).scalars()
    found = [i for i in ids if i is not None and demo.twenty.get(str(i)) is not None]
    count = len(local_progressions())
    in_airtable = len(demo.airtable.records(REPS_TABLE))
    return Story(
        "Local rows created remotely",
        f"{count} rep progressions existed only in Postgres",
        f"{len(found)} of {count} now in Twenty, their twenty_id stored locally; Airtable's "
        f"{REPS_TABLE} still {in_airtable} (Airtable records are never created)",
        len(found) == count and in_airtable == len(IN_AIRTABLE),
    )


def _number(value: Any) -> str:
    """A number as a person writes it: 4200, not Decimal('4200') or 4200.0."""
    if value is None:
        return "(empty)"
    number = float(value)
    return str(int(number)) if number.is_integer() else str(number)


def _both(local: Any, remote: Any) -> str:
    """Where a value ended: one value on both sides, or each side's own."""
    if local == remote:
        return f"both sides now {local!r}"
    return f"Postgres {local!r} but the remote {remote!r}"
