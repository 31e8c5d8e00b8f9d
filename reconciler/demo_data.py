"""Realistic sample records for the demo: leads for Airtable, rep progressions for Twenty."""

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
