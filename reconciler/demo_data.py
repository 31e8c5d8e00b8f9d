"""Realistic sample records for the demo: leads for Airtable, reps for Twenty, Airtable's Reps
table and Postgres (the hub)."""

from __future__ import annotations

import json
import random
from typing import Any

FIRST_NAMES = (
    "Dana", "Priya", "Marcus", "Elena", "Tomás", "Aisha", "Connor", "Mei", "Jonas", "Fatima",
    "Lucas", "Hannah", "Kwame", "Sofia", "Ravi", "Olivia", "Mateo", "Yuki", "Grace", "Omar",
)  # fmt: skip
LAST_NAMES = (
    "Kim", "Patel", "Johnson", "García", "Nowak", "Okafor", "Müller", "Chen", "Silva", "Rossi",
    "Nguyen", "Haddad", "Brennan", "Lindqvist", "Tanaka", "Mensah", "Dubois", "Cohen",
)  # fmt: skip
COMPANIES = (
    "Northwind Traders", "Bluefin Logistics", "Cedar & Pine Dental", "Harbor Analytics",
    "Summit Roofing", "Lumen Health", "Atlas Freight", "Greenleaf Foods", "Vertex Legal",
    "Brightside Solar", "Keystone Realty", "Orbit Fitness",
)  # fmt: skip
TITLES = ("Owner", "Office Manager", "Operations Lead", "Founder", "Head of Sales", "CFO")
STATUSES = ("New", "New", "Contacted", "Nurturing", "Qualified")
SOURCES = ("Facebook Lead Ad", "Website Form", "Referral", "Webinar")
CAMPAIGNS = (("CMP-101", "Spring Promo"), ("CMP-102", "Webinar Follow-up"), ("CMP-103", "Retarget"))
MODULES = ("discovery-calls", "objection-handling", "crm-hygiene", "demo-delivery", "closing")
BADGES = ("first-deal", "fast-responder", "streak-7", "top-10")
RANKS = tuple(f"E-{n}" for n in range(1, 8))

# The edits between the demo's runs.
CLAIMED = range(10, 22)  # the leads a portal user claims
CLAIMER = "sam@northwind.example"
LOCAL_NEWER = ("Asked for a pricing sheet", "Call booked for Tuesday 10:00")  # Airtable, Postgres
REMOTE_NEWER = ("Replied: not interested this quarter", "Left a voicemail")

# The hub: a team lead keeps some of the reps in an Airtable table as well.
REPS_TABLE = "Reps"
REPS_FIELDS: dict[str, Any] = {
    "Name": "singleLineText",
    "Workspace Member": "singleLineText",
    "Total XP": "number",
    "Current Rank": "singleLineText",
    # A "Last modified time" field watching all fields (no referencedFieldIds), date and time.
    "Last Modified": {"type": "lastModifiedTime", "options": {"result": "dateTime"}},
}
IN_AIRTABLE = range(8)  # the reps (by index in Twenty) that Airtable's Reps table holds too
# First contact: this rep's Total XP was corrected in Twenty an hour ago, later than Postgres and
# Airtable's Reps hold it: the newest side wins on all three.
XP_CORRECTED = 2
XP_BONUS = 350
RENAMED = 3  # between the runs: this rep is renamed in Airtable's Reps


def lead_fields(rng: random.Random, i: int) -> dict[str, Any]:
    """The Airtable fields of sample lead number ``i``."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    mailbox = f"{first}.{last}{i}".lower().encode("ascii", "ignore").decode()
    campaign_id, campaign = rng.choice(CAMPAIGNS)
    sent = rng.randint(0, 4)
    fields: dict[str, Any] = {
        "First Name": first,
        "Last Name": last,
        "Email": f"{mailbox}@example.com",
        "Phone": f"+1 555 01{i % 100:02d}",
        "Company": rng.choice(COMPANIES),
        "Title": rng.choice(TITLES),
        "ICP Score": round(rng.uniform(20, 98), 1),
        "Status": rng.choice(STATUSES),
        "Campaign Name": campaign,
        "Campaign ID": campaign_id,
        "Lead Source": rng.choice(SOURCES),
        "Form ID": f"form-{rng.randint(1000, 9999)}",
        "SMS Sent Count": sent,
        "SMS Sequence Position": sent,
        "Booked": rng.random() < 0.15,
        "Processing Status": "queued",
    }
    if sent:
        fields["SMS Last Sent At"] = f"2026-11-{10 + i % 9:02d}T15:{i % 60:02d}:00.000Z"
    return fields


def progression_fields(rng: random.Random, i: int) -> dict[str, Any]:
    """The Twenty fields of sample rep progression number ``i`` (JSON held as text)."""
    level = rng.randint(1, 7)
    return {
        "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
        "workspaceMemberId": f"wm-{1000 + i}",
        "totalXp": level * 500 + rng.randint(0, 499),
        "currentLevel": level,
        "closedDeals": rng.randint(0, 40),
        "streakDays": rng.randint(0, 9),
        "currentRank": RANKS[level - 1],
        "badges": json.dumps(rng.sample(BADGES, rng.randint(0, 2))),
        "efficiencyMetrics": json.dumps({"calls": rng.randint(20, 90), "connect_rate": 0.31}),
        "completedModules": json.dumps(list(MODULES[: rng.randint(1, 3)])),
        "certifications": json.dumps([]),
        "defeatedBosses": json.dumps([]),
        "passedExams": json.dumps(["basics"] if level > 2 else []),
        "lastActivityDate": f"2026-11-{10 + i % 9:02d}T17:30:00.000Z",
    }


def local_progressions() -> list[dict[str, Any]]:
    """Rep progressions that exist only in Postgres (new hires), as SQL parameters."""
    names = ("Noah Fischer", "Amara Obi", "Leo Martins", "Ines Costa")
    return [
        {
            "name": name,
            "member": f"wm-new-{i}",
            "xp": 0,
            "level": 1,
            "rank": "E-1",
            "modules": json.dumps(["onboarding"]),
            "badges": json.dumps([]),
        }
        for i, name in enumerate(names)
    ]


def airtable_rep(fields: dict[str, Any]) -> dict[str, Any]:
    """The Airtable Reps fields of a rep, from its Twenty fields (the same rep, the same values)."""
    return {
        "Name": fields["name"],
        "Workspace Member": fields["workspaceMemberId"],
        "Total XP": fields["totalXp"],
        "Current Rank": fields["currentRank"],
    }


def academy_row(fields: dict[str, Any]) -> dict[str, Any]:
    """A rep as the academy app wrote it to Postgres (the same values as in Twenty, no
    ``twenty_id``), as SQL parameters for :data:`ACADEMY_INSERT`."""
    return {
        "name": fields["name"],
        "member": fields["workspaceMemberId"],
        "xp": fields["totalXp"],
        "level": fields["currentLevel"],
        "deals": fields["closedDeals"],
        "streak": fields["streakDays"],
        "rank": fields["currentRank"],
        "badges": fields["badges"],
        "metrics": fields["efficiencyMetrics"],
        "modules": fields["completedModules"],
        "certs": fields["certifications"],
        "bosses": fields["defeatedBosses"],
        "exams": fields["passedExams"],
        "activity": fields["lastActivityDate"],
    }


ACADEMY_INSERT = (
    "INSERT INTO rep_progressions (name, workspace_member_id, total_xp, current_level, "
    "closed_deals, streak_days, current_rank, badges, efficiency_metrics, completed_modules, "
    "certifications, defeated_bosses, passed_exams, last_activity_date, updated_at) VALUES "
    "(:name, :member, :xp, :level, :deals, :streak, :rank, CAST(:badges AS jsonb), "
    "CAST(:metrics AS jsonb), CAST(:modules AS jsonb), CAST(:certs AS jsonb), "
    "CAST(:bosses AS jsonb), CAST(:exams AS jsonb), CAST(:activity AS timestamptz), :at)"
)


# The README's hub example ("A table shared by several remotes"), as a user would write it.
HUB_CONFIG = """\
# hub.toml: the built-in rep_progressions (Twenty) stays; this adds Airtable's Reps table
[mappings.reps_airtable]
remote = "airtable"
table = "Reps"
local_table = "rep_progressions"
key_column = "airtable_rep_id"
modified_field = "Last Modified"           # a Last modified time field watching all fields
match_on = ["workspace_member_id"]         # link the reps both sides already hold
fields = [
    { remote = "Name", column = "name", direction = "both" },
    { remote = "Workspace Member", column = "workspace_member_id", direction = "both" },
    { remote = "Total XP", column = "total_xp", kind = "number", direction = "both" },
    { remote = "Current Rank", column = "current_rank", direction = "both" },
]
"""
