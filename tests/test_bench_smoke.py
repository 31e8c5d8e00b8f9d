"""The bench machinery runs end to end at toy scale and yields every row of its table.

No timing is asserted: the figures themselves are what ``make bench`` is for.
"""

from __future__ import annotations

import pytest

from bench.lab import FAST
from bench.measure import Row, render
from bench.runner import collect
from bench.scenarios import Scale

TOY = Scale(
    "toy",
    pull=30,
    push=12,
    throughput=40,
    memory=(10, 20),
    noop=10,
    noop_repeats=1,
    changelog=20,
    changelog_rounds=1,
    conditions=FAST,
)


@pytest.fixture(scope="module")
def rows(pg_server: str) -> list[Row]:
    """Every scenario once, at toy scale, on the test session's Postgres."""
    return collect(TOY, admin_url=pg_server)


REMOTE_FIGURES = [
    "requests per 1,000 pulled",
    "wall time, pull 30 (s)",
    "429 answers received",
    "requests per 1,000 pushed",
    "wall time, push 12 (s)",
    "429 answers received",
    "requests per 1,000 pushed, --stage push",
    "naive push requests (GET+PATCH each)",
]
LOCAL_FIGURES = [
    "records applied/s, 40-lead pull",
    "peak RSS, 10-lead pull (MB)",
    "peak RSS, 20-lead pull (MB)",
    "peak RSS growth, 10 \N{RIGHTWARDS ARROW} 20",
    "no-op run wall time, median of 1 (s)",
    "change log share, first pull of 20 leads",
    "change log share, pull of 20 remote edits",
]


def _row(rows: list[Row], remote: str, figure: str) -> Row:
    return next(r for r in rows if r.remote == remote and r.figure == figure)


@pytest.mark.parametrize(
    ("remote", "figures"),
    [("airtable", REMOTE_FIGURES), ("twenty", REMOTE_FIGURES), ("local", LOCAL_FIGURES)],
)
def test_bench__yields_every_figure_of_the_table(
    rows: list[Row], remote: str, figures: list[str]
) -> None:
    mine = [r for r in rows if r.remote == remote]
    assert sorted(r.figure for r in mine) == sorted(figures)
    assert all(r.measured for r in mine)


def test_bench__counts_the_naive_push_as_one_get_and_one_patch_per_record(
    rows: list[Row],
) -> None:
    for remote in ("airtable", "twenty"):
        naive = _row(rows, remote, "naive push requests (GET+PATCH each)")
        assert naive.measured == str(2 * TOY.push)


def test_bench__without_limits_the_floor_has_no_target(rows: list[Row]) -> None:
    floor = _row(rows, "airtable", "wall time, pull 30 (s)")
    assert floor.reference == "no limit" and floor.ok is None


def test_bench__renders_one_table_with_a_line_per_row(rows: list[Row]) -> None:
    text = render(rows, "toy bench")
    lines = text.splitlines()
    assert lines[0] == "toy bench"
    assert len(lines) == len(rows) + 4  # title, header, rule, rows, summary
    assert lines[-1].startswith("targets met: ")


def test_bench__times_the_change_log_of_runs_that_write_it(rows: list[Row]) -> None:
    for figure in ("first pull of 20 leads", "pull of 20 remote edits"):
        row = _row(rows, "local", f"change log share, {figure}")
        assert row.note.endswith("; 20 entries"), row.note
        assert 0.0 < float(row.measured.rstrip("%")) < 100.0
