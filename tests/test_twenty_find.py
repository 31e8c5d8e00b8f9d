"""``find``: Twenty records by natural key, many keys a request, values of any characters.

The emulator's filter parser is stricter in grammar than Twenty's (it refuses what it cannot
read). So every filter the tool sends is also read here by a port of Twenty's own parser
(``api/rest/input-request-parsers/filter-parser-utils/``), which must yield the values asked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from reconciler.config import Secret, TwentyTarget
from reconciler.emulators.twenty import TwentyEmulator
from reconciler.errors import MappingError
from reconciler.model import REP_PROGRESSIONS
from reconciler.remotes import twenty_find
from reconciler.remotes.base import RetryPolicy
from reconciler.remotes.twenty import URL_BUDGET, TwentyRemote
from tests.helpers import CountingPacer, progression_fields

MEMBER = ["workspace_member_id"]
AWKWARD = [
    "a,b",
    "O'Brien",
    'say "hi"',
    "[x]",
    "(y)",
    "a(b",
    "c]d",
    "back\\slash",
    "per%cent",
    "under_score",
    "line\nbreak",
    "ü ñ 漢 🙂",
    "  padded  ",
    "plus+and&amp=eq",
    "x" * 450,
]


@pytest.fixture
def remote(twenty: TwentyEmulator) -> Iterator[TwentyRemote]:
    target = TwentyTarget(Secret(twenty.token), "TWENTY_API_KEY", twenty.url, 1e9)
    client = TwentyRemote(REP_PROGRESSIONS, target, RetryPolicy(sleep=lambda _: None))
    yield client
    client.close()


def _member(em: TwentyEmulator, member: str | None, **fields: Any) -> str:
    return str(em.create({**progression_fields(0), "workspaceMemberId": member, **fields})["id"])


def _found_ids(found: dict[tuple[Any, ...], list[Any]]) -> dict[tuple[Any, ...], list[str]]:
    return {key: sorted(r.id for r in records) for key, records in found.items()}


def _filters(em: TwentyEmulator) -> list[str]:
    return [r.query["filter"][0] for r in em.requests if r.method == "GET"]


def test_find__groups_live_records_by_key(twenty: TwentyEmulator, remote: TwentyRemote) -> None:
    one = _member(twenty, "m-1")
    dup = sorted([_member(twenty, "dup"), _member(twenty, "dup")])
    gone = _member(twenty, "gone")
    twenty.soft_delete(gone)
    _member(twenty, "m-2")

    found = remote.find(MEMBER, [("m-1",), ("dup",), ("gone",), ("nobody",)])

    assert _found_ids(found) == {("m-1",): [one], ("dup",): dup, ("gone",): [], ("nobody",): []}
    (record,) = found[("m-1",)]
    assert record.values["workspace_member_id"] == "m-1" and not record.deleted
    assert len(twenty.requests) == 1


def test_find__none_or_empty_parts_never_match_and_cost_nothing(
    twenty: TwentyEmulator, remote: TwentyRemote
) -> None:
    _member(twenty, None)
    _member(twenty, "")

    found = remote.find(MEMBER, [(None,), ("",)])

    assert found == {(None,): [], ("",): []}
    assert twenty.requests == []


def test_find__1000_keys_in_6_requests_each_within_the_url_budget(
    twenty: TwentyEmulator, remote: TwentyRemote
) -> None:
    """Workspace member ids are UUIDs: 36 characters each, sent bare, and a comma between two
    takes three once URL-encoded."""
    members = [f"{i:08d}-0000-4000-8000-{i:012d}" for i in range(1000)]
    ids = {m: _member(twenty, m) for m in members}

    found = remote.find(MEMBER, [(m,) for m in members])

    assert _found_ids(found) == {(m,): [ids[m]] for m in members}
    gets = [r for r in twenty.requests if r.method == "GET"]
    assert len(gets) == 6
    for request in gets:
        target = f"{request.path}?{urlencode(request.query, doseq=True)}"
        assert len(target) <= URL_BUDGET
    # Bare in the list, the form Twenty's API documentation gives (``id[in]:[uuid1,uuid2]``).
    assert all(f.startswith("workspaceMemberId[in]:[") for f in _filters(twenty))
    assert all('"' not in f for f in _filters(twenty))


def test_find__values_with_commas_quotes_brackets_parentheses_round_trip(
    twenty: TwentyEmulator, remote: TwentyRemote
) -> None:
    """Each key finds its own record, none of the look-alikes a loose pattern also selects."""
    ids = {value: _member(twenty, value) for value in AWKWARD}
    for lookalike in ["OxBrien", "a(b)", "back_slash", "per_cent", "x" * 451, "a,b,c"]:
        _member(twenty, lookalike)

    found = remote.find(MEMBER, [(v,) for v in AWKWARD])

    assert _found_ids(found) == {(v,): [ids[v]] for v in AWKWARD}
    for sent in _filters(twenty):
        for field, operator, value in _twenty_reads(sent):
            assert field == "workspaceMemberId"
            if operator == "in":
                assert set(value) <= set(AWKWARD)
            elif operator == "eq":
                assert value in AWKWARD
            else:
                assert operator == "like" and any(_like(value, v) for v in AWKWARD)


def test_find__several_columns_match_only_the_exact_pairs(
    twenty: TwentyEmulator, remote: TwentyRemote
) -> None:
    both = _member(twenty, "m-1", name="Ann, the first")
    _member(twenty, "m-1", name="Bob")
    _member(twenty, "m-2", name="Ann, the first")
    odd = _member(twenty, "m-(3)", name='say "x"')

    keys = [("m-1", "Ann, the first"), ("m-(3)", 'say "x"'), ("m-2", "Zed")]
    found = remote.find(["workspace_member_id", "name"], keys)

    assert _found_ids(found) == {keys[0]: [both], keys[1]: [odd], keys[2]: []}
    (sent,) = _filters(twenty)
    assert sent.startswith("or(and(workspaceMemberId[eq]:")
    assert {(f, o) for f, o, _ in _twenty_reads(sent)} >= {("name", "eq"), ("name", "like")}


def test_find__number_and_date_time_keys(twenty: TwentyEmulator, remote: TwentyRemote) -> None:
    xp = _member(twenty, "a", totalXp=1500.5)
    _member(twenty, "b", totalXp=1500)
    seen = _member(twenty, "c", lastActivityDate="2026-11-20T09:00:00.250Z")

    by_xp = remote.find(["total_xp"], [(1500.5,)])
    by_day = remote.find(["last_activity_date"], [("2026-11-20T09:00:00.250Z",)])

    assert _found_ids(by_xp) == {(1500.5,): [xp]}
    assert _found_ids(by_day) == {("2026-11-20T09:00:00.250Z",): [seen]}


def test_find__pages_through_more_matches_than_a_page(
    twenty: TwentyEmulator, remote: TwentyRemote
) -> None:
    same = {_member(twenty, "shared") for _ in range(230)}

    found = remote.find(MEMBER, [("shared",)])

    assert {r.id for r in found[("shared",)]} == same
    assert len(twenty.requests) == 2


def test_find__201_keys_in_2_filters_of_at_most_200(
    twenty: TwentyEmulator, remote: TwentyRemote
) -> None:
    """A filter holds at most a page of keys: each key matching one record, its answers fit in
    one page (``limit`` 200)."""
    members = [f"wm-{n}" for n in range(201)]
    ids = {m: _member(twenty, m) for m in members}

    found = remote.find(MEMBER, [(m,) for m in members])

    assert _found_ids(found) == {(m,): [ids[m]] for m in members}
    sizes = [len(value) for sent in _filters(twenty) for _, _, value in _twenty_reads(sent)]
    assert sizes == [200, 1]


def test_find__a_key_longer_than_a_url_is_looked_up_by_its_start(
    twenty: TwentyEmulator, remote: TwentyRemote
) -> None:
    """A like prefix of its first 200 characters keeps the request within the URL budget; only
    the record whose key equals it whole is kept."""
    key = "k" * 20_000
    mine = _member(twenty, key)
    _member(twenty, key[:-1] + "j")

    found = remote.find(MEMBER, [(key,)])

    assert _found_ids(found) == {(key,): [mine]}
    assert _filters(twenty) == [f'workspaceMemberId[like]:"{"k" * 200}%"']
    (request,) = twenty.requests
    assert len(f"{request.path}?{urlencode(request.query, doseq=True)}") <= URL_BUDGET


def test_find__keys_spelled_like_null_or_a_boolean_are_sent_quoted_and_match_their_text(
    twenty: TwentyEmulator, remote: TwentyRemote
) -> None:
    """Twenty's parser keeps a bare word as text, but a reader may take ``null`` or ``true``
    for the literal: such a key goes quoted."""
    words = ["null", "true", "False"]
    ids = {w: _member(twenty, w) for w in words}
    _member(twenty, None)

    found = remote.find(MEMBER, [(w,) for w in words])

    assert _found_ids(found) == {(w,): [ids[w]] for w in words}
    assert _filters(twenty) == ['workspaceMemberId[in]:["null","true","False"]']


def test_find__a_record_selected_by_two_filters_is_found_once(
    twenty: TwentyEmulator, remote: TwentyRemote, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``a(b`` and ``a)b`` are both sent as the pattern ``a_b``, which selects both records."""
    monkeypatch.setattr(twenty_find, "KEYS_PER_REQUEST", 1)
    ids = {v: _member(twenty, v) for v in ["a(b", "a)b"]}

    found = remote.find(MEMBER, [("a(b",), ("a)b",)])

    assert _found_ids(found) == {("a(b",): [ids["a(b"]], ("a)b",): [ids["a)b"]]}
    assert _filters(twenty) == ['workspaceMemberId[like]:"a_b"'] * 2


def test_find__a_json_column_is_no_key(remote: TwentyRemote) -> None:
    with pytest.raises(MappingError, match="match_on column 'badges' is json"):
        remote.find(["badges"], [(["a"],)])


# -- a port of Twenty's REST filter parser (what the real server reads) --------------------------

_JS_DOT = r"[^\n\r\u2028\u2029]"  # JavaScript's "." matches no line terminator


def _twenty_reads(query: str) -> list[tuple[str, str, Any]]:
    """``(field, operator, value)`` of each condition, as parse-filter-rest-request.util.ts
    reads a filter (check-filter-query, add-default-conjunction, parse-filter)."""
    assert query.count("(") == query.count(")"), "check-filter-query.util.ts refuses it"
    if not re.match(r"^(and|or|not)\(", query):
        query = f"and({query})"
    return list(_conditions(query))


def _conditions(query: str) -> Iterator[tuple[str, str, Any]]:
    if re.fullmatch(rf"(or|and|not)\(({_JS_DOT}+)\)", query):
        for part in _split(query):
            yield from _conditions(part)
        return
    assert re.fullmatch(rf"{_JS_DOT}+\[{_JS_DOT}+\]:{_JS_DOT}+", query), query
    field, operator, value = _base(query)
    yield field, operator, _format(value, operator)


def _split(query: str) -> list[str]:
    """parse-filter-content.util.ts, character for character."""
    brackets = double = single = False
    depth = 0
    parts: list[str] = []
    current = ""
    for c in query:
        keep = depth >= 1
        if c == "(":
            depth += 1
        if c == ")":
            depth -= 1
            keep = depth >= 1
        if c in "[]":
            brackets = not brackets
        if c == '"':
            double = not double
        if c == "'":
            single = not single
        if c == "," and depth == 1 and not (brackets or double or single):
            parts.append(current)
            current = ""
            keep = False
        if keep:
            current += c
    return [*parts, current]


def _base(query: str) -> tuple[str, str, str]:
    """parse-base-filter.util.ts."""
    fields = comparator = value = ""
    in_fields, in_comparator, in_value = True, False, False
    for c in query:
        if in_value:
            value += c
        if c == "]" and not in_value:
            in_comparator = False
        if c == ":" and not in_comparator:
            in_value = True
        if in_comparator:
            comparator += c
        if c == "[" and in_fields:
            in_fields, in_comparator = False, True
        if in_fields:
            fields += c
    return fields, comparator, value


def _format(value: str, operator: str | None = None) -> Any:
    """format-field-values.util.ts without a field type (the REST parser passes none)."""
    if operator in ("in", "containsAny"):
        assert value[0] == "[" and value[-1] == "]", value
        return [_format(item) for item in value[1:-1].split(",")]
    if operator == "is":
        return value
    if value[:1] in "\"'" and value[-1:] in "\"'" and len(value) >= 2:
        return value[1:-1]
    return value


def _like(pattern: str, text: str) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.DOTALL) is not None


def test_pacing__every_request_tells_the_pacer_when_it_really_leaves(
    twenty: TwentyEmulator,
) -> None:
    """As for Airtable (see test_airtable_limits.py): each request is stamped as it leaves."""
    for n in range(3):
        _member(twenty, f"wm-{n}")
    target = TwentyTarget(Secret(twenty.token), "TWENTY_API_KEY", twenty.url, 1e9)
    pacer = CountingPacer()
    client = TwentyRemote(REP_PROGRESSIONS, target, RetryPolicy(sleep=lambda _: None), pacer=pacer)

    found = client.find(["workspace_member_id"], [("wm-0",), ("wm-1",), ("wm-9",)])
    client.close()

    assert sorted(k for k, records in found.items() if records) == [("wm-0",), ("wm-1",)]
    assert pacer.let_go == pacer.left == len(twenty.requests) >= 1
