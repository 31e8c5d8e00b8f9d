"""Convergence of a hub over whole runs: reps kept in Airtable, in Twenty and in Postgres between
them; random edits on all three sides (some to the same field on two or three sides, some to
different fields of one rep), runs under random faults on either remote, with either mapping's
stage 1 first and either remote's clock off, then one clean run. Whatever happened, the three
sides must then agree, one more run must write nothing anywhere, nothing is duplicated, and no
edit is lost.

Two tests share the scenarios:

* ``…converge_without_loss`` asserts what any correct hub must give (convergence, no echo, no
  duplicate, a field edited on one side keeps that side's last value, a field edited on several
  sides ends with one of the values written).
* ``…the_later_edit_wins_whatever_the_faults`` adds the precise oracle, ``tests.hub_model``:
  which of several edits of one field wins, by the documented rules. It is expected to fail
  until the bug in ``test_hub_bugs`` is fixed.

The engine runs in-process against the emulators over loopback HTTP and one real database per
test function; each example starts from emptied tables and reset emulators (``tests.hubs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import example as also
from hypothesis import strategies as st

from reconciler.emulators.airtable import AirtableEmulator
from reconciler.emulators.twenty import TwentyEmulator
from reconciler.model import FieldSpec, Merge, canonical, to_db, to_wire, union
from reconciler.report import RunReport
from tests.helpers import install_fault
from tests.hub_model import LOCAL, Copy, HubModel, RepModel
from tests.hubs import AT, HubWorld, M, hub_world

AIRTABLE, TWENTY = "airtable", "twenty"
REMOTE_OF = {AT: AIRTABLE, M: TWENTY}
SHARED = ("name", "total_xp", "current_rank")  # mapped by both remotes
TWENTY_ONLY = ("closed_deals", "completed_modules")  # a number, and a union array
CHOICES: dict[str, list[Any]] = {
    "name": [None, "r1", "r2", "r3"],
    "total_xp": [None, 0, 5, 12.5],
    "current_rank": [None, "E-1", "E-2", "E-3"],
    "closed_deals": [None, 0, 3],
    "completed_modules": [None, [], ["m1"], ["m2"], ["m1", "m2"]],
}
SIDES = (AIRTABLE, TWENTY, LOCAL)
TICK = timedelta(seconds=2)  # wider than a Date header's half-second uncertainty, both ways
# Faults: bursts (at most 3, within the retries) of 503s, 429s, connections dropped before an
# answer and connections cut halfway through one (the request took effect: a retried write is
# sent twice), and outages of reads or writes that outlast the retries.
FAULT_KINDS = ("none", "burst503", "burst429", "drop", "cut", "pull_outage", "push_outage")
WRITE_METHOD = {AIRTABLE: "PATCH", TWENTY: "POST"}


# -- scenarios -------------------------------------------------------------------------------------


Scenario = tuple[int, tuple[str, str], list[Any], tuple[int, int]]
Scenarios = st.SearchStrategy[Scenario]


def _columns(side: str) -> tuple[str, ...]:
    return SHARED if side == AIRTABLE else SHARED + TWENTY_ONLY


@st.composite
def _same_field(draw: st.DrawFn) -> tuple[Any, ...]:
    """One field of one rep edited on one, two or three sides in turn (later side, later
    time): ``("edit", rep index, ((side, column, value), …))``."""
    sides = draw(st.lists(st.sampled_from(SIDES), min_size=1, max_size=3, unique=True))
    column = draw(st.sampled_from(SHARED if AIRTABLE in sides else SHARED + TWENTY_ONLY))
    writes = tuple((side, column, draw(st.sampled_from(CHOICES[column]))) for side in sides)
    return ("edit", draw(st.integers(0, 9)), writes)


@st.composite
def _any_fields(draw: st.DrawFn) -> tuple[Any, ...]:
    """Two or three edits of one rep, each on any side to any field that side maps: a field
    edited on one side makes the whole record newer against another side's edit of another
    field (record-level times)."""
    writes = []
    for side in draw(st.lists(st.sampled_from(SIDES), min_size=2, max_size=3)):
        column = draw(st.sampled_from(_columns(side)))
        writes.append((side, column, draw(st.sampled_from(CHOICES[column]))))
    return ("edit", draw(st.integers(0, 9)), tuple(writes))


def _fault(kinds: tuple[str, ...]) -> st.SearchStrategy[tuple[str, int, Any]]:
    return st.tuples(
        st.sampled_from(kinds), st.integers(1, 3), st.sampled_from([None, "GET", "write"])
    )


def scenarios(airtable_faults: tuple[str, ...], twenty_faults: tuple[str, ...]) -> Scenarios:
    """(reps, mapping order, steps, clock skews): edits interleaved with runs under faults of
    these kinds, about two edit steps for every run."""
    run = st.tuples(st.just("run"), _fault(airtable_faults), _fault(twenty_faults))
    return st.tuples(
        st.integers(1, 3),
        st.sampled_from([(M, AT), (AT, M)]),  # whose stage 1 comes first
        st.lists(st.one_of(_same_field(), _any_fields(), run), min_size=1, max_size=10),
        st.tuples(SKEW, SKEW),  # Airtable's and Twenty's clocks against this host's
    )


# A remote's clock off by this much: the engine reads it from the Date header and compares
# (and dates rows) on the database's clock. Every explicit edit is stamped on its side's clock.
SKEW = st.sampled_from([0, 0, 90, -150])  # seconds


# -- one example -----------------------------------------------------------------------------------


@dataclass
class Rep:
    """Where a rep lives on each side."""

    model: RepModel
    airtable_id: str
    twenty_id: str


class Example:
    """One example: the reps on three sides, the model, and the actions that keep reality and
    model in step."""

    def __init__(
        self, world: HubWorld, reps: int, order: tuple[str, str], skews: tuple[int, int]
    ) -> None:
        self.world = world
        self.order = order
        self.skew = {
            AIRTABLE: timedelta(seconds=skews[0]),
            TWENTY: timedelta(seconds=skews[1]),
            LOCAL: timedelta(0),  # the database's clock is this host's
        }
        world.airtable.clock.skew = self.skew[AIRTABLE]
        world.twenty.clock.skew = self.skew[TWENTY]
        self.base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=15)
        self.clock = 0
        self.specs = {
            AIRTABLE: tuple(world.mapping(AT).field(c) for c in SHARED),
            TWENTY: tuple(world.mapping(M).field(c) for c in SHARED + TWENTY_ONLY),
        }
        self.model = HubModel(self.specs)
        self.sides: Sides | None = None  # what the three sides hold after the clean run
        self.reps = [self._seed(i) for i in range(reps)]

    def at(self) -> tuple[int, datetime]:
        """The next explicit edit time (model time and wall time)."""
        self.clock += 1
        return self.clock, self.base + self.clock * TICK

    def _seed(self, i: int) -> Rep:
        """A rep with the same values on all three sides, linked, as a first run leaves it."""
        values = {c: CHOICES[c][(i + 1) % len(CHOICES[c])] for c in SHARED + TWENTY_ONLY}
        member = f"wm-{i}"
        tw_time, tw_at = self.at()
        tid = str(
            self.world.twenty.create(
                {**_wire(self.specs[TWENTY], values), "workspaceMemberId": member},
                updated_at=tw_at + self.skew[TWENTY],
            )["id"]
        )
        at_time, at_at = self.at()
        aid = str(
            self.world.airtable.create(
                "Reps",
                {**_wire(self.specs[AIRTABLE], values), "Workspace Member": member},
                modified_at=at_at + self.skew[AIRTABLE],
            )["id"]
        )
        local_time, local_at = self.at()
        table = self.world.table
        row = {c: to_db(self.world.mapping(M).field(c), v) for c, v in values.items()}
        with self.world.db.begin() as conn:
            local_id = conn.execute(
                sa.insert(table)
                .values(
                    workspace_member_id=member,
                    twenty_id=tid,
                    airtable_rep_id=aid,
                    updated_at=local_at,
                    **row,
                )
                .returning(table.c.id)
            ).scalar_one()
        copies = {
            AIRTABLE: Copy(_pick(values, SHARED), _pick(values, SHARED), at_time),
            TWENTY: Copy(dict(values), dict(values), tw_time),
        }
        model = RepModel(int(local_id), dict(values), local_time, copies)
        self.model.reps.append(model)
        return Rep(model, aid, tid)

    # -- edits ---------------------------------------------------------------------------------

    def apply(self, step: tuple[Any, ...]) -> None:
        """Perform one generated edit step for real and in the model."""
        _, index, writes = step
        rep = self.reps[index % len(self.reps)]
        for side, column, value in writes:
            tick, moment = self.at()
            moment += self.skew[side]  # the same instant, on that side's clock
            if side == LOCAL:
                spec = self.world.mapping(M).field(column)
                table = self.world.table
                with self.world.db.begin() as conn:
                    conn.execute(
                        sa.update(table)
                        .where(table.c.id == rep.model.local_id)
                        .values({column: to_db(spec, value), "updated_at": moment})
                    )
            elif side == AIRTABLE:
                wire = _wire((self.world.mapping(AT).field(column),), {column: value})
                self.world.airtable.update("Reps", rep.airtable_id, wire, modified_at=moment)
            else:
                wire = _wire((self.world.mapping(M).field(column),), {column: value})
                self.world.twenty.update(rep.twenty_id, wire, updated_at=moment)
            self.model.edit(rep.model, side, column, value, tick)

    # -- runs ----------------------------------------------------------------------------------

    def run_with_faults(self, faults: dict[str, tuple[str, int, Any]]) -> RunReport:
        """Install the faults, run, clear them; advance the model by what got through."""
        ems = {AIRTABLE: self.world.airtable, TWENTY: self.world.twenty}
        outcomes = {
            name: install_fault(ems[name], WRITE_METHOD[name], fault)
            for name, fault in faults.items()
        }
        report = self.world.run(self.order)
        for em in ems.values():
            em.faults.clear()
        assert report.fatal is None, report.to_dict()  # faults stop mappings, never the run
        for result in report.mappings:
            pull_ok, push_ok = outcomes[REMOTE_OF[result.name]]
            # An outage of writes fails the mapping only if it had something to send.
            if not pull_ok or push_ok:
                assert result.failed == (not pull_ok), report.to_dict()
        self.model.run([REMOTE_OF[m] for m in self.order], outcomes)
        return report

    def clean_run(self) -> RunReport:
        """A run without faults."""
        report = self.run_with_faults({AIRTABLE: ("none", 1, None), TWENTY: ("none", 1, None)})
        assert report.exit_code == 0, report.to_dict()
        return report


def _wire(specs: tuple[FieldSpec, ...], values: dict[str, Any]) -> dict[str, Any]:
    return {s.remote: to_wire(s, values[s.column]) for s in specs}


def _pick(values: dict[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
    return {c: values[c] for c in columns}


# -- reading the three sides -----------------------------------------------------------------------


@dataclass
class Sides:
    """What each side holds now, canonical, for the exercised columns; plus the links."""

    local: dict[int, dict[str, Any]]  # local id -> values
    updated_at: dict[int, datetime]
    links: dict[int, tuple[str | None, str | None]]  # local id -> (Airtable id, Twenty id)
    airtable: dict[str, dict[str, Any]]  # record id -> values
    twenty: dict[str, dict[str, Any]]

    @classmethod
    def read(cls, world: HubWorld, specs: dict[str, tuple[FieldSpec, ...]]) -> Sides:
        """Read all three sides (every mapped field when ``specs`` names them all)."""
        table = world.table
        with world.db.connect() as conn:
            found = conn.execute(sa.text("SELECT * FROM rep_progressions")).mappings().all()
        local_specs = {s.column: s for group in specs.values() for s in group}
        assert set(local_specs) <= set(table.c.keys())
        return cls(
            {
                r["id"]: {c: canonical(s, r[c], from_remote=False) for c, s in local_specs.items()}
                for r in found
            },
            {r["id"]: r["updated_at"] for r in found},
            {r["id"]: (r["airtable_rep_id"], _text(r["twenty_id"])) for r in found},
            {
                r["id"]: {
                    s.column: canonical(s, r["fields"].get(s.remote), from_remote=True)
                    for s in specs[AIRTABLE]
                }
                for r in world.airtable.records("Reps")
            },
            {
                str(r["id"]): {
                    s.column: canonical(s, r.get(s.remote), from_remote=True) for s in specs[TWENTY]
                }
                for r in world.twenty.records()
            },
        )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _every_field(world: HubWorld) -> dict[str, tuple[FieldSpec, ...]]:
    return {AIRTABLE: world.mapping(AT).fields, TWENTY: world.mapping(M).fields}


def _assert_no_duplicates(example: Example, sides: Sides) -> None:
    """Exactly one row and one record per remote for each rep, linked as seeded."""
    n = len(example.reps)
    assert len(sides.local) == n, "a local row appeared or vanished"
    assert len(sides.airtable) == n, "an Airtable record appeared or vanished"
    assert len(sides.twenty) == n, "a Twenty record is duplicated or missing"
    for rep in example.reps:
        assert sides.links[rep.model.local_id] == (rep.airtable_id, rep.twenty_id), "relinked"


def _assert_converged(example: Example, sides: Sides) -> None:
    """Every mapped field is equal on the row and on each of its records."""
    for rep in example.reps:
        local = sides.local[rep.model.local_id]
        for name, held in ((AIRTABLE, sides.airtable), (TWENTY, sides.twenty)):
            remote = held[rep.airtable_id if name == AIRTABLE else rep.twenty_id]
            differ = {c: (local[c], v) for c, v in remote.items() if local[c] != v}
            assert not differ, (f"rep {rep.model.local_id}: local vs {name}", differ)


def _assert_no_lost_change(example: Example, sides: Sides) -> None:
    """A field edited on one side only ends with that side's last value; a field edited on
    several sides ends with one of the values written to it (a union field: with none but
    those)."""
    for rep in example.reps:
        local = sides.local[rep.model.local_id]
        for column in SHARED + TWENTY_ONLY:
            written = rep.model.written(column)
            if not written:
                continue
            where = rep.model.sides(column)
            final = local[column]
            context = (rep.model.local_id, column, [e for e in rep.model.edits])
            if len(where) == 1:
                assert final == written[-1], ("a one-sided edit was lost", *context)
            elif example.world.mapping(M).field(column).merge is Merge.UNION:
                every = union(None, [x for v in written for x in (v or [])])
                assert all(x in every for x in final or []), ("a value nobody wrote", *context)
            else:
                assert final in written, ("a value nobody wrote", *context)


def _assert_model(example: Example) -> None:
    """Every side holds what the documented rules give: on a field edited on several sides,
    the newer side's value, record against row, with pulled values dated by their remote
    change (``tests.hub_model``)."""
    for rep in example.reps:
        model = rep.model
        for name, copy in model.copies.items():
            assert copy.values == {c: model.local[c] for c in copy.values}, (
                "the model itself did not converge",
                name,
            )
        assert example.sides is not None
        local = example.sides.local[model.local_id]
        expected = {c: model.local[c] for c in SHARED + TWENTY_ONLY}
        actual = {c: local[c] for c in SHARED + TWENTY_ONLY}
        assert actual == expected, ("not the later edit", model.local_id, model.edits)


# -- the property ----------------------------------------------------------------------------------


@pytest.fixture
def world(
    airtable: AirtableEmulator,
    twenty: TwentyEmulator,
    db: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> HubWorld:
    """The hub on both emulators and one database, for every example of a test."""
    return hub_world(airtable, twenty, db, monkeypatch, tmp_path)


def check(world: HubWorld, scenario: Scenario) -> Example:
    """Play one scenario, then one clean run, and assert the properties every hub must meet:
    no duplicate, the three sides agree on every mapped field, no edit lost (a field edited on
    one side ends with that side's last value, one edited on several with one of the values
    written), and one more run writes nothing anywhere and changes no row. Returns the example,
    whose model holds what the documented rules give."""
    reps, order, steps, skews = scenario
    world.reset()
    example = Example(world, reps, order, skews)
    first = world.run(order)
    assert first.exit_code == 0, first.to_dict()
    assert world.writes() == 0, "identical sides: the first run has nothing to write"
    for step in steps:
        if step[0] == "edit":
            example.apply(step)
        else:
            example.run_with_faults({AIRTABLE: step[1], TWENTY: step[2]})

    example.clean_run()
    for rule in ("remote newer", "local newer", "union"):
        event(f"contests decided by {rule}: {min(example.model.decided[rule], 2)}")

    sides = Sides.read(world, example.specs)
    _assert_no_duplicates(example, sides)
    _assert_converged(example, Sides.read(world, _every_field(world)))
    _assert_no_lost_change(example, sides)
    world.reset_logs()
    again = world.run(order)
    assert again.exit_code == 0, again.to_dict()
    assert world.writes() == 0, "the run after a clean run wrote to a remote"
    assert Sides.read(world, example.specs).updated_at == sides.updated_at, "rows changed"
    example.sides = sides
    return example


SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.slow
@settings(SETTINGS, max_examples=80)
@given(scenarios(FAULT_KINDS, FAULT_KINDS))
def test_hub_convergence__random_edits_on_three_sides_and_faults_converge_without_loss(
    world: HubWorld, scenario: Scenario
) -> None:
    """Whatever the interleaving of edits on three sides and faults on either remote: after
    one clean run the three sides agree on every mapped field, nothing is duplicated, no edit
    is lost, and one more run writes nothing anywhere and changes no row."""
    check(world, scenario)


# Minimised by hand from the first failure the property below found: one run after three edits,
# Twenty's edit of current_rank, a local edit of another field, then Airtable's edit of
# current_rank, the latest of all, which loses (test_hub_bugs.py, the same in the CLI).
LATER_AIRTABLE_EDIT_LOSES = (
    1,
    (M, AT),
    [
        (
            "edit",
            0,
            (
                (TWENTY, "current_rank", "E-2"),
                (LOCAL, "name", None),
                (AIRTABLE, "current_rank", "E-3"),
            ),
        )
    ],
    (0, 0),
)


@pytest.mark.slow
@settings(SETTINGS, max_examples=40)
@also(LATER_AIRTABLE_EDIT_LOSES)
@given(scenarios(FAULT_KINDS, FAULT_KINDS))
def test_hub_convergence__the_later_edit_wins_whatever_the_faults(
    world: HubWorld, scenario: Scenario
) -> None:
    """As above, with the precise oracle: every side holds what the documented rules give
    (``tests.hub_model``), so where one field was edited on several sides, the side whose record
    changed later wins.
    """
    _assert_model(check(world, scenario))
