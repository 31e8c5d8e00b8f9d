"""Pure planning: ``plan_pull`` and ``plan_push`` as case tables, and hypothesis properties of the
per-field merge (no database, no server)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.engine.plan import Outcome, Rule, plan_pull, plan_push
from reconciler.model import REP_PROGRESSIONS, Direction, FieldSpec, Kind, Mapping, Merge, union
from reconciler.records import LocalRow, RemoteRecord, SyncState, Values

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
EARLIER, LATER = T0 - timedelta(minutes=1), T0 + timedelta(minutes=1)

# A small mapping with one field of each interesting shape.
MAP = Mapping(
    name="things",
    remote="twenty",
    remote_table="things",
    local_table="things",
    key_column="remote_id",
    create_remote=True,
    modified_field="updatedAt",
    fields=(
        FieldSpec("title", "title"),  # pull only
        FieldSpec("note", "note", Kind.TEXT, Direction.BOTH),
        FieldSpec("score", "score", Kind.NUMBER, Direction.BOTH),
        FieldSpec("tags", "tags", Kind.JSON, Direction.BOTH, Merge.UNION, json_as_text=True),
    ),
)
BASE: Values = {"title": "t0", "note": "n0", "score": 1, "tags": ["a"]}
RID = "00000000-0000-4000-8000-000000000001"


def remote(values: Values | None = None, at: datetime = T0, **changes: Any) -> RemoteRecord:
    """A remote record: ``BASE`` (or ``values``) with ``changes``, modified at ``at``."""
    return RemoteRecord(RID, at, {**(values or BASE), **changes})


def local(
    values: Values | None = None,
    at: datetime = T0,
    *,
    shadow: Values | None = None,
    synced: bool = True,
    remote_id: str | None = RID,
    remote_at: datetime = EARLIER,
    **changes: Any,
) -> LocalRow:
    """A local row: ``BASE`` (or ``values``) with ``changes``, updated at ``at``.

    With ``synced`` it carries a sync state whose shadow is ``shadow`` (default ``BASE``) and
    whose remote modified time is ``remote_at``.
    """
    state = (
        SyncState(remote_id, remote_at, EARLIER, dict(BASE if shadow is None else shadow))
        if synced
        else None
    )
    return LocalRow(1, remote_id, at, {**(values or BASE), **changes}, state)


# -- plan_pull: case table ------------------------------------------------------------------------

PULL_CASES = [
    pytest.param(
        remote(note="r"),
        local(),
        Outcome.UPDATED,
        {"note": "r"},
        False,
        False,
        id="remote_only_change_is_applied",
    ),
    pytest.param(
        remote(),
        local(note="l"),
        Outcome.UNCHANGED,
        {},
        False,
        True,
        id="local_only_change_is_kept_and_pending",
    ),
    pytest.param(
        remote(note="r", at=LATER),
        local(note="l", at=T0),
        Outcome.UPDATED,
        {"note": "r"},
        True,
        False,
        id="contested_field_remote_newer_wins",
    ),
    pytest.param(
        remote(note="r", at=EARLIER),
        local(note="l", at=T0),
        Outcome.SKIPPED_LOCAL_NEWER,
        {},
        True,
        True,
        id="contested_field_local_newer_is_skipped",
    ),
    pytest.param(
        remote(note="r", at=T0),
        local(note="l", at=T0),
        Outcome.SKIPPED_LOCAL_NEWER,
        {},
        True,
        True,
        id="contested_field_equal_times_keeps_local",
    ),
    pytest.param(
        remote(note="same", at=LATER),
        local(note="same"),
        Outcome.UNCHANGED,
        {},
        False,
        False,
        id="both_changed_to_the_same_value_agree",
    ),
    pytest.param(
        remote(tags=["a", "r"], at=EARLIER),
        local(tags=["a", "l"], at=T0),
        Outcome.UPDATED,
        {"tags": ["a", "l", "r"]},
        True,
        True,
        id="union_field_edited_on_both_sides_takes_union",
    ),
    pytest.param(
        remote(tags=["l"], at=EARLIER),
        local(tags=["a", "l"], at=T0),
        Outcome.UNCHANGED,
        {},
        True,
        True,
        id="union_field_whose_union_is_the_local_value_is_unchanged",
    ),
    pytest.param(
        remote(note="r", at=LATER),
        local(score=5),
        Outcome.UPDATED,
        {"note": "r"},
        False,
        True,
        id="different_fields_on_each_side_both_survive",
    ),
    pytest.param(
        remote(title="r", at=LATER),
        local(),
        Outcome.UPDATED,
        {"title": "r"},
        False,
        False,
        id="pull_only_field_changed_remotely_is_applied",
    ),
    pytest.param(
        remote(),
        local(title="l"),
        Outcome.UNCHANGED,
        {},
        False,
        False,
        id="pull_only_field_changed_locally_is_kept_and_never_pending",
    ),
    pytest.param(
        remote(note="r", at=LATER),
        local(note="l", synced=False),
        Outcome.UPDATED,
        {"note": "r"},
        True,
        False,
        id="never_synced_row_differing_field_is_contested",
    ),
    pytest.param(
        remote(note="r", at=EARLIER),
        local(note=None, synced=False),
        Outcome.UPDATED,
        {"note": "r"},
        False,
        False,
        id="never_synced_row_empty_field_takes_the_remote_value",
    ),
    pytest.param(
        remote(note=None, at=LATER),
        local(note="l", synced=False),
        Outcome.UNCHANGED,
        {},
        False,
        True,
        id="never_synced_row_value_stays_over_an_empty_remote_cell",
    ),
    pytest.param(
        remote(note="r", at=EARLIER),
        local(note=None, shadow={c: v for c, v in BASE.items() if c != "note"}),
        Outcome.UPDATED,
        {"note": "r"},
        False,
        False,
        id="column_newly_mapped_empty_locally_takes_the_remote_value",
    ),
    pytest.param(
        remote(note=None, at=LATER),
        local(),
        Outcome.UPDATED,
        {"note": None},
        False,
        False,
        id="remote_clearing_a_cell_clears_it_locally",
    ),
]


@pytest.mark.parametrize(("rem", "loc", "outcome", "writes", "conflict", "pending"), PULL_CASES)
def test_plan_pull__case_table(
    rem: RemoteRecord,
    loc: LocalRow,
    outcome: Outcome,
    writes: Values,
    conflict: bool,
    pending: bool,
) -> None:
    """Each row: the outcome, the local writes, whether it was a conflict and still pending."""
    plan = plan_pull(MAP, rem, loc)
    assert plan.outcome is outcome
    assert plan.writes == writes
    assert plan.conflict is conflict
    assert plan.pending is pending
    assert plan.shadow == rem.values


def test_plan_pull__a_pair_linked_by_natural_key_contests_every_differing_field() -> None:
    """The contract's first contact: "a conflict with no shadow", the newer side winning each
    differing field, an empty one too (a pair an application linked itself keeps the record's
    value instead: ``never_synced_row_empty_field_takes_the_remote_value``)."""
    rem, row = remote(note="r", at=EARLIER), local(note=None, synced=False)
    plan = plan_pull(MAP, rem, row, matched=True)
    assert (plan.outcome, plan.writes, plan.conflict, plan.pending) == (
        Outcome.SKIPPED_LOCAL_NEWER,
        {},
        True,
        True,
    )
    assert plan.matched
    older = plan_pull(
        MAP, rem, local(note=None, synced=False, at=EARLIER - timedelta(1)), matched=True
    )
    assert (older.writes, older.conflict) == ({"note": "r"}, True)


def test_plan_pull__new_record_inserts_every_pulled_field() -> None:
    """A remote record with no local row is inserted with every pull-capable field."""
    plan = plan_pull(MAP, remote(), None)
    assert plan.outcome is Outcome.INSERTED
    assert plan.writes == BASE
    assert plan.changes == []  # the change log records an insert's writes as its values


FLAGGED = replace(
    MAP, fields=(*MAP.fields, FieldSpec("done", "done", Kind.BOOLEAN, Direction.BOTH))
)


@pytest.mark.parametrize(
    ("remote_done", "local_done", "pulled", "sent"),
    [
        pytest.param(True, False, {"done": True}, {}, id="a_ticked_record_ticks_the_row"),
        pytest.param(False, True, {}, {"done": True}, id="a_ticked_row_ticks_the_record"),
        pytest.param(None, False, {}, {}, id="both_empty_is_no_conflict"),
    ],
)
def test_plans__with_no_base_false_is_an_empty_cell(
    remote_done: bool | None, local_done: bool, pulled: Values, sent: Values
) -> None:
    """An unticked checkbox is Airtable's empty cell: with no history it never overrides the
    other side's tick, even from the newer side (the local row, in the pull and the push)."""
    values = {**BASE, "done": local_done}
    rem = remote({**BASE, "done": remote_done}, at=EARLIER)
    pull = plan_pull(FLAGGED, rem, local(values, synced=False))
    assert (pull.writes, pull.conflict) == (pulled, False)
    push = plan_push(FLAGGED, local(values, synced=False, at=LATER), rem)
    assert push.send == sent


def test_plan_pull__logs_the_rule_of_each_change() -> None:
    """The change log names why each field took its value."""
    plan = plan_pull(MAP, remote(note="r", at=LATER), local(note="l", score=9))
    rules = {c.column: c.rule for c in plan.changes}
    assert rules == {"note": Rule.REMOTE_NEWER, "score": Rule.LOCAL_ONLY}


def test_plan_pull__a_push_only_field_changed_remotely_keeps_the_local_value() -> None:
    """The remote's edit of a field that only pushes is not written locally: the local value
    stays, pending, to be sent over it."""
    mapping = replace(
        MAP, fields=(*MAP.fields, FieldSpec("owner", "owner", direction=Direction.PUSH))
    )
    values = {**BASE, "owner": "o0"}
    plan = plan_pull(mapping, remote(values, at=LATER, owner="r"), local(values, shadow=values))
    assert plan.outcome is Outcome.UNCHANGED
    assert plan.writes == {}
    assert plan.pending is True


# -- plan_push: case table ------------------------------------------------------------------------

PUSH_CASES = [
    pytest.param(
        local(note="l"),
        None,
        Outcome.UPDATED,
        {"note": "l"},
        id="local_change_is_sent_without_reading_the_remote",
    ),
    pytest.param(
        local(note="l", score=3, title="local title"),
        remote(at=EARLIER),
        Outcome.UPDATED,
        {"note": "l", "score": 3},
        id="only_push_capable_changed_fields_are_sent",
    ),
    pytest.param(
        local(title="local title"),
        remote(at=EARLIER),
        Outcome.UNCHANGED,
        {},
        id="pull_only_change_sends_nothing",
    ),
    pytest.param(
        local(note="l", at=T0),
        remote(note="r", at=LATER),
        Outcome.SKIPPED_REMOTE_NEWER,
        {},
        id="remote_changed_since_sync_and_newer_is_skipped",
    ),
    pytest.param(
        local(note="l", at=T0),
        remote(note="r", at=EARLIER - timedelta(seconds=1)),
        Outcome.UPDATED,
        {"note": "l"},
        id="remote_changed_since_sync_but_older_is_overwritten",
    ),
    pytest.param(
        local(note="l", at=T0),
        remote(at=LATER),
        Outcome.UPDATED,
        {"note": "l"},
        id="remote_touched_without_value_change_does_not_block",
    ),
    pytest.param(
        local(tags=["a", "l"], at=LATER),
        remote(tags=["a", "r"], at=T0),
        Outcome.SKIPPED_REMOTE_NEWER,
        {},
        id="contested_union_field_waits_for_the_pull_to_merge",
    ),
    pytest.param(
        local(note="l", remote_id=None, synced=False),
        None,
        Outcome.INSERTED,
        {"note": "l", "score": 1, "tags": ["a"]},
        id="never_created_row_sends_every_non_empty_push_field",
    ),
    pytest.param(
        local(note=None, score=None, tags=None, remote_id=None, synced=False),
        None,
        Outcome.UNCHANGED,
        {},
        id="never_created_row_without_values_sends_nothing",
    ),
    pytest.param(
        local(note=None, score=0, tags=[], remote_id=None, synced=False),
        None,
        Outcome.INSERTED,
        {"score": 0, "tags": []},
        id="never_created_row_sends_zero_and_empty_list_values",
    ),
    pytest.param(
        local(note="l", synced=False),
        remote(note="r", at=EARLIER),
        Outcome.UPDATED,
        {"note": "l"},
        id="linked_row_never_synced_uses_the_remote_as_base",
    ),
    pytest.param(
        local(note="l", synced=False, at=EARLIER),
        remote(note="r", at=T0),
        Outcome.SKIPPED_REMOTE_NEWER,
        {},
        id="linked_row_never_synced_with_newer_remote_is_skipped",
    ),
    pytest.param(
        local(note=None, synced=False, at=LATER),
        remote(note="r", at=EARLIER),
        Outcome.UNCHANGED,
        {},
        id="linked_row_never_synced_sends_no_empty_value",
    ),
]


@pytest.mark.parametrize(("loc", "rem", "outcome", "send"), PUSH_CASES)
def test_plan_push__case_table(
    loc: LocalRow, rem: RemoteRecord | None, outcome: Outcome, send: Values
) -> None:
    """Each row: the outcome and exactly the fields sent."""
    plan = plan_push(MAP, loc, rem)
    assert plan.outcome is outcome
    assert plan.send == send


def test_plan_push__remote_read_at_the_synced_time_counts_as_unchanged() -> None:
    """A remote whose modified time equals the synced one never blocks a push."""
    row = local(note="l", at=EARLIER - timedelta(minutes=5), remote_at=LATER)
    plan = plan_push(MAP, row, remote(note="other", at=LATER))
    assert plan.outcome is Outcome.UPDATED and plan.send == {"note": "l"}


# -- properties -----------------------------------------------------------------------------------

TEXTS = st.one_of(st.none(), st.sampled_from(["a", "b", "c"]))
NUMBERS = st.one_of(st.none(), st.integers(0, 3))
TAGS = st.one_of(st.none(), st.lists(st.sampled_from(["x", "y", "z", "w"]), unique=True))
TIMES = st.integers(-3, 3).map(lambda m: T0 + timedelta(minutes=m))
VALUES = st.fixed_dictionaries({"title": TEXTS, "note": TEXTS, "score": NUMBERS, "tags": TAGS})


@st.composite
def sides(draw: st.DrawFn) -> tuple[RemoteRecord, LocalRow, Values]:
    """A synced row and its remote: both start from one shadow, then each side edits freely."""
    shadow = draw(VALUES)
    rem_values = {k: draw(st.sampled_from([v, draw(VALUES)[k]])) for k, v in shadow.items()}
    loc_values = {k: draw(st.sampled_from([v, draw(VALUES)[k]])) for k, v in shadow.items()}
    rem = RemoteRecord(RID, draw(TIMES), rem_values)
    row = LocalRow(
        1, RID, draw(TIMES), loc_values, SyncState(RID, T0 - timedelta(hours=1), None, shadow)
    )
    return rem, row, shadow


def _final(plan_writes: Values, row: LocalRow) -> Values:
    return {**row.values, **plan_writes}


@settings(max_examples=400, derandomize=True)
@given(sides())
def test_plan_pull__a_field_changed_on_one_side_only_takes_that_sides_value(
    case: tuple[RemoteRecord, LocalRow, Values],
) -> None:
    """Changed remotely only: the remote value; changed locally only: the local value."""
    rem, row, shadow = case
    final = _final(plan_pull(MAP, rem, row).writes, row)
    for col, base in shadow.items():
        remote_changed, local_changed = rem.values[col] != base, row.values[col] != base
        if remote_changed and not local_changed:
            assert final[col] == rem.values[col], col
        if local_changed and not remote_changed:
            assert final[col] == row.values[col], col


@settings(max_examples=400, derandomize=True)
@given(sides())
def test_plan_pull__contested_fields_follow_the_newer_side_or_the_union(
    case: tuple[RemoteRecord, LocalRow, Values],
) -> None:
    """Changed on both sides to different values: newer wins; union fields take the union."""
    rem, row, shadow = case
    plan = plan_pull(MAP, rem, row)
    final = _final(plan.writes, row)
    contested = [
        c
        for c, base in shadow.items()
        if rem.values[c] != base and row.values[c] != base and rem.values[c] != row.values[c]
    ]
    assert plan.conflict is bool(contested)
    for col in contested:
        if col == "tags":
            assert final[col] == union(row.values[col], rem.values[col])
        elif rem.modified_at > row.updated_at:
            assert final[col] == rem.values[col]
        else:
            assert final[col] == row.values[col]


@settings(max_examples=400, derandomize=True)
@given(sides())
def test_plan_pull__pending_iff_a_push_capable_value_differs_from_the_remote(
    case: tuple[RemoteRecord, LocalRow, Values],
) -> None:
    """After applying the plan, pending is true exactly when stage 2 has something to send."""
    rem, row, _ = case
    plan = plan_pull(MAP, rem, row)
    final = _final(plan.writes, row)
    differs = any(final[f.column] != rem.values[f.column] for f in MAP.push_fields)
    assert plan.pending is differs


@settings(max_examples=300, derandomize=True)
@given(sides())
def test_plan_pull_then_push__sends_exactly_the_pending_fields(
    case: tuple[RemoteRecord, LocalRow, Values],
) -> None:
    """A pull followed by a push (nothing changed in between) sends what pending promised,
    and is never refused as remote-newer: what the pull brought in does not block the push."""
    rem, row, _ = case
    plan = plan_pull(MAP, rem, row)
    applied = LocalRow(
        1,
        RID,
        max(row.updated_at, rem.modified_at) + timedelta(seconds=1),
        _final(plan.writes, row),
        SyncState(RID, rem.modified_at, None, plan.shadow, plan.pending),
    )
    push = plan_push(MAP, applied, rem)
    expected = {
        f.column: applied.values[f.column]
        for f in MAP.push_fields
        if applied.values[f.column] != rem.values[f.column]
    }
    assert push.send == expected
    assert push.outcome is (Outcome.UPDATED if expected else Outcome.UNCHANGED)


@settings(max_examples=200, derandomize=True)
@given(sides())
def test_plan_pull__is_idempotent(case: tuple[RemoteRecord, LocalRow, Values]) -> None:
    """Planning again against the applied result writes nothing (a re-read page is a no-op)."""
    rem, row, _ = case
    plan = plan_pull(MAP, rem, row)
    applied = LocalRow(
        1,
        RID,
        row.updated_at,
        _final(plan.writes, row),
        SyncState(RID, rem.modified_at, None, plan.shadow, plan.pending),
    )
    again = plan_pull(MAP, rem, applied)
    assert again.writes == {}
    assert again.conflict is False


ITEMS = st.lists(st.one_of(st.text(max_size=3), st.integers(0, 5)), max_size=6)


@settings(max_examples=300, derandomize=True)
@given(ITEMS, ITEMS)
def test_union__is_commutative_as_a_set(first: list[Any], second: list[Any]) -> None:
    """Either order gives the same items, each once, keeping the first side's order."""
    one, two = union(first, second), union(second, first)
    assert sorted(map(repr, one)) == sorted(map(repr, two))
    assert len(one) == len({repr(i) for i in one})
    assert set(map(repr, one)) == set(map(repr, first)) | set(map(repr, second))
    assert one[: len(dict.fromkeys(map(repr, first)))] == list({repr(i): i for i in first}.values())


@settings(max_examples=300, derandomize=True)
@given(ITEMS, ITEMS)
def test_union__is_idempotent(first: list[Any], second: list[Any]) -> None:
    """A union merged again with either side is itself."""
    merged = union(first, second)
    assert union(merged, first) == merged
    assert union(merged, second) == merged
    assert union(merged, merged) == merged


def test_union__treats_none_as_empty_and_scalars_as_one_item() -> None:
    """Empty cells and single values take part in a union sensibly."""
    assert union(None, None) == []
    assert union(None, ["a"]) == ["a"]
    assert union("a", ["b", "a"]) == ["a", "b"]


def test_builtin_rep_progressions__array_fields_merge_by_union() -> None:
    """The built-in Twenty mapping merges its four set-like arrays by union, nothing else."""
    unions = {f.column for f in REP_PROGRESSIONS.fields if f.merge is Merge.UNION}
    assert unions == {"completed_modules", "certifications", "defeated_bosses", "passed_exams"}


def test_plan_push__a_skipped_row_sends_nothing_and_lists_what_it_holds_back() -> None:
    row = local(note="l", at=EARLIER)
    plan = plan_push(MAP, row, remote(note="r", at=LATER))
    assert plan.outcome is Outcome.SKIPPED_REMOTE_NEWER and plan.send == {}
    assert [(c.column, c.new) for c in plan.changes] == [("note", "l")]
