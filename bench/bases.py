"""Many bases at once: N Airtable bases, each with local edits to push, in one run, beside one
base alone, at the real limits.

Each base is an emulator of its own behind one API URL (:class:`bench.lab.AirtableBases`), with
Airtable's limit (5 requests in any second, then a 30-second lockout) counted per base, as
Airtable counts it. Each base has its own mapping (``base``, ``token_env``) and its own local
table, so the mappings work side by side in lanes (``engine/lanes.py``). Every sample starts
from the same state: a fresh database, a first sync of every base (no limits), and the same
edits; then the measured run pushes them. One base alone and all bases run interleaved.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bench.lab import FAST, AirtableBases, Conditions, Lab, ProcessResult, time_answers
from bench.measure import BASES_RATIO_MAX, Row, at_most
from bench.scale import Scale, say
from bench.seeding import OLD_MINUTES, edit_leads, seed_leads
from reconciler.emulators.airtable import AirtableEmulator
from reconciler.model import LEADS


def base_id(n: int) -> str:
    """The id of bench base ``n`` (``app`` and 14 letters or digits)."""
    return f"appBENCHBASE{n:05d}"


def mapping_name(n: int) -> str:
    """The mapping of bench base ``n``."""
    return f"base_{n}"


def table_name(n: int) -> str:
    """The local table of bench base ``n``."""
    return f"leads_base_{n}"


def config(count: int) -> str:
    """A config adding one mapping per base: the built-in ``leads`` fields, its own base,
    token variable and local table."""
    fields = ",\n".join(
        f'    {{ remote = "{f.remote}", column = "{f.column}", kind = "{f.kind}", '
        f'direction = "{f.direction}" }}'
        for f in LEADS.fields
    )
    return "\n".join(
        f'[mappings.{mapping_name(n)}]\nremote = "airtable"\ntable = "{LEADS.remote_table}"\n'
        f'base = "{base_id(n)}"\ntoken_env = "BENCH_AIRTABLE_TOKEN_{n}"\n'
        f'local_table = "{table_name(n)}"\nkey_column = "{LEADS.key_column}"\n'
        f'modified_field = "{LEADS.modified_field}"\nfields = [\n{fields},\n]\n'
        for n in range(1, count + 1)
    )


@dataclass(frozen=True)
class Sample:
    """One measured run: the process, and what each base received."""

    result: ProcessResult
    requests: dict[str, int]  # mapping name: requests its base logged
    throttled: int


class Bases:
    """The bases, their server, their config and their tokens, for one scenario."""

    def __init__(self, lab: Lab, count: int, conditions: Conditions) -> None:
        self.lab = lab
        self.conditions = conditions
        self.emulators = [
            AirtableEmulator(
                token=f"bench-token-{n}",
                base_id=base_id(n),
                rate_limit=0,
                lockout=0.0,
                iterator_ttl=3600.0,
                seed=n,
            )
            for n in range(1, count + 1)
        ]
        self.server = AirtableBases(self.emulators)
        self.server.start()
        time_answers(self.server, lab.served, self.server.base_of)
        self.config = lab.home / "bases.toml"
        self.config.write_text(config(count))
        self.env = {
            "AIRTABLE_API_URL": self.server.url,
            **{f"BENCH_AIRTABLE_TOKEN_{n}": em.token for n, em in enumerate(self.emulators, 1)},
        }

    def close(self) -> None:
        """Stop the bases' server."""
        self.server.stop()

    def run(self, *args: str) -> ProcessResult:
        """``reconcile --config BASES ARGS`` with the bases' URL and tokens."""
        return self.lab.reconcile_ok("--config", str(self.config), *args, env=self.env)

    def sample(self, records: int, count: int) -> Sample:
        """From a fresh state, push ``records`` local edits to each of the first ``count``
        bases in one run, at the real limits."""
        lab = self.lab
        for em in self.emulators:
            em.reset()
        with lab.scenario() as db:
            lab.set_conditions(FAST, self.emulators)
            with db.begin() as conn:
                for n in range(1, len(self.emulators) + 1):
                    _create_table(conn, table_name(n))
            for em in self.emulators:
                seed_leads(em, records, age_minutes=OLD_MINUTES)
            every = [f"--mapping={mapping_name(n)}" for n in range(1, len(self.emulators) + 1)]
            self.run("--full", *every)
            for n in range(1, count + 1):
                edit_leads(db, records, table=table_name(n))
            lab.set_conditions(self.conditions, self.emulators)
            lab.reset_logs(*self.emulators)
            result = self.run(*every[:count])
        return Sample(
            result,
            {mapping_name(n): len(em.requests) for n, em in enumerate(self.emulators, 1)},
            sum(em.count(status=429) for em in self.emulators),
        )


def bases(lab: Lab, scale: Scale) -> list[Row]:
    """``scale.bases_count`` bases x ``scale.bases`` pushed records in one run, beside one base
    alone, interleaved, at the scale's conditions."""
    n, count = scale.bases, scale.bases_count
    setup = Bases(lab, count, scale.conditions)
    samples: dict[int, list[Sample]] = {1: [], count: []}
    try:
        for round_no in range(scale.bases_rounds):
            for k in (1, count):
                say(f"bases: {k} base(s) x {n:,} pushed, round {round_no + 1}")
                samples[k].append(setup.sample(n, k))
    finally:
        setup.close()
    one = statistics.median(s.result.wall for s in samples[1])
    many = statistics.median(s.result.wall for s in samples[count])
    problems = [p for k in samples for s in samples[k] for p in _report_problems(s, k, n)]
    throttled = sum(s.throttled for k in samples for s in samples[k])
    walls = ", ".join(
        f"{s1.result.wall:.1f}/{s4.result.wall:.1f}"
        for s1, s4 in zip(samples[1], samples[count], strict=True)
    )
    requests = samples[count][0].requests
    return [
        at_most(
            "bases",
            f"wall time, {count} bases x {n:,} pushed (s)",
            f"{many:.1f}",
            f"1 base x {n:,}: {one:.1f} s",
            many / one,
            BASES_RATIO_MAX,
            f"medians of {len(samples[1])}, interleaved (one/{count}: {walls} s); each base "
            f"its own emulator at the scale's limit, one mapping and local table each; "
            f"process start included; {count} bases: {sum(requests.values())} requests "
            f"({', '.join(str(v) for v in requests.values())})",
        ),
        Row(
            "bases",
            f"report order and counters, {count} bases",
            "as expected" if not problems else f"{len(problems)} wrong",
            "",
            None,
            "all as expected",
            not problems,
            "; ".join(problems[:3])
            or f"mappings in config order; each: {n:,} pushed (updated), 0 failed, 0 pulled; "
            f"api.requests = what its base logged; change_log.written = {count * n:,}",
        ),
        Row(
            "bases",
            "429 answers received",
            str(throttled),
            "",
            None,
            "= 0",
            throttled == 0,
            "every base, every measured run",
        ),
    ]


def _report_problems(sample: Sample, count: int, records: int) -> list[str]:
    """What in a measured run's report is not what the run did."""
    report: dict[str, Any] = sample.result.report
    names = [m["name"] for m in report["mappings"]]
    wanted = [mapping_name(k) for k in range(1, count + 1)]
    problems = [] if names == wanted else [f"order {names}, not {wanted}"]
    for entry in report["mappings"]:
        if entry["name"] not in wanted:
            continue
        push, pull, api = entry["push"], entry["pull"], entry["api"]
        got = (push["updated"], push["failed"], pull["fetched"], api["requests"])
        expected = (records, 0, 0, sample.requests[entry["name"]])
        if got != expected:
            problems.append(f"{entry['name']}: (updated, failed, pulled, requests) {got}")
    written = report.get("change_log", {}).get("written")
    if written != count * records:
        problems.append(f"change_log.written {written}, not {count * records}")
    return problems


def _create_table(conn: sa.Connection, name: str) -> None:
    """A copy of ``leads`` (columns, defaults, identity, unique key) with its trigger."""
    conn.execute(sa.text(f"CREATE TABLE {name} (LIKE leads INCLUDING ALL)"))
    conn.execute(
        sa.text(
            f"CREATE TRIGGER {name}_touch_updated_at BEFORE INSERT OR UPDATE ON {name} "
            "FOR EACH ROW EXECUTE FUNCTION reconciler.touch_updated_at()"
        )
    )
