"""The scenarios: each prepares data, runs the real ``reconcile`` command, and returns rows.

* ``startup``: ``reconcile --help`` beside ``python -c "import typer, rich"``;
* ``noop``: a run with nothing to do beside importing what it loads;
* ``pull``: a run over fresh remote records in the window, at the real limits;
* ``push``: a push of local edits at the real limits, then the naive push as baseline;
* ``bases``: several Airtable bases pushed in one run, beside one base alone;
* ``throughput``: a large pull, no latency, no limits: local time beside listing time, and
  records applied per second over TCP and through the unix socket;
* ``memory``: peak RSS of a small and a large pull;
* ``changelog``: what the change log costs a large pull, with it and without it.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace

import sqlalchemy as sa

from bench import baseline, journal_probe
from bench.bases import bases
from bench.journal_probe import WITHOUT as WITHOUT_LOG
from bench.journal_probe import seconds as journal_seconds
from bench.lab import FAST, Conditions, Lab, ProcessResult
from bench.measure import (
    CHANGELOG_SHARE_MAX,
    RSS_GROWTH_MAX,
    RSS_MAX_MB,
    TIMES,
    Row,
    Rule,
    at_most,
    baseline_row,
    breakdown,
    floor_row,
    minimum_requests,
    num,
    request_kinds,
    requests_row,
    throttled_row,
)
from bench.scale import FULL, QUICK, Scale, say
from bench.seeding import (
    OLD_MINUTES,
    edit_leads,
    edit_progressions,
    edit_remote_leads,
    seed_leads,
    seed_progressions,
)
from bench.startup import noop, startup
from bench.throughput import throughput
from reconciler.emulators.base import EmulatorServer
from reconciler.remotes.pacing import JITTER_GUARD

__all__ = ["FULL", "QUICK", "SCENARIOS", "Scale", "say"]


@dataclass(frozen=True)
class RemoteSpec:
    """What the scenarios need to know about one remote."""

    name: str
    mapping: str
    page: int  # records per listing request
    batch: int  # records per write request
    read_batch: int  # ids per read-by-id request
    reads_before_writing: bool  # every push reads what it writes first (Twenty)
    schema_read: str  # what a first run reads of the schema, once a day

    def emulator(self, lab: Lab) -> EmulatorServer:
        """This remote's emulator in the lab."""
        return lab.airtable if self.name == "airtable" else lab.twenty

    def rule(self, conditions: Conditions) -> Rule | None:
        """The remote's rate limit as it counts requests (None: unlimited)."""
        if self.name == "airtable":
            return Rule(conditions.airtable_rate, 1.0) if conditions.airtable_rate else None
        if not conditions.twenty_per_minute:
            return None
        return Rule(
            int(conditions.twenty_burst),
            60.0 * conditions.twenty_burst / conditions.twenty_per_minute,
            bucket=True,
        )

    def push_minimum(self, records: int, *, alone: bool) -> tuple[int, str]:
        """The fewest requests a push of ``records`` updates can make, and how it is made up.

        After a complete pull in the same run the state is trusted: writes, and one listing of
        the records changed since the pull (a person editing while the run ran) before them.
        The records' current state is read by id first when the remote needs it before writing
        (Twenty: every push) or when no pull ran before (``--stage push``).
        """
        writes = minimum_requests(records, self.batch)
        wrote = f"{_count(writes, 'write')} of {self.batch}"
        if not (alone or self.reads_before_writing):
            return writes + 1, f"1 listing of the records changed since the pull + {wrote}"
        reads = minimum_requests(records, self.read_batch)
        return reads + writes, f"{_count(reads, 'read')} of {self.read_batch} ids + {wrote}"


AIRTABLE = RemoteSpec(
    "airtable",
    "leads",
    100,
    10,
    100,
    reads_before_writing=False,
    schema_read="the base's schema: field ids",
)
TWENTY = RemoteSpec(
    "twenty",
    "rep_progressions",
    200,
    60,
    200,
    reads_before_writing=True,
    schema_read="the data model: the mapped fields checked",
)
REMOTES = (AIRTABLE, TWENTY)


def pull(lab: Lab, scale: Scale) -> list[Row]:
    """A first run over ``scale.pull`` fresh records per remote, at the scale's conditions."""
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
            rule = spec.rule(scale.conditions)
            pulled = result.mapping(spec.mapping)["pull"]["fetched"]
            kinds = request_kinds(em)
            how = breakdown(em)
            if kinds["meta"]:
                how += f" (a first run reads {spec.schema_read}, kept a day)"
            minimum = minimum_requests(pulled, spec.page)
            rows += [
                requests_row(
                    spec.name,
                    "pulled",
                    len(em.requests),
                    pulled,
                    minimum,
                    f"{minimum} pages of {spec.page}",
                    how,
                ),
                floor_row(
                    spec.name,
                    f"pull {pulled:,}",
                    result.wall,
                    lab.served.of(em),
                    rule,
                    _split(result, rule, len(em.requests)),
                ),
                throttled_row(spec.name, em.count(status=429), f"pull run; {_api(result, spec)}"),
            ]
    return rows


def push(lab: Lab, scale: Scale) -> list[Row]:
    """A cron run that finds ``scale.push`` local edits per remote and an empty pull window,
    at the scale's conditions; then the naive push of the same edits as the baseline.

    The push's requests are the run's requests less the listing of the (empty) window.
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
            rule = spec.rule(scale.conditions)
            counts = result.mapping(spec.mapping)["push"]
            pushed = counts["updated"] + counts["created"]
            kinds = request_kinds(em)
            # Stage 1's listing of its (empty) window is one page; any other listing is the
            # push's own (Airtable's look at the records changed since the pull).
            ours[spec.name] = pushing = len(em.requests) - 1 - kinds["meta"]
            minimum, how_minimum = spec.push_minimum(pushed, alone=False)
            rows += [
                requests_row(
                    spec.name,
                    "pushed",
                    pushing,
                    pushed,
                    minimum,
                    how_minimum,
                    f"{breakdown(em)}; stage 1's listing of its empty window not counted",
                ),
                floor_row(
                    spec.name,
                    f"push {pushed:,}",
                    result.wall,
                    lab.served.of(em),
                    rule,
                    _split(result, rule, len(em.requests)),
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
            rule = spec.rule(scale.conditions)
            note = f"≈ {rule.alone(naive[spec.name]):,.0f} s at the rate limit" if rule else ""
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
        minimum, how_minimum = spec.push_minimum(pushed, alone=True)
        row = requests_row(
            spec.name, "pushed", len(em.requests), pushed, minimum, how_minimum, breakdown(em)
        )
        rows.append(replace(row, figure=f"{row.figure}, --stage push"))
    return rows


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
    return [
        at_most(
            "local",
            f"peak RSS, {large:,}-lead pull (MB)",
            num(peaks[1]),
            f"{RSS_MAX_MB:g} MB",
            peaks[1] / RSS_MAX_MB,
            1.0,
            f"max RSS of the process, from wait4; {rates[1]}",
        ),
        at_most(
            "local",
            f"peak RSS, {large:,}-lead pull against {small:,} (MB)",
            num(peaks[1]),
            f"{small:,} leads: {num(peaks[0])} MB",
            peaks[1] / peaks[0],
            RSS_GROWTH_MAX,
            f"pages are streamed: {large // small}{TIMES} the records; {rates[0]}",
        ),
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
                        {
                            without: _probe(lab, lab.postgres.url_of(name), without)
                            for name, without in order
                        }
                    )
    return [
        _changelog_row(f"change log share, first pull of {n:,} leads", samples["first"]),
        _changelog_row(f"change log share, pull of {n:,} remote edits", samples["update"]),
    ]


PROBE = journal_probe.__file__  # run as a script (-P: its folder stays off sys.path)


def _probe(lab: Lab, url: str, without: bool) -> ProcessResult:
    """One pull into the database at ``url``, with the change log timed or left out; the work
    it leaves the server is done before the next run is measured."""
    lab.database_url = url
    command = [sys.executable, "-P", PROBE, *([WITHOUT_LOG] if without else [])]
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
    return at_most(
        "local",
        figure,
        f"{share:.1%}",
        f"{CHANGELOG_SHARE_MAX:.0%} of the run",
        share / CHANGELOG_SHARE_MAX,
        1.0,
        note,
    )


Scenario = Callable[[Lab, Scale], list[Row]]
SCENARIOS: dict[str, Scenario] = {
    "startup": startup,
    "noop": noop,
    "pull": pull,
    "push": push,
    "bases": bases,
    "throughput": throughput,
    "memory": memory,
    "changelog": changelog,
}
GROUPS = ("start", "airtable", "twenty", "bases", "local")


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _split(result: ProcessResult, rule: Rule | None, requests: int) -> str:
    """A run's wall time as its own duration and the rest (process start and exit), and under
    a window rule what the pacer's guard adds: ``JITTER_GUARD`` to every window after the
    first."""
    rest = result.wall - result.duration
    split = f"run {result.duration:.1f} s + process start and exit {rest:.1f} s"
    if rule is None or rule.bucket:
        return split
    windows = (requests - 1) // rule.limit
    return (
        f"{split}; in the run, the pacer's guard: {windows} windows x "
        f"{JITTER_GUARD * 1000:.0f} ms = {windows * JITTER_GUARD:.1f} s"
    )


def _api(result: ProcessResult, spec: RemoteSpec) -> str:
    """The run report's own request counters, for comparison with the emulator's log."""
    api = result.mapping(spec.mapping)["api"]
    return f"report: {api['requests']} requests, {api['retries']} retries"
