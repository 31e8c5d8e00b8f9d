"""The bench machinery runs end to end at toy scale and yields every row of its table.

No timing is asserted: the figures themselves are what ``make bench`` is for. The toy run starts
the bench's own Postgres (TCP and unix socket), as ``make bench`` does.
"""

from __future__ import annotations

import pytest

from bench.lab import FAST
from bench.measure import Row, Rule, render
from bench.runner import collect
from bench.scale import Scale

TOY = Scale(
    "toy",
    startup_rounds=1,
    noop=10,
    noop_rounds=1,
    pull=30,
    push=12,
    bases=12,
    bases_count=4,
    bases_rounds=1,
    throughput=40,
    throughput_rounds=1,
    memory=(10, 20),
    changelog=20,
    changelog_rounds=1,
    conditions=FAST,
)


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    """Every scenario once, at toy scale, in a lab of its own."""
    return collect(TOY)


START_FIGURES = [
    "reconcile --help, wall (s)",
    "reconcile run --help, wall (s)",
    "no-op run (both mappings), wall (s)",
]
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
BASES_FIGURES = [
    "wall time, 4 bases x 12 pushed (s)",
    "report order and counters, 4 bases",
    "429 answers received",
]
LOCAL_FIGURES = [
    "local time, 40-lead pull, no latency, TCP 127.0.0.1 (s)",
    "local time, 40-lead pull, no latency, unix socket (s)",
    "records applied/s, 40-lead pull, TCP 127.0.0.1",
    "records applied/s, 40-lead pull, unix socket",
    "peak RSS, 20-lead pull (MB)",
    "peak RSS, 20-lead pull against 10 (MB)",
    "change log share, first pull of 20 leads",
    "change log share, pull of 20 remote edits",
]


def _row(rows: list[Row], group: str, figure: str) -> Row:
    return next(r for r in rows if r.group == group and r.figure == figure)


@pytest.mark.parametrize(
    ("group", "figures"),
    [
        ("start", START_FIGURES),
        ("airtable", REMOTE_FIGURES),
        ("twenty", REMOTE_FIGURES),
        ("bases", BASES_FIGURES),
        ("local", LOCAL_FIGURES),
    ],
)
def test_bench__yields_every_figure_of_the_table(
    rows: list[Row], group: str, figures: list[str]
) -> None:
    mine = [r for r in rows if r.group == group]
    assert sorted(r.figure for r in mine) == sorted(figures)
    assert all(r.measured for r in mine)


def test_bench__every_target_has_a_ratio_or_a_value_to_meet(rows: list[Row]) -> None:
    for row in rows:
        if row.ok is not None:
            assert row.target, row
            assert row.ratio is not None or row.target in ("= 0", "all as expected"), row


def test_bench__counts_the_naive_push_as_one_get_and_one_patch_per_record(
    rows: list[Row],
) -> None:
    for remote in ("airtable", "twenty"):
        naive = _row(rows, remote, "naive push requests (GET+PATCH each)")
        assert naive.measured == str(2 * TOY.push)


def test_bench__the_push_minimum_counts_the_reads_twenty_makes_first(rows: list[Row]) -> None:
    twenty = _row(rows, "twenty", "requests per 1,000 pushed")
    assert "1 read of 200 ids + 1 write of 60" in twenty.reference
    airtable = _row(rows, "airtable", "requests per 1,000 pushed")
    assert "read" not in airtable.reference
    alone = _row(rows, "airtable", "requests per 1,000 pushed, --stage push")
    assert "1 read of 100 ids + 2 writes of 10" in alone.reference


def test_bench__without_limits_the_floor_has_no_target(rows: list[Row]) -> None:
    floor = _row(rows, "airtable", "wall time, pull 30 (s)")
    assert floor.reference == "no limit" and floor.ok is None


def test_bench__the_bases_report_keeps_its_order_and_counters(rows: list[Row]) -> None:
    row = _row(rows, "bases", "report order and counters, 4 bases")
    assert row.ok is True, row.note


def test_bench__the_noop_reference_imports_what_a_run_loads(rows: list[Row]) -> None:
    row = _row(rows, "start", "no-op run (both mappings), wall (s)")
    assert "sqlalchemy" in row.note and "psycopg" in row.note
    assert "reconciler" not in row.note.split("modules:")[1]


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


def test_floor__airtable_lets_5_requests_go_in_any_second() -> None:
    rule = Rule(5, 1.0)
    assert rule.alone(5) == 0.0
    assert rule.alone(11) == pytest.approx(2.0)
    # Each request waits for the previous answer: five answers of 0.1 s fit in the first second.
    assert rule.schedule([0.1] * 11) == pytest.approx(2.1)
    assert rule.schedule([0.3] * 6) == pytest.approx(1.5 + 0.3)


def test_floor__twenty_spends_its_bucket_then_one_request_per_refill() -> None:
    rule = Rule(100, 60.0, bucket=True)
    assert rule.alone(100) == 0.0
    assert rule.alone(101) == pytest.approx(0.6)
    assert rule.alone(110) == pytest.approx(6.0)
    assert rule.schedule([0.08] * 50) == pytest.approx(4.0)


def test_floor_note__names_what_the_pacer_guard_adds_under_a_window_rule() -> None:
    from bench.lab import ProcessResult
    from bench.scenarios import _split

    result = ProcessResult(("--mapping", "leads"), 0, 21.9, 80.0, {"duration_ms": 21400}, "")
    note = _split(result, Rule(5, 1.0), 101)
    assert note == (
        "run 21.4 s + process start and exit 0.5 s; "
        "in the run, the pacer's guard: 20 windows x 10 ms = 0.2 s"
    )
    assert _split(result, Rule(5, 1.0), 5).endswith("0 windows x 10 ms = 0.0 s")
    bucket = _split(result, Rule(100, 60.0, bucket=True), 101)
    assert bucket == "run 21.4 s + process start and exit 0.5 s"


def test_markdown__the_printed_table_converts_cell_for_cell(rows: list[Row]) -> None:
    from bench.markdown import convert
    from bench.measure import cells

    text = convert(render(rows, "toy bench\nconditions").splitlines(), how=True)
    lines = text.splitlines()
    assert len(lines) == len(rows) + 2
    assert lines[2] == f"| {' | '.join(cells(rows[0]))} |"
