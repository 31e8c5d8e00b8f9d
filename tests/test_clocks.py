"""Clocks: windows and watermarks follow each remote's own clock (its ``Date`` header), the
report records the offset, and an offset too large to trust stops the mapping with exit 3."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import sqlalchemy as sa

from reconciler.engine.window import describe, place
from reconciler.model import parse_datetime
from reconciler.remotes.base import RemoteClock
from tests.helpers import execute
from tests.sides import Side

Cli = Callable[..., Any]


def test_host_25_minutes_fast__an_edit_between_two_runs_arrives(
    side: Side, db: sa.Engine, cli: Cli
) -> None:
    """This host's clock 25 minutes ahead of the remote's (more than the lookback): records and
    an edit made between two runs are pulled, not silently skipped."""
    side.em.clock.skew = timedelta(minutes=-25)
    first = side.create(1, side.em.clock.now() - timedelta(minutes=2))

    run1 = cli("--mapping", side.name, "--lookback", "20")

    assert run1.exit_code == 0, run1.output
    assert side.local_ids(db) == {first}
    offset = run1.mapping(side.name)["clock_offset_seconds"]
    assert offset == pytest.approx(-1500, abs=3)
    until = parse_datetime(run1.mapping(side.name)["window"]["until"])
    assert abs(until - side.em.clock.now()) < timedelta(seconds=30)

    side.edit(first, "edited between runs")
    run2 = cli("--mapping", side.name, "--lookback", "20")

    assert run2.exit_code == 0, run2.output
    assert side.local_text(db, first) == "edited between runs"
    assert run2.mapping(side.name)["pull"]["updated"] == 1


def test_first_run__an_unknown_offset_is_learned_from_the_first_answer(
    side: Side, db: sa.Engine, cli: Cli
) -> None:
    """With no offset kept yet, the window is placed on this host's clock, the first answer's
    Date header shows it is off, and the window is placed again: one listing request more."""
    side.em.clock.skew = timedelta(minutes=-40)
    record = side.create(1, side.em.clock.now() - timedelta(minutes=5))

    result = cli("--mapping", side.name)

    assert result.exit_code == 0, result.output
    assert side.local_ids(db) == {record}
    assert result.mapping(side.name)["api"]["requests"] == 2
    side.em.reset_log()
    again = cli("--mapping", side.name)
    assert again.exit_code == 0, again.output
    assert again.mapping(side.name)["api"]["requests"] == 1  # the kept offset was right


@pytest.mark.parametrize(("days", "way"), [(2, "behind"), (-2, "ahead of")])
def test_offset_too_large__exit_3_naming_the_clock(
    side: Side, db: sa.Engine, cli: Cli, days: int, way: str
) -> None:
    side.em.clock.skew = timedelta(days=days)
    side.create(1, side.em.clock.now())

    result = cli("--mapping", side.name)

    assert result.exit_code == 3, result.output
    (error,) = result.report["errors"]
    assert error["record"] is None
    assert f"this host is 48 h 0 min {way} " in error["message"]
    assert "NTP" in error["message"]
    assert "\n" not in error["message"] and "Traceback" not in result.output
    assert side.local_ids(db) == set()  # nothing read across a clock it cannot trust


def test_conflict__newer_side_is_judged_on_one_clock(side: Side, db: sa.Engine, cli: Cli) -> None:
    """The remote's clock 10 minutes behind: a remote edit made 5 seconds after a local edit
    still wins, because its modified time is compared with updated_at on the database's clock
    (the Date header has whole seconds, so the offset is known to about a second)."""
    side.em.clock.skew = timedelta(minutes=-10)
    rid = side.create(1, side.em.clock.now() - timedelta(minutes=1))
    assert cli("--mapping", side.name).exit_code == 0
    column = "notes" if side.name == "leads" else "name"
    execute(
        db,
        f"UPDATE {side.table} SET {column} = 'local, earlier', "
        f"updated_at = now() - interval '10 seconds' WHERE {side.key} = :r",
        r=rid,
    )
    # Both edits are over before the run starts (a window ends where the run starts).
    side.edit(rid, "remote, later", at=side.em.clock.now() - timedelta(seconds=5))

    result = cli("--mapping", side.name)

    assert result.exit_code == 0, result.output
    assert side.local_text(db, rid) == "remote, later"
    assert side.remote_text(rid) == "remote, later"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.4, "this host's clock agrees with Airtable's"),
        (-1500, "this host is 25 min ahead of Airtable"),
        (30, "this host is 30 s behind Airtable"),
        (7500, "this host is 2 h 5 min behind Airtable"),
    ],
)
def test_describe__says_which_way_and_how_far(seconds: float, text: str) -> None:
    assert describe(timedelta(seconds=seconds), "Airtable") == text


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_window__never_ends_after_the_start_when_the_clocks_agree(fraction: float) -> None:
    """The Date header has whole seconds, so the learned offset is off by up to half a second
    either way even when both clocks agree; the window still ends at or before the run's start
    (the contract lets ``window.until`` trail ``started_at``, never lead it), by under a
    second."""
    started = datetime(2026, 11, 20, 10, 15, 0, tzinfo=UTC) + timedelta(seconds=fraction)
    clock = RemoteClock(now=lambda: started)  # the answer arrives as the run starts
    clock.observe(format_datetime(started.replace(microsecond=0), usegmt=True))
    assert clock.offset is not None

    span = place(
        started,
        clock.offset,
        lookback=timedelta(minutes=20),
        watermark=None,
        overlap=timedelta(minutes=2),
        full=False,
    )

    assert timedelta(0) <= started - span.until < timedelta(seconds=1)
