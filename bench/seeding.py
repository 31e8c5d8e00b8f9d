"""Bench data: realistic remote records, seeded through the emulators' Python API (no HTTP, no
rate limit, no request log), and local edits written the way an application would (SQL).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from reconciler.emulators.airtable import AirtableEmulator
from reconciler.emulators.twenty import TwentyEmulator

RECENT_MINUTES = 5.0  # inside the default 20-minute window
OLD_MINUTES = 90.0  # outside it
STATUSES = ("New", "Contacted", "Qualified", "Booked", "Lost")
SOURCES = ("Facebook", "Google", "Referral", "Webinar")
RANKS = tuple(f"E-{n}" for n in range(1, 8))


def minutes_ago(minutes: float) -> datetime:
    """An aware UTC time ``minutes`` ago."""
    return datetime.now(UTC) - timedelta(minutes=minutes)


def lead_fields(i: int) -> dict[str, Any]:
    """Airtable field values of lead number ``i``: every pulled field filled, as in production."""
    return {
        "First Name": f"Ann{i}",
        "Last Name": f"Lee{i}",
        "Email": f"ann.lee{i}@example.com",
        "Phone": f"+1 555 {i % 1000:03d} {i % 10000:04d}",
        "Company": f"Acme Holdings {i % 997}",
        "Title": "Head of Operations",
        "ICP Score": 40 + (i % 60) + 0.5,
        "Status": STATUSES[i % len(STATUSES)],
        "Campaign Name": f"Spring campaign {i % 12}",
        "Lead Source": SOURCES[i % len(SOURCES)],
        "Form ID": f"form-{i % 40}",
        "SMS Sent Count": i % 4,
        "SMS Sequence Position": i % 6,
        "SMS Last Sent At": "2026-11-19T08:30:00.250Z",
        "Booked": i % 3 == 0,
        "Booked At": "2026-11-20T15:00:00.000Z" if i % 3 == 0 else None,
        "SMS Stop": i % 17 == 0,
        "Processing Status": "queued",
        "Campaign ID": f"C-{i % 12}",
        "Notes": f"Lead {i} asked for a call back on Tuesday morning about pricing tiers.",
    }


def progression_fields(i: int) -> dict[str, Any]:
    """Twenty field values of rep progression number ``i`` (JSON held as text)."""
    return {
        "name": f"Rep {i}",
        "workspaceMemberId": f"member-{i}",
        "totalXp": 1000 + i,
        "currentLevel": 1 + i % 7,
        "closedDeals": i % 11,
        "streakDays": i % 5,
        "currentRank": RANKS[i % len(RANKS)],
        "badges": json.dumps(["starter", f"closer-{i % 3}"]),
        "efficiencyMetrics": json.dumps({"calls": 10 + i % 40, "rate": 0.5}),
        "completedModules": json.dumps([f"m{n}" for n in range(1 + i % 5)]),
        "certifications": "[]",
        "defeatedBosses": json.dumps(["boss1"]),
        "passedExams": json.dumps(["e1", "e2"]),
        "lastActivityDate": "2026-11-20T09:00:00.000Z",
    }


def seed_leads(
    em: AirtableEmulator, count: int, *, age_minutes: float = RECENT_MINUTES
) -> list[str]:
    """Create ``count`` leads last modified ``age_minutes`` ago; returns their record ids."""
    stamp = minutes_ago(age_minutes)
    return [em.create("Leads", lead_fields(i), modified_at=stamp)["id"] for i in range(count)]


def edit_remote_leads(em: AirtableEmulator, ids: list[str], round: int = 1) -> None:
    """Edit a pulled and a shared field of every lead in Airtable (modified now)."""
    for n, record_id in enumerate(ids):
        em.update(
            "Leads",
            record_id,
            {"Status": STATUSES[(n + round) % len(STATUSES)], "Notes": f"Remote edit {round}."},
        )


def seed_progressions(
    em: TwentyEmulator, count: int, *, age_minutes: float = RECENT_MINUTES
) -> None:
    """Create ``count`` rep progressions last updated about ``age_minutes`` ago, a millisecond
    apart (records made one by one, not by one bulk statement, whose rows would share one
    stamp)."""
    stamp = minutes_ago(age_minutes)
    for i in range(count):
        em.create(progression_fields(i), updated_at=stamp - timedelta(milliseconds=count - i))


def edit_leads(db: sa.Engine, count: int, round: int = 1, *, table: str = "leads") -> int:
    """Edit the push-capable fields of the first ``count`` synced leads (of ``table``, a copy
    of ``leads``); returns rows changed.

    Each ``round`` writes different values, so every round has something to push.
    """
    return _execute(
        db,
        f"UPDATE {table} SET notes = 'Called back (round {round:d}), wants a demo (' || id || ')', "
        "processing_status = 'done', claimed_by = 'rep@example.com', "
        "claimed_at = '2026-11-20T10:00:00.123Z' "
        f"WHERE id IN (SELECT id FROM {table} WHERE airtable_record_id IS NOT NULL "
        "ORDER BY id LIMIT :n)",
        count,
    )


def edit_progressions(db: sa.Engine, count: int) -> int:
    """Edit the first ``count`` synced rep progressions; returns rows changed.

    Every call raises the XP again, so every call has something to push.
    """
    return _execute(
        db,
        "UPDATE rep_progressions SET total_xp = total_xp + 250, streak_days = streak_days + 1, "
        "current_rank = 'E-7' "
        "WHERE id IN (SELECT id FROM rep_progressions WHERE twenty_id IS NOT NULL "
        "ORDER BY id LIMIT :n)",
        count,
    )


def _execute(db: sa.Engine, sql: str, count: int) -> int:
    with db.begin() as conn:
        return int(conn.execute(sa.text(sql), {"n": count}).rowcount)
