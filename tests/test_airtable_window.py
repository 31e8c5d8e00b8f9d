"""The Airtable window formula: `IS_AFTER`/`IS_BEFORE` of `DATETIME_PARSE`d ISO UTC bounds,
`since` included to the millisecond and `until` included, whatever zone the bounds come in."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from reconciler.config import load_settings
from reconciler.emulators.airtable import AirtableEmulator
from reconciler.model import LEADS
from reconciler.remotes import airtable_formulas
from reconciler.remotes.airtable import UNTIL_SLACK, AirtableRemote
from reconciler.remotes.factory import build_remote
from tests.helpers import lead_fields

MS = timedelta(milliseconds=1)
PARIS_SUMMER = timezone(timedelta(hours=2))


@pytest.fixture
def remote(airtable: AirtableEmulator) -> Iterator[AirtableRemote]:
    built = build_remote(LEADS, load_settings())
    assert isinstance(built, AirtableRemote)
    built.prepare(None)
    yield built
    built.close()


def _stamped(em: AirtableEmulator, moments: dict[str, datetime]) -> dict[str, str]:
    """A lead modified at each moment; returns record id -> label."""
    return {
        em.create("Leads", lead_fields(i), modified_at=at)["id"]: label
        for i, (label, at) in enumerate(moments.items())
    }


def _listed(remote: AirtableRemote, since: datetime, until: datetime) -> set[str]:
    return {r.id for page in remote.list_changed(since, until) for r in page}


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        (datetime(2026, 11, 20, 10, 0, 0, 123000), "2026-11-20T10:00:00.122Z"),  # naive: UTC
        (datetime(2026, 11, 20, 10, 0, 0, 123000, tzinfo=UTC), "2026-11-20T10:00:00.122Z"),
        (datetime(2026, 11, 20, 12, 0, 0, 123000, PARIS_SUMMER), "2026-11-20T10:00:00.122Z"),
        (datetime(2026, 11, 20, 10, 0, 0, 122500, tzinfo=UTC), "2026-11-20T10:00:00.122Z"),
    ],
)
def test_window_formula__bounds_are_iso_utc_whatever_the_zone(
    since: datetime, expected: str
) -> None:
    """The lower bound is the millisecond before ``since`` (``IS_AFTER`` is strict); a ``since``
    between two milliseconds rounds up first."""
    formula = airtable_formulas.window("lastModifiedTime", since, None)
    assert formula == f"IS_AFTER({{lastModifiedTime}}, DATETIME_PARSE('{expected}'))"


def test_window_formula__until_is_an_is_before_of_the_next_millisecond() -> None:
    since = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    until = datetime(2026, 11, 20, 12, 20, 0, 500000, PARIS_SUMMER)
    formula = airtable_formulas.window("Modified At", since, until)
    assert formula == (
        "AND(IS_AFTER({Modified At}, DATETIME_PARSE('2026-11-20T09:59:59.999Z')), "
        "IS_BEFORE({Modified At}, DATETIME_PARSE('2026-11-20T10:20:00.501Z')))"
    )


def test_window__both_ends_are_included_to_the_millisecond(
    airtable: AirtableEmulator, remote: AirtableRemote
) -> None:
    since = datetime.now(UTC).replace(microsecond=250_000) - timedelta(minutes=30)
    until = since + timedelta(minutes=10)
    ids = _stamped(
        airtable,
        {
            "before since": since - MS,
            "at since": since,
            "at until": until,
            "within the slack": until + UNTIL_SLACK,
            "after": until + UNTIL_SLACK + MS,
        },
    )

    for zone in (UTC, PARIS_SUMMER, timezone(timedelta(hours=-7))):
        listed = _listed(remote, since.astimezone(zone), until.astimezone(zone))
        assert sorted(ids[i] for i in listed) == ["at since", "at until", "within the slack"]


def test_window__a_since_between_milliseconds_starts_at_the_next_one(
    airtable: AirtableEmulator, remote: AirtableRemote
) -> None:
    stamp = datetime.now(UTC).replace(microsecond=400_000) - timedelta(minutes=5)
    ids = _stamped(airtable, {"at .400": stamp, "at .401": stamp + MS})

    listed = _listed(remote, stamp + timedelta(microseconds=500), stamp + timedelta(minutes=1))

    assert [ids[i] for i in listed] == ["at .401"]
