"""The scenarios: each prepares data, runs the real ``reconcile`` command, and returns rows.

* ``pull``: a run over fresh remote records in the window, under realistic conditions;
* ``push``: a push of local edits under realistic conditions, then the naive push as baseline;
* ``throughput``: a large pull with no latency and no limits: records applied per second;
* ``memory``: peak RSS of a small and a large pull;
* ``noop``: wall time of a run with nothing to do;
* ``changelog``: what the change log costs a large pull, with it and without it.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import sqlalchemy as sa
from pyairtable import Api
from pyairtable.formulas import GTE, Field, to_formula_str

from bench import baseline, journal_probe
from bench.journal_probe import WITHOUT as WITHOUT_LOG
from bench.journal_probe import seconds as journal_seconds
from bench.lab import FAST, REALISTIC, Conditions, Lab, ProcessResult
from bench.measure import (
    CHANGELOG_SHARE_MAX,
    NOOP_MAX_S,
    RSS_GROWTH_MAX,
    RSS_MAX_MB,
    THROUGHPUT_MIN,
    Row,
    at_least_row,
    at_most_row,
    baseline_row,
    breakdown,
    floor_row,
    request_kinds,
    requests_row,
    throttled_row,
    times,
)
from bench.seeding import (
    OLD_MINUTES,
    edit_leads,
    edit_progressions,
    edit_remote_leads,
    seed_leads,
    seed_progressions,
)
from reconciler.emulators.base import EmulatorServer
from reconciler.model import LEADS, parse_datetime


@dataclass(frozen=True)
class Scale:
    """How big each scenario is, and the conditions of the realistic ones."""

    name: str
    pull: int = 10_000
    push: int = 1_000
    throughput: int = 50_000
    memory: tuple[int, int] = (10_000, 100_000)
    noop: int = 10_000
    noop_repeats: int = 5
    changelog: int = 50_000
    changelog_rounds: int = 3
    conditions: Conditions = REALISTIC


FULL = Scale("full")
QUICK = Scale(
    "quick",
    pull=1_000,
    push=200,
    throughput=5_000,
    memory=(2_000, 20_000),
    noop=1_000,
    noop_repeats=3,
    changelog=5_000,
    changelog_rounds=2,
)


@dataclass(frozen=True)
class RemoteSpec:
    """What the scenarios need to know about one remote."""

    name: str
    mapping: str
    page: int  # records per read request
    batch: int  # records per write request

    def emulator(self, lab: Lab) -> EmulatorServer:
        """This remote's emulator in the lab."""
        return lab.airtable if self.name == "airtable" else lab.twenty

    def per_second(self, conditions: Conditions) -> float:
        """Requests per second the remote allows (0: unlimited)."""
        if self.name == "airtable":
            return float(conditions.airtable_rate)
        return conditions.twenty_per_minute / 60.0


AIRTABLE = RemoteSpec("airtable", "leads", page=100, batch=10)
TWENTY = RemoteSpec("twenty", "rep_progressions", page=200, batch=60)
REMOTES = (AIRTABLE, TWENTY)


_STARTED = time.perf_counter()


def say(message: str) -> None:
    """Progress on stderr (the table goes to stdout), with the seconds since the bench started."""
    print(f"{time.perf_counter() - _STARTED:6.1f} s  {message}", file=sys.stderr, flush=True)


def pull(lab: Lab, scale: Scale) -> list[Row]:
    """A run over ``scale.pull`` fresh records per remote, under realistic conditions."""
    rows: list[Row] = []
    with lab.scenario():
        seed_leads(lab.airtable, scale.pull)
        seed_progressions(lab.twenty, scale.pull)
        lab.set_conditions(scale.conditions)
        for spec in REMOTES:
            say(f"pull: {scale.pull:,} fresh {spec.name} records")
            lab.reset_logs()
            result = lab.reconcile_ok("--mapping", spec.mapping)
            em = spec.emulator(lab)
            requests, pulled = len(em.requests), result.mapping(spec.mapping)["pull"]["fetched"]
            how = breakdown(em)
            rows += [
                requests_row(spec.name, "pulled", requests, pulled, spec.page, how),
                floor_row(
                    spec.name,
                    f"pull {pulled:,}",
                    result.wall,
                    requests,
                    spec.per_second(scale.conditions),
                    f"run {result.duration:.1f} s + process start",
                ),
                throttled_row(spec.name, em.count(status=429), f"pull run; {_api(result, spec)}"),
            ]
    return rows


def push(lab: Lab, scale: Scale) -> list[Row]:
    """A cron run that finds ``scale.push`` local edits per remote and an empty pull window,
    under realistic conditions; then the naive push of the same edits as the baseline.

    The push's requests are the run's requests minus the listing of the (empty) window.
    """
    rows: list[Row] = []
    with lab.scenario() as db:
        seed_leads(lab.airtable, scale.push, age_minutes=OLD_MINUTES)
        seed_progressions(lab.twenty, scale.push, age_minutes=OLD_MINUTES)
        lab.reconcile_ok("--full")
        edits = {
            "airtable": edit_leads(db, scale.push),
            "twenty": edit_progressions(db, scale.push),
        }
        lab.set_conditions(scale.conditions)
        ours: dict[str, int] = {}
        for spec in REMOTES:
            say(f"push: {edits[spec.name]:,} local edits to {spec.name}")
            lab.reset_logs()
            result = lab.reconcile_ok("--mapping", spec.mapping)
            em = spec.emulator(lab)
            counts = result.mapping(spec.mapping)["push"]
            pushed = counts["updated"] + counts["created"]
            requests = len(em.requests)
            ours[spec.name] = pushing = requests - request_kinds(em)["list"]
            how = f"{breakdown(em)}; the list is stage 1's empty window"
            rows += [
                requests_row(spec.name, "pushed", pushing, pushed, spec.batch, how),
                floor_row(
                    spec.name,
                    f"push {pushed:,}",
                    result.wall,
                    requests,
                    spec.per_second(scale.conditions),
                    f"run {result.duration:.1f} s + process start",
                ),
                throttled_row(spec.name, em.count(status=429), f"push run; {_api(result, spec)}"),
            ]
        lab.set_conditions(FAST)
        rows += _push_alone(lab, db, scale)
        # Edit again so the local side is newer than what the last push wrote.
        edit_leads(db, scale.push, round=3)
        edit_progressions(db, scale.push)
        say("push: the naive baseline (one GET and one PATCH per record)")
        naive = {
            "airtable": baseline.push_airtable(lab.airtable, db, scale.push),
            "twenty": baseline.push_twenty(lab.twenty, db, scale.push),
        }
        for spec in REMOTES:
            rate = spec.per_second(scale.conditions)
            note = f"≈ {naive[spec.name] / rate:,.0f} s at the rate limit" if rate else ""
            rows.append(baseline_row(spec.name, naive[spec.name], ours[spec.name], note))
    return rows


def _push_alone(lab: Lab, db: sa.Engine, scale: Scale) -> list[Row]:
    """Requests of ``reconcile --stage push`` over fresh edits: without a pull in the same run,
    the push reads the pending records first. Counted without latency (counts do not change)."""
    edit_leads(db, scale.push, round=2)
    edit_progressions(db, scale.push)
    rows = []
    for spec in REMOTES:
        say(f"push: `--stage push` alone to {spec.name} (request count only)")
        lab.reset_logs()
        result = lab.reconcile_ok("--stage", "push", "--mapping", spec.mapping)
        em = spec.emulator(lab)
        counts = result.mapping(spec.mapping)["push"]
        pushed = counts["updated"] + counts["created"]
        row = requests_row(spec.name, "pushed", len(em.requests), pushed, spec.batch)
        rows.append(replace(row, figure=f"{row.figure}, --stage push", note=breakdown(em)))
    return rows


def throughput(lab: Lab, scale: Scale) -> list[Row]:
    """Records applied per second on a ``scale.throughput``-lead pull, no latency, no limits."""
    n = scale.throughput
    with lab.scenario():
        seed_leads(lab.airtable, n)
        say(f"throughput: pull of {n:,} leads, no latency, no limits")
        result = lab.reconcile_ok("--stage", "pull", "--mapping", "leads")
        applied = result.mapping("leads")["pull"]["fetched"]
        listing = _listing_seconds(lab, result.report["window"]["since"])
    local = max(result.duration - listing, 1e-9)
    note = (
        f"run {result.duration:.1f} s = listing alone {listing:.1f} s (HTTP + emulator) "
        f"+ local {local:.1f} s ({applied / local:,.0f}/s); wall {result.wall:.1f} s"
    )
    return [
        at_least_row(
            "local",
            f"records applied/s, {applied:,}-lead pull",
            applied / result.duration,
            THROUGHPUT_MIN,
            note,
        )
    ]


def memory(lab: Lab, scale: Scale) -> list[Row]:
    """Peak RSS of the ``reconcile`` process pulling a small and a large number of leads."""
    peaks: list[float] = []
    rates: list[str] = []
    for n in scale.memory:
        with lab.scenario():
            seed_leads(lab.airtable, n)
            say(f"memory: pull of {n:,} leads")
            result = lab.reconcile_ok("--stage", "pull", "--mapping", "leads")
            peaks.append(result.max_rss_mb)
            rate = result.mapping("leads")["pull"]["fetched"] / result.duration
            rates.append(f"run {result.duration:.1f} s ({rate:,.0f} records/s)")
    small, large = scale.memory
    growth = peaks[1] / peaks[0]
    return [
        at_most_row(
            "local", f"peak RSS, {small:,}-lead pull (MB)", peaks[0], None, "max RSS, from wait4"
        ),
        at_most_row("local", f"peak RSS, {large:,}-lead pull (MB)", peaks[1], RSS_MAX_MB, rates[1]),
        Row(
            "local",
            f"peak RSS growth, {small:,} → {large:,}",
            times(growth),
            f"≤ {times(RSS_GROWTH_MAX, 1)}",
            times(growth / RSS_GROWTH_MAX),
            growth <= RSS_GROWTH_MAX,
            "large peak / small peak",
        ),
    ]


def noop(lab: Lab, scale: Scale) -> list[Row]:
    """Wall time of a whole run (both mappings) with nothing to do, median of a few."""
    with lab.scenario():
        seed_leads(lab.airtable, scale.noop, age_minutes=OLD_MINUTES)
        seed_progressions(lab.twenty, scale.noop, age_minutes=OLD_MINUTES)
        say(f"noop: first sync of {scale.noop:,} records per remote (--full)")
        lab.reconcile_ok("--full")
        walls, durations = [], []
        for _ in range(scale.noop_repeats):
            lab.reset_logs()
            result = lab.reconcile_ok()
            writes = sum(
                r.method != "GET" and not r.path.endswith("/listRecords")
                for em in (lab.airtable, lab.twenty)
                for r in em.requests
            )
            if writes:
                raise RuntimeError(f"a run with nothing to do wrote {writes} time(s)")
            walls.append(result.wall)
            durations.append(result.duration)
    requests = len(lab.airtable.requests) + len(lab.twenty.requests)
    note = (
        f"{scale.noop:,} synced rows per mapping; report duration "
        f"{statistics.median(durations):.2f} s, the rest is process start and exit; "
        f"{requests} requests, no writes; runs {', '.join(f'{w:.2f}' for w in walls)}"
    )
    return [
        at_most_row(
            "local",
            f"no-op run wall time, median of {len(walls)} (s)",
            statistics.median(walls),
            NOOP_MAX_S,
            note,
        )
    ]


def changelog(lab: Lab, scale: Scale) -> list[Row]:
    """The change log's share of a ``scale.changelog``-lead pull, no latency, no limits: a first
    pull (every lead new, so every lead logs all its values) and a pull of every lead edited
    remotely.

    Each round pulls the same records into two fresh databases: once as shipped, with the time
    spent inside the change log measured, and once with the change log replaced by a journal
    that records nothing (:mod:`bench.journal_probe`); which goes first alternates. The target is
    on the time inside the log; the with/without difference is noted, as a check of it.
    """
    n = scale.changelog
    samples: dict[str, list[dict[bool, ProcessResult]]] = {"first": [], "update": []}
    with lab.scenario():
        ids = seed_leads(lab.airtable, n)
        for round_no in range(scale.changelog_rounds):
            with lab.postgres.fresh() as logged, lab.postgres.fresh() as unlogged:
                order = [(logged, False), (unlogged, True)][:: -1 if round_no % 2 else 1]
                for kind in ("first", "update"):
                    if kind == "update":
                        edit_remote_leads(lab.airtable, ids, round_no)
                    say(f"changelog: {kind} pull of {n:,} leads, round {round_no + 1}")
                    samples[kind].append(
                        {without: _probe(lab, url, without) for url, without in order}
                    )
    return [
        _changelog_row(f"change log share, first pull of {n:,} leads", samples["first"]),
        _changelog_row(f"change log share, pull of {n:,} remote edits", samples["update"]),
    ]


PROBE = journal_probe.__file__  # run as a script: it needs only the installed package


def _probe(lab: Lab, url: str, without: bool) -> ProcessResult:
    """One pull into the database at ``url``, with the change log timed or left out; the work
    it leaves the server is done before the next run is measured."""
    lab.database_url = url
    command = [sys.executable, PROBE, *([WITHOUT_LOG] if without else [])]
    result = lab.reconcile_ok("--stage", "pull", "--mapping", "leads", command=command)
    lab.postgres.settle(url)
    return result


def _changelog_row(figure: str, rounds: list[dict[bool, ProcessResult]]) -> Row:
    logged = [r[False] for r in rounds]
    share = statistics.median(journal_seconds(r.stderr) / r.duration for r in logged)
    inside = statistics.median(journal_seconds(r.stderr) for r in logged)
    with_log = statistics.median(r.duration for r in logged)
    without = statistics.median(r[True].duration for r in rounds)
    entries = logged[0].report["change_log"]["written"]
    note = (
        f"inside the log {inside * 1000:,.0f} ms of a {with_log:.1f} s run, median of "
        f"{len(rounds)}; the run without it {without:.1f} s ({with_log / without - 1:+.0%}); "
        f"{entries:,} entries"
    )
    return Row(
        "local",
        figure,
        f"{share:.1%}",
        f"< {CHANGELOG_SHARE_MAX:.0%}",
        times(share / CHANGELOG_SHARE_MAX),
        share < CHANGELOG_SHARE_MAX,
        note,
    )


Scenario = Callable[[Lab, Scale], list[Row]]
SCENARIOS: dict[str, Scenario] = {
    "pull": pull,
    "push": push,
    "throughput": throughput,
    "memory": memory,
    "noop": noop,
    "changelog": changelog,
}


def _api(result: ProcessResult, spec: RemoteSpec) -> str:
    """The run report's own request counters, for comparison with the emulator's log."""
    api = result.mapping(spec.mapping)["api"]
    return f"report: {api['requests']} requests, {api['retries']} retries"


def _listing_seconds(lab: Lab, since: str) -> float:
    """How long reading the same window takes on its own (same formula, fields and page size)."""
    api = Api(lab.airtable.token, endpoint_url=lab.airtable.url)
    table = api.table(lab.airtable.base_id, LEADS.remote_table)
    formula = to_formula_str(GTE(Field(LEADS.modified_field), parse_datetime(since)))
    fields = [f.remote for f in LEADS.fields] + [LEADS.modified_field]
    started = time.perf_counter()
    for _ in table.iterate(formula=formula, fields=fields, page_size=100):
        pass
    elapsed = time.perf_counter() - started
    api.session.close()
    return elapsed
