"""The pull window at its edges: exact boundaries, cron gaps, the first run, failed runs,
late commits and clocks skewed between a remote and Postgres."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from reconciler.emulators.airtable import AirtableEmulator
from reconciler.emulators.twenty import TwentyEmulator
from reconciler.model import iso_ms, parse_datetime
from tests.helpers import (
    ago,
    execute,
    rows,
    seed_leads,
    seed_progressions,
)
from tests.processes import scalar
from tests.sides import Side

M = "rep_progressions"
Cli = Callable[..., Any]


def _ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _set_watermark(db: sa.Engine, mapping: str, until: datetime) -> None:
    """Pretend the last complete pull of ``mapping`` ended at ``until``."""
    execute(
        db,
        "INSERT INTO reconciler.watermarks (mapping, pull_until) VALUES (:m, :u) "
        "ON CONFLICT (mapping) DO UPDATE SET pull_until = excluded.pull_until",
        m=mapping,
        u=until,
    )


def _watermark(db: sa.Engine, mapping: str) -> datetime | None:
    value = scalar(db, "SELECT pull_until FROM reconciler.watermarks WHERE mapping = :m", m=mapping)
    return value if value is None else value.astimezone(UTC)


def _since(result: Any, mapping: str | None = None) -> datetime:
    window = result.mapping(mapping)["window"] if mapping else result.report["window"]
    return parse_datetime(window["since"])


# -- boundaries -----------------------------------------------------------------------------------


def test_window_edge__a_record_stamped_exactly_at_since_is_pulled(
    side: Side, db: sa.Engine, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``since`` is inclusive to the millisecond: at since is in, one millisecond before is out."""
    monkeypatch.setenv("RECONCILER_OVERLAP_MINUTES", "0")
    since = _ms(ago(180))
    _set_watermark(db, side.name, since)
    at_edge = side.create(1, since)
    just_before = side.create(2, since - timedelta(milliseconds=1))
    just_after = side.create(3, since + timedelta(milliseconds=1))

    result = cli("--mapping", side.name)

    assert result.exit_code == 0, result.output
    assert _since(result, side.name) == since
    assert side.local_ids(db) == {at_edge, just_after}
    assert just_before not in side.local_ids(db)


def test_first_run__window_starts_lookback_minutes_before_until(
    side: Side, db: sa.Engine, cli: Cli
) -> None:
    """With no earlier run, the window is exactly ``[until - lookback, until]``."""
    inside = side.create(1, ago(19))
    side.create(2, ago(21))

    result = cli("--mapping", side.name, "--lookback", "20")

    assert result.exit_code == 0, result.output
    window = result.report["window"]
    since, until = parse_datetime(window["since"]), parse_datetime(window["until"])
    assert until - since == timedelta(minutes=20)
    started = parse_datetime(result.report["started_at"])
    # On the remote's clock, which agrees with this host's: never ahead of the start, though
    # an answer's Date header shows that clock to whole seconds only.
    assert timedelta(0) <= started - until <= timedelta(seconds=30)
    assert side.local_ids(db) == {inside}
    assert _watermark(db, side.name) == until


def test_push_alone__the_report_has_no_window(side: Side, db: sa.Engine, cli: Cli) -> None:
    """Stage 2 alone reads no window: the report's ``window`` is null (never computed), not a
    window with an end and no start."""
    result = cli("--mapping", side.name, "--stage", "push")

    assert result.exit_code == 0, result.output
    assert result.report["window"] is None


def test_cron_gap__three_hours_missed_are_caught_up(side: Side, db: sa.Engine, cli: Cli) -> None:
    """The last complete pull ended 3 h ago: edits from 2 h ago come in despite --lookback 20,
    and the report's window starts at the watermark minus the overlap."""
    rid = side.create(1, ago(300))
    _set_watermark(db, side.name, ago(400))
    assert cli("--mapping", side.name, "--full").exit_code == 0
    mark = _ms(ago(180))
    _set_watermark(db, side.name, mark)
    side.edit(rid, "edited two hours ago", at=ago(120))
    new = side.create(2, ago(119))
    too_old = side.create(3, ago(240))

    result = cli("--mapping", side.name, "--lookback", "20")

    assert result.exit_code == 0, result.output
    assert result.report["window"]["since"] == iso_ms(mark - timedelta(minutes=2))
    assert side.local_text(db, rid) == "edited two hours ago"
    assert new in side.local_ids(db) and too_old not in side.local_ids(db)
    assert _watermark(db, side.name) == parse_datetime(result.report["window"]["until"])


def test_failed_run__keeps_the_watermark_so_the_next_run_reads_the_gap(
    side: Side, db: sa.Engine, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose listing failed does not move the watermark; the next run reads the gap."""
    monkeypatch.setenv("RECONCILER_RETRY_BASE_SECONDS", "0.001")
    mark = _ms(ago(120))
    _set_watermark(db, side.name, mark)
    rid = side.create(1, ago(90))
    side.em.faults.fail(503, times=1000, method="GET")

    failed = cli("--mapping", side.name)

    assert failed.exit_code == 3, failed.output
    assert _watermark(db, side.name) == mark
    side.em.faults.clear()
    result = cli("--mapping", side.name)
    assert result.exit_code == 0, result.output
    assert rid in side.local_ids(db)


def test_late_commit__a_record_stamped_before_the_last_window_end_is_pulled(
    side: Side, db: sa.Engine, cli: Cli
) -> None:
    """A record that appears after a run but carries an earlier stamp (a late commit) is read
    by the next run through the overlap, even with a one-minute lookback."""
    assert cli("--mapping", side.name, "--lookback", "1").exit_code == 0
    mark = _watermark(db, side.name)
    assert mark is not None
    late = side.create(1, mark - timedelta(seconds=90))

    result = cli("--mapping", side.name, "--lookback", "1")

    assert result.exit_code == 0, result.output
    assert late in side.local_ids(db)


def test_reread_overlap__records_read_twice_are_applied_once(
    side: Side, db: sa.Engine, cli: Cli
) -> None:
    """Records inside two consecutive windows are counted unchanged the second time."""
    seeded = (
        seed_leads(side.em, 3, minutes_ago=1)
        if side.name == "leads"
        else seed_progressions(side.em, 3, minutes_ago=1)
    )
    assert cli("--mapping", side.name).exit_code == 0
    before = {r["id"]: r["updated_at"] for r in rows(db, side.table)}

    again = cli("--mapping", side.name)

    pull = again.mapping(side.name)["pull"]
    assert (pull["fetched"], pull["unchanged"], pull["updated"]) == (3, 3, 0)
    assert {r["id"]: r["updated_at"] for r in rows(db, side.table)} == before
    assert len(seeded) == 3


# -- clock skew -----------------------------------------------------------------------------------


@pytest.mark.parametrize("skew_minutes", [-2, 2])
def test_clock_skew__two_minutes_either_way_misses_nothing_and_echoes_nothing(
    side: Side, db: sa.Engine, cli: Cli, skew_minutes: int
) -> None:
    """With the remote's clock two minutes off, remote edits are pulled, local edits pushed,
    and a run after that writes nothing on either side."""
    first, second = side.create(1, ago(0.5)), side.create(2, ago(0.5))
    assert cli("--mapping", side.name, "--lookback", "1").exit_code == 0
    assert side.local_ids(db) == {first, second}
    side.em.clock.skew = timedelta(minutes=skew_minutes)
    side.edit(first, "remote edit under skew")
    if side.name == "leads":
        execute(db, "UPDATE leads SET claimed_by = 'local' WHERE airtable_record_id = :r", r=second)
    else:
        execute(db, "UPDATE rep_progressions SET streak_days = 9 WHERE twenty_id = :r", r=second)

    result = cli("--mapping", side.name, "--lookback", "1")

    assert result.exit_code == 0, result.output
    assert side.local_text(db, first) == "remote edit under skew"
    if side.name == "leads":
        assert side.em.get("Leads", second)["fields"]["Claimed By"] == "local"
    else:
        assert side.em.get(second)["streakDays"] == 9
    before = {r["id"]: r["updated_at"] for r in rows(db, side.table)}
    side.em.reset_log()
    quiet = cli("--mapping", side.name, "--lookback", "1")
    assert quiet.exit_code == 0, quiet.output
    assert side.writes() == 0
    assert quiet.mapping(side.name)["pull"]["updated"] == 0
    assert {r["id"]: r["updated_at"] for r in rows(db, side.table)} == before


def test_clock_skew__remote_behind_by_two_minutes_edit_after_a_run_is_not_missed(
    airtable: AirtableEmulator, twenty: TwentyEmulator, db: sa.Engine, cli: Cli
) -> None:
    """The remote clock trails by two minutes: an edit made right after a run is stamped before
    that run's window end, and the next run (lookback 1) still reads it, on both remotes."""
    (lead,) = seed_leads(airtable, 1, minutes_ago=0.5)
    (rep,) = seed_progressions(twenty, 1, minutes_ago=0.5)
    assert cli("--lookback", "1").exit_code == 0
    assert len(rows(db)) == len(rows(db, M)) == 1
    airtable.clock.skew = twenty.clock.skew = timedelta(minutes=-2)
    airtable.update("Leads", lead, {"Status": "Skewed"})
    twenty.update(rep, {"currentRank": "E-2"})

    result = cli("--lookback", "1")

    assert result.exit_code == 0, result.output
    assert rows(db)[0]["status"] == "Skewed"
    assert rows(db, M)[0]["current_rank"] == "E-2"
