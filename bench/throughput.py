"""Local apply against the network: a large lead pull with no latency and no limits, into a
fresh database over TCP (as a production ``DATABASE_URL``) and through the unix socket (as the
embedded Postgres), both with Postgres defaults.

Each round runs, per transport, the real ``reconcile`` (records applied per second, end to end)
and the same pull through :mod:`bench.listing_probe`, which reads the whole window before
applying it: its reading time is the run's listing time, and the rest of its duration the run's
local time, each measured whole, whatever the engine overlaps. Transports alternate in order
between rounds; the table shows medians.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass

from bench import listing_probe
from bench.lab import Lab, ProcessResult
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
from bench.scale import Scale, say
from bench.seeding import seed_leads

PROBE = listing_probe.__file__  # run as a script (-P: its folder stays off sys.path)


@dataclass(frozen=True)
class Sample:
    """One real pull and one probed pull of the same window."""

    real: ProcessResult
    probed: ProcessResult

    @property
    def applied(self) -> int:
        """Records the real run pulled."""
        return int(self.real.mapping("leads")["pull"]["fetched"])

    @property
    def listing(self) -> float:
        """The probed run's reading time."""
        return listing_probe.seconds(self.probed.stderr)

    @property
    def local(self) -> float:
        """The probed run's time beyond its reading."""
        return max(self.probed.duration - self.listing, 0.0)


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
                lab.reset_logs()
                real = _pull(lab, tcp)
                requests = breakdown(lab.airtable)
                probed = _pull(lab, tcp, [sys.executable, "-P", PROBE])
                samples[tcp].append(Sample(real, probed))
    settings = ", ".join(
        f"{s} {lab.postgres.setting(s)}" for s in ("fsync", "synchronous_commit", "shared_buffers")
    )
    rows: list[Row] = []
    for tcp in (True, False):
        kind = "TCP 127.0.0.1" if tcp else "unix socket"
        mine = samples[tcp]
        local = statistics.median(s.local for s in mine)
        listing = statistics.median(s.listing for s in mine)
        duration = statistics.median(s.probed.duration for s in mine)
        rows.append(
            at_most(
                "local",
                f"local time, {n:,}-lead pull, no latency, {kind} (s)",
                f"{local:.1f}",
                f"listing {listing:.1f} s",
                local / listing if listing else float("inf"),
                LOCAL_RATIO_MAX,
                f"medians of {len(mine)}; the run with its {requests} read to the end first "
                f"(listing: inside the remote's prepare and list_changed), then applied; "
                f"local = its duration ({duration:.1f} s) less the listing",
            )
        )
    for tcp, limit in ((True, TCP_APPLY_MIN), (False, THROUGHPUT_MIN)):
        kind = "TCP 127.0.0.1" if tcp else "unix socket"
        mine = samples[tcp]
        rate = statistics.median(s.applied / s.real.duration for s in mine)
        wall = statistics.median(s.real.wall for s in mine)
        duration = statistics.median(s.real.duration for s in mine)
        rows.append(
            at_least(
                "local",
                f"records applied/s, {n:,}-lead pull, {kind}",
                num(rate),
                f"{num(limit)}/s",
                rate / limit,
                1.0,
                f"median of {len(mine)}: records / the run's duration ({duration:.1f} s, "
                f"listing included; wall {wall:.1f} s with process start); Postgres defaults: "
                f"{settings}",
            )
        )
    return rows


def _pull(lab: Lab, tcp: bool, command: list[str] | None = None) -> ProcessResult:
    """A pull of every lead into a fresh database; the work it leaves the server is done
    before the next run is measured."""
    with lab.postgres.fresh() as name:
        lab.database_url = url = lab.postgres.url_of(name, tcp=tcp)
        result = lab.reconcile_ok("--stage", "pull", "--mapping", "leads", command=command or ())
        lab.postgres.settle(url)
    return result
