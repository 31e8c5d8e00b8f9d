"""Convergence over whole runs: random edits on Airtable, Twenty and Postgres, random faults,
several runs; then one clean run must leave both sides equal to what the contract says,
with no duplicate, and one more run must write nothing.

The engine runs in-process against the emulators over loopback HTTP and one real database
per test function; each example starts from emptied tables and reset emulators. The oracle
is ``tests.convergence_model``: it applies the contract's per-field rules to the explicit
edit times, stage by stage, for the stages the injected faults let through.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from httpx._transports import default as httpx_transport  # where clients build SSL contexts
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reconciler.config import RunOptions, Settings, load_settings, select_mappings
from reconciler.emulators.airtable import AirtableEmulator
from reconciler.emulators.twenty import TwentyEmulator
from reconciler.engine.run import Run
from reconciler.model import LEADS, REP_PROGRESSIONS, FieldSpec, Mapping, canonical, to_db, to_wire
from reconciler.remotes import airtable_http
from reconciler.remotes.factory import build_remote
from reconciler.report import RunReport
from reconciler.store.schema import BUSINESS_TABLES
from reconciler.store.sync import Store
from tests.convergence_model import MappingModel, RecordModel
from tests.helpers import install_fault, reset_world

LEADS_COLUMNS = ("status", "icp_score", "notes", "claimed_by", "processing_status", "claimed_at")
REPS_COLUMNS = ("name", "total_xp", "current_rank", "completed_modules", "badges")
CHOICES: dict[str, list[Any]] = {
    "status": [None, "New", "Hot"],
    "icp_score": [None, 0, 1.5, 70],
    "notes": [None, "a", "b", "c"],
    "claimed_by": [None, "a", "b"],
    "processing_status": [None, "queued", "done"],
    "claimed_at": [None, "2026-11-20T10:00:00.123Z", "2026-11-21T11:30:00.000Z"],
    "name": [None, "r1", "r2", "r3"],
    "total_xp": [None, 0, 5, 12.5],
    "current_rank": [None, "E-1", "E-2"],
    "completed_modules": [None, [], ["m1"], ["m2"], ["m1", "m2"], ["m3", "m2"]],
    "badges": [None, [], ["gold"], {"k": 1}],
}
LOCAL_LEADS_COLUMNS = tuple(c for c in LEADS_COLUMNS if LEADS.field(c).pushes)
FAULT_KINDS = ("none", "burst503", "burst429", "drop", "pull_outage", "push_outage")
WRITE_METHOD = {"airtable": "PATCH", "twenty": "POST"}


def _field_edit(columns: tuple[str, ...]) -> st.SearchStrategy[tuple[str, Any]]:
    return st.sampled_from(columns).flatmap(
        lambda c: st.tuples(st.just(c), st.sampled_from(CHOICES[c]))
    )


def _conflict(columns: tuple[str, ...]) -> st.SearchStrategy[tuple[Any, ...]]:
    """The same field edited on both sides: (column, local value, remote value, remote first)."""
    return st.sampled_from(columns).flatmap(
        lambda c: st.tuples(
            st.just(c),
            st.sampled_from(CHOICES[c]),
            st.sampled_from(CHOICES[c]),
            st.booleans(),
        )
    )


INDEX = st.integers(0, 99)
EDITS = st.one_of(
    st.tuples(st.just("airtable"), INDEX, _field_edit(LEADS_COLUMNS)),
    st.tuples(st.just("leads"), INDEX, _field_edit(LOCAL_LEADS_COLUMNS)),
    st.tuples(st.just("both_leads"), INDEX, _conflict(LOCAL_LEADS_COLUMNS)),
    st.tuples(st.just("twenty"), INDEX, _field_edit(REPS_COLUMNS)),
    st.tuples(st.just("reps"), INDEX, _field_edit(REPS_COLUMNS)),
    st.tuples(st.just("both_reps"), INDEX, _conflict(REPS_COLUMNS)),
    st.tuples(st.just("new"), INDEX, st.tuples(st.just("name"), st.just("n"))),
)
FAULTS = st.tuples(
    st.sampled_from(FAULT_KINDS), st.integers(1, 3), st.sampled_from([None, "GET", "write"])
)
ROUND = st.tuples(st.lists(EDITS, max_size=6), FAULTS, FAULTS)
SCENARIO = st.tuples(st.integers(2, 4), st.integers(2, 4), st.lists(ROUND, min_size=1, max_size=3))


@dataclass
class World:
    """The servers, the database and the settings one test function shares across examples."""

    airtable: AirtableEmulator
    twenty: TwentyEmulator
    db: sa.Engine
    settings: Settings

    def reset(self) -> None:
        """Empty every table the reconciler or the test writes; reset both emulators."""
        reset_world(self.db, self.airtable, self.twenty)

    def run(self) -> RunReport:
        """One reconciliation run over both mappings, in-process."""
        options = RunOptions(lookback=20)
        return Run(
            options, self.settings, select_mappings(options, self.settings), build_remote
        ).execute()


@pytest.fixture
def world(
    airtable: AirtableEmulator,
    twenty: TwentyEmulator,
    db: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> World:
    """Both emulators and one database; retries fast so outages cost little time."""
    monkeypatch.setenv("RECONCILER_RETRY_BASE_SECONDS", "0.0001")
    # A 429 holds its base for Airtable's 30 s lockout; the emulator's injected ones lock out
    # nothing, and the retries are what is tested.
    monkeypatch.setattr(airtable_http, "LOCKOUT_SECONDS", 0.0)
    _reflect_once(monkeypatch)
    _one_ssl_context(monkeypatch)
    return World(airtable, twenty, db, load_settings())


def _reflect_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Check each business table against the live schema once per test instead of once per
    run: the schema never changes between examples, and reflection dominates a tiny run."""
    checked: dict[str, sa.Table] = {}
    original = Store.table

    def table(self: Store, mapping: Mapping) -> sa.Table:
        if mapping.local_table not in checked:
            checked[mapping.local_table] = original(self, mapping)
        return checked[mapping.local_table]

    monkeypatch.setattr(Store, "table", table)


def _one_ssl_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """Share one default (verifying) SSL context among the HTTP clients of every run:
    building one reads the CA bundle, which costs more than a whole run against loopback."""
    build = httpx_transport.create_ssl_context  # type: ignore[attr-defined]
    shared = functools.cache(lambda: build())

    def create(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
        if verify is True and cert is None and trust_env:
            return shared()
        return build(verify=verify, cert=cert, trust_env=trust_env)

    monkeypatch.setattr(httpx_transport, "create_ssl_context", create)


class Example:
    """One example: the models of both mappings and the actions that keep reality in step."""

    def __init__(self, world: World, leads: int, reps: int) -> None:
        self.world = world
        self.base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=15)
        self.clock = 0
        self.leads = MappingModel(LEADS, tuple(LEADS.field(c) for c in LEADS_COLUMNS))
        self.reps = MappingModel(
            REP_PROGRESSIONS, tuple(REP_PROGRESSIONS.field(c) for c in REPS_COLUMNS)
        )
        for i in range(leads):
            self._seed(self.leads, i)
        for i in range(reps):
            self._seed(self.reps, i)

    def at(self) -> tuple[int, datetime]:
        """The next explicit edit time (model time and wall time)."""
        self.clock += 1
        return self.clock, self.base + timedelta(seconds=self.clock)

    def _seed(self, model: MappingModel, i: int) -> None:
        tick, moment = self.at()
        values = {
            s.column: CHOICES[s.column][(i + 1) % len(CHOICES[s.column])] for s in model.fields
        }
        wire = _wire(model.fields, values)
        if model is self.leads:
            rid = self.world.airtable.create("Leads", wire, modified_at=moment)["id"]
        else:
            rid = self.world.twenty.create(wire, updated_at=moment)["id"]
        record = RecordModel(0, dict(values), dict(values), dict(values), 0, tick, rid)
        model.records.append(record)

    def link_seeded(self) -> None:
        """After the first run, learn the local ids of the pulled records (and model the pull)."""
        for model in (self.leads, self.reps):
            key = model.mapping.key_column
            with self.world.db.connect() as conn:
                ids: dict[str, int] = dict(
                    conn.execute(
                        sa.text(f"SELECT {key}::text, id FROM {model.mapping.local_table}")
                    ).all()
                )
            for record in model.records:
                record.local_id = ids[str(record.remote_id)]
                record.local_time = model.tick()

    # -- edits ---------------------------------------------------------------------------------

    def apply(self, edit: tuple[str, int, tuple[Any, ...]]) -> None:
        """Perform one generated edit for real and in the model."""
        where, index, change = edit
        if where == "new":
            self._insert_rep(index)
            return
        model = self.leads if where in ("airtable", "leads", "both_leads") else self.reps
        remote_side = where in ("airtable", "twenty")
        linked = where not in ("leads", "reps")  # the record must exist remotely
        candidates = [r for r in model.records if r.remote is not None or not linked]
        if not candidates:
            return
        record = candidates[index % len(candidates)]
        if not where.startswith("both_"):
            column, value = change
            edit_one = self.remote_edit if remote_side else self.local_edit
            edit_one(model, record, column, value)
            return
        column, local_value, remote_value, remote_first = change
        steps = [
            (self.local_edit, local_value),
            (self.remote_edit, remote_value),
        ]
        for step, value in reversed(steps) if remote_first else steps:
            step(model, record, column, value)

    def local_edit(self, model: MappingModel, record: RecordModel, column: str, value: Any) -> None:
        """An application writes one column, stamping ``updated_at`` with the next edit time."""
        tick, moment = self.at()
        table = BUSINESS_TABLES[model.mapping.local_table]
        with self.world.db.begin() as conn:
            conn.execute(
                sa.update(table)
                .where(table.c.id == record.local_id)
                .values({column: to_db(model.mapping.field(column), value), "updated_at": moment})
            )
        model.edit_local(record, column, value, tick)

    def remote_edit(
        self, model: MappingModel, record: RecordModel, column: str, value: Any
    ) -> None:
        """A user edits one field remotely at the next edit time."""
        tick, moment = self.at()
        wire = _wire((model.mapping.field(column),), {column: value})
        if model is self.leads:
            self.world.airtable.update("Leads", str(record.remote_id), wire, modified_at=moment)
        else:
            rid = record.remote_id or self._twenty_id(record)
            self.world.twenty.update(rid, wire, updated_at=moment)
        model.edit_remote(record, column, value, tick)

    def _insert_rep(self, index: int) -> None:
        tick, moment = self.at()
        values: dict[str, Any] = {c: None for c in REPS_COLUMNS}
        values["name"] = f"new {index}"
        values["total_xp"] = CHOICES["total_xp"][index % 4]
        table = BUSINESS_TABLES["rep_progressions"]
        with self.world.db.begin() as conn:
            local_id = conn.execute(
                sa.insert(table)
                .values(
                    {
                        **{c: to_db(REP_PROGRESSIONS.field(c), v) for c, v in values.items()},
                        "updated_at": moment,
                    }
                )
                .returning(table.c.id)
            ).scalar_one()
        self.reps.records.append(RecordModel(int(local_id), values, local_time=tick))

    def _twenty_id(self, record: RecordModel) -> str:
        with self.world.db.connect() as conn:
            rid = conn.execute(
                sa.text("SELECT twenty_id::text FROM rep_progressions WHERE id = :i"),
                {"i": record.local_id},
            ).scalar_one()
        record.remote_id = str(rid)
        return record.remote_id

    # -- runs ----------------------------------------------------------------------------------

    def run_with_faults(
        self, airtable_fault: tuple[str, int, Any], twenty_fault: tuple[str, int, Any]
    ) -> None:
        """Install the faults, run, clear them; advance the models by what got through."""
        outcomes = {}
        for name, em, fault in (
            ("airtable", self.world.airtable, airtable_fault),
            ("twenty", self.world.twenty, twenty_fault),
        ):
            outcomes[name] = install_fault(em, WRITE_METHOD[name], fault)
        report = self.world.run()
        self.world.airtable.faults.clear()
        self.world.twenty.faults.clear()
        for name, model in (("airtable", self.leads), ("twenty", self.reps)):
            pull_ok, push_ok = outcomes[name]
            result = next(m for m in report.mappings if m.remote == name)
            if not pull_ok:
                assert result.failed, report.to_dict()  # the outage did take effect
            model.sync(pull_ok=pull_ok, push_ok=push_ok)

    def clean_run(self) -> RunReport:
        """A run without faults; both models advance fully."""
        report = self.world.run()
        assert report.exit_code == 0, report.to_dict()
        self.leads.sync(pull_ok=True, push_ok=True)
        self.reps.sync(pull_ok=True, push_ok=True)
        return report


def _wire(specs: tuple[FieldSpec, ...], values: dict[str, Any]) -> dict[str, Any]:
    return {s.remote: to_wire(s, values[s.column]) for s in specs}


# -- reading both sides ----------------------------------------------------------------------------


def _local_rows(world: World, mapping: Mapping, specs: tuple[FieldSpec, ...]) -> dict[int, Any]:
    table = BUSINESS_TABLES[mapping.local_table]
    with world.db.connect() as conn:
        found = conn.execute(sa.select(table)).mappings().all()
    return {
        r["id"]: (
            None if r[mapping.key_column] is None else str(r[mapping.key_column]),
            {s.column: canonical(s, r[s.column], from_remote=False) for s in specs},
            r["updated_at"],
        )
        for r in found
    }


def _remote_records(world: World, mapping: Mapping, specs: tuple[FieldSpec, ...]) -> dict[str, Any]:
    if mapping is LEADS:
        raw = {r["id"]: r["fields"] for r in world.airtable.records("Leads")}
    else:
        raw = {r["id"]: r for r in world.twenty.records()}
    return {
        rid: {s.column: canonical(s, fields.get(s.remote), from_remote=True) for s in specs}
        for rid, fields in raw.items()
    }


def _assert_converged(world: World, model: MappingModel) -> None:
    """Both sides hold the model's values for every mapped field; nothing is duplicated."""
    local = _local_rows(world, model.mapping, model.fields)
    remote = _remote_records(world, model.mapping, model.fields)
    assert len(local) == len(model.records), "a local row appeared or vanished"
    assert len(remote) == len(model.records), "a remote record is duplicated or missing"
    keys = [key for key, _, _ in local.values()]
    assert None not in keys and len(set(keys)) == len(keys) and set(keys) == set(remote)
    for record in model.records:
        key, values, _ = local[record.local_id]
        assert record.local == record.remote, "the model itself did not converge"
        assert values == record.local, (model.mapping.name, "local", record.local_id)
        assert remote[key] == record.remote, (model.mapping.name, "remote", key)
    every = model.mapping.fields
    everywhere = _remote_records(world, model.mapping, every)
    for key, values, _ in _local_rows(world, model.mapping, every).values():
        assert values == everywhere[str(key)], ("a mapped field differs", model.mapping.name, key)


def _writes(world: World) -> int:
    """Write requests both emulators received (Airtable's POST listRecords is a read)."""
    requests = [*world.airtable.requests, *world.twenty.requests]
    return sum(
        1
        for r in requests
        if r.method in ("POST", "PATCH", "PUT", "DELETE") and not r.path.endswith("/listRecords")
    )


# -- the property ----------------------------------------------------------------------------------

# Fixed examples (the suite's runs are repeatable), one world for all of a test's examples.
_PROPERTY = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# Found at random: a pull writes a row holding a pending local edit, dating it by the remote
# change (not the time of copying); a later remote edit of the contested field then wins.
_PULL_DATES_THE_ROW = (
    2,
    3,
    [
        ([("reps", 14, ("current_rank", "E-1"))], ("none", 1, None), ("pull_outage", 1, None)),
        ([("twenty", 8, ("name", None))], ("none", 1, None), ("push_outage", 1, None)),
        ([("twenty", 50, ("current_rank", "E-2"))], ("none", 1, None), ("none", 1, None)),
    ],
)


@pytest.mark.slow
@settings(_PROPERTY, max_examples=200)
@given(SCENARIO)
@example(scenario=_PULL_DATES_THE_ROW)
def test_convergence__random_edits_and_faults_then_a_clean_run_converge_without_loss(
    world: World, scenario: tuple[int, int, list[Any]]
) -> None:
    """Whatever the interleaving of edits and faults: after one clean run both sides hold the
    contract's value for every field (no edit lost except to a newer one), nothing is
    duplicated, and one more run writes nothing anywhere."""
    world.reset()
    _converges(world, scenario)


@pytest.mark.slow
@settings(_PROPERTY, max_examples=40)
@given(SCENARIO)
def test_convergence__the_same_against_a_twenty_comparing_stamps_at_the_millisecond(
    world: World, scenario: tuple[int, int, list[Any]]
) -> None:
    """The same property against a newer Twenty server: stamps stored to the microsecond,
    answered and compared at the millisecond, the cursor's ``ORDER BY`` on the stored time
    (``microsecond_stamps``, ``millisecond_comparisons``)."""
    world.reset()
    world.twenty.microsecond_stamps = True
    world.twenty.millisecond_comparisons = True
    _converges(world, scenario)


def _converges(world: World, scenario: tuple[int, int, list[Any]]) -> None:
    """Play ``scenario`` on a reset world, then check convergence and a quiet run after it."""
    leads, reps, rounds = scenario
    example = Example(world, leads, reps)
    assert world.run().exit_code == 0
    example.link_seeded()
    for edits, airtable_fault, twenty_fault in rounds:
        for edit in edits:
            example.apply(edit)
        example.run_with_faults(airtable_fault, twenty_fault)

    example.clean_run()

    _assert_converged(world, example.leads)
    _assert_converged(world, example.reps)
    before = {
        m.mapping.name: {i: t for i, (_, _, t) in _local_rows(world, m.mapping, m.fields).items()}
        for m in (example.leads, example.reps)
    }
    world.airtable.reset_log()
    world.twenty.reset_log()
    again = world.run()
    assert again.exit_code == 0, again.to_dict()
    assert _writes(world) == 0
    for m in (example.leads, example.reps):
        after = {i: t for i, (_, _, t) in _local_rows(world, m.mapping, m.fields).items()}
        assert after == before[m.mapping.name], "the last run changed local rows"


def test_convergence__model_sanity(world: World) -> None:
    """The harness itself: a scenario with a contested field on each remote ends as the
    contract says (newer side wins; arrays take the union)."""
    world.reset()
    example = Example(world, 2, 2)
    assert world.run().exit_code == 0
    example.link_seeded()
    lead, rep = example.leads.records[0], example.reps.records[0]
    example.local_edit(example.leads, lead, "notes", "local")
    example.remote_edit(example.leads, lead, "notes", "remote")  # later: remote wins
    example.remote_edit(example.reps, rep, "completed_modules", ["m3"])
    example.local_edit(example.reps, rep, "completed_modules", ["m1"])
    example.run_with_faults(("push_outage", 1, None), ("none", 1, None))
    example.clean_run()
    assert lead.local["notes"] == "remote"
    assert rep.local["completed_modules"] == ["m1", "m3"]
    _assert_converged(world, example.leads)
    _assert_converged(world, example.reps)
    remote = world.twenty.get(str(rep.remote_id))
    assert remote is not None and json.loads(remote["completedModules"]) == ["m1", "m3"]
