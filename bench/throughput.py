"""Local apply against the network: a large lead pull with no latency and no limits, into a
fresh database over TCP (as a production ``DATABASE_URL``) and through the unix socket (as the
embedded Postgres), both with Postgres defaults.

Each run is followed by its own requests replayed alone by a bare HTTP client
(:mod:`bench.replay`): that is the run's listing time, measured beside it. The run's local time
is its duration less that listing time: everything the run does beyond reading the pages.
Runs and replays alternate (run, replay, run, replay), transports alternate too, and the
table shows medians.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench.lab import Lab
from bench.measure import (
    LOCAL_RATIO_MAX,
    TCP_APPLY_MIN,
    THROUGHPUT_MIN,
    Row,
    at_least,
    at_most,
    breakdown,
    num,
)
from bench.replay import replay
from bench.scale import Scale, say
from bench.seeding import seed_leads


@dataclass(frozen=True)
class Sample:
    """One pull and its replay."""

    applied: int
    duration: float  # the run's own, from its report
    wall: float  # process start included
    listing: float  # the run's requests replayed alone

    @property
    def local(self) -> float:
        """The run's time beyond its listing."""
        return max(self.duration - self.listing, 0.0)


def throughput(lab: Lab, scale: Scale) -> list[Row]:
    """Local time against listing time, and records applied per second, per transport."""
    n = scale.throughput
    samples: dict[bool, list[Sample]] = {False: [], True: []}
    requests = ""
    with lab.scenario():
        seed_leads(lab.airtable, n)
        for round_no in range(scale.throughput_rounds):
            for tcp in (True, False)[:: -1 if round_no % 2 else 1]:
                kind = "TCP" if tcp else "unix socket"
                say(f"throughput: pull of {n:,} leads over {kind}, round {round_no + 1}")
                with lab.postgres.fresh() as name:
                    lab.database_url = url = lab.postgres.url_of(name, tcp=tcp)
                    lab.reset_logs()
                    result = lab.reconcile_ok("--stage", "pull", "--mapping", "leads")
                    logged = list(lab.airtable.requests)
                    requests = breakdown(lab.airtable)
                    lab.postgres.settle(url)
                    again = replay(lab.airtable.url, lab.airtable.token, logged)
                applied = result.mapping("leads")["pull"]["fetched"]
                if again.records != applied:
                    raise RuntimeError(
                        f"the replay read {again.records:,} records, not {applied:,}"
                    )
                samples[tcp].append(Sample(applied, result.duration, result.wall, again.seconds))
    settings = ", ".join(
        f"{s} {lab.postgres.setting(s)}" for s in ("fsync", "synchronous_commit", "shared_buffers")
    )
    rows: list[Row] = []
    for tcp in (True, False):
        kind = "TCP 127.0.0.1" if tcp else "unix socket"
        mine = samples[tcp]
        local = statistics.median(s.local for s in mine)
        listing = statistics.median(s.listing for s in mine)
        duration = statistics.median(s.duration for s in mine)
        rows.append(
            at_most(
                "local",
                f"local time, {n:,}-lead pull, no latency, {kind} (s)",
                f"{local:.1f}",
                f"listing {listing:.1f} s",
                local / listing if listing else float("inf"),
                LOCAL_RATIO_MAX,
                f"medians of {len(mine)}; local = the run's duration ({duration:.1f} s) less its "
                f"{requests} replayed alone by a bare HTTP client (listing), run and replay "
                "interleaved",
            )
        )
    for tcp, limit in ((True, TCP_APPLY_MIN), (False, THROUGHPUT_MIN)):
        kind = "TCP 127.0.0.1" if tcp else "unix socket"
        mine = samples[tcp]
        rate = statistics.median(s.applied / s.duration for s in mine)
        wall = statistics.median(s.wall for s in mine)
        local_rate = statistics.median(s.applied / max(s.local, 1e-9) for s in mine)
        rows.append(
            at_least(
                "local",
                f"records applied/s, {n:,}-lead pull, {kind}",
                num(rate),
                f"{num(limit)}/s",
                rate / limit,
                1.0,
                f"median of {len(mine)}: records / the run's duration (listing included), "
                f"{num(local_rate)}/s of local time; wall {wall:.1f} s "
                f"with process start; Postgres defaults: {settings}",
            )
        )
    return rows
