"""A Twenty pull window read from both ends at once (``twenty_ends``), over real HTTP.

Each record is read once (twice only when it changed in between), whatever the window's size
and however many records share one ``updatedAt``; the listing costs at most two requests more
than a single cursor; the two cursors are in flight together; and a record edited while the
listing runs is either read or stamped past the window, so the next run reads it.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from reconciler.config import Secret, TwentyTarget
from reconciler.emulators.twenty import TwentyEmulator
from reconciler.model import REP_PROGRESSIONS, parse_datetime
from reconciler.remotes.base import RetryPolicy
from reconciler.remotes.twenty import PAGE_LIMIT, TwentyRemote
from reconciler.remotes.twenty_ends import Listing
from reconciler.remotes.twenty_pages import BACKWARD, BY_ID, FORWARD, Ask, Page
from reconciler.remotes.twenty_tally import Tally
from tests.helpers import progression_fields

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def _remote(em: TwentyEmulator, transport: httpx.BaseTransport | None = None) -> TwentyRemote:
    target = TwentyTarget(Secret(em.token), "TWENTY_API_KEY", em.url, 1e9)
    return TwentyRemote(
        REP_PROGRESSIONS, target, RetryPolicy(sleep=lambda _: None), transport=transport
    )


@pytest.fixture
def remote(twenty: TwentyEmulator) -> Iterator[TwentyRemote]:
    client = _remote(twenty)
    yield client
    client.close()


def _seed(em: TwentyEmulator, seconds: list[int]) -> set[str]:
    """One record per entry, stamped that many seconds after T0 (equal entries tie)."""
    return {
        str(em.create(progression_fields(i), updated_at=T0 + timedelta(seconds=s))["id"])
        for i, s in enumerate(seconds)
    }


def _stamp(em: TwentyEmulator, record_id: str) -> datetime:
    record = em.get(record_id)
    assert record is not None
    return parse_datetime(record["updatedAt"])


def _listed(remote: TwentyRemote, since: datetime | None = T0) -> list[str]:
    return [record.id for page in remote.list_changed(since) for record in page]


def _one_cursor(count: int) -> int:
    """Requests a single cursor needs for ``count`` records."""
    return max(1, math.ceil(count / PAGE_LIMIT))


@given(
    count=st.integers(min_value=0, max_value=1300),
    distinct=st.integers(min_value=1, max_value=40),
)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(count=1100, distinct=11)  # groups of 100: each newest-first page gains 100
def test_listing__reads_each_record_once_for_a_few_requests_more(
    twenty: TwentyEmulator, remote: TwentyRemote, count: int, distinct: int
) -> None:
    # Ties that fit in a page; a millisecond holding more than a page costs the requests that
    # find what the cursor passed over (test_listing__a_millisecond_holding_more_than_a_page…).
    assume(math.ceil(count / distinct) <= PAGE_LIMIT)
    twenty.reset()
    twenty.reset_log()
    seconds = [i % distinct for i in range(count)]
    created = _seed(twenty, seconds)  # many ties on updatedAt

    listed = _listed(remote)

    assert sorted(listed) == sorted(created)  # each once
    requests = len(twenty.requests)
    # One page shows the readers met; newest-first pages read their boundary's millisecond
    # again, a whole tie group when many records share it: one request more when the groups
    # are over a third of a page (each newest-first page then gains half a page or less).
    group = math.ceil(count / distinct) if count else 0
    more = 2 if group <= PAGE_LIMIT // 3 else 3
    assert _one_cursor(count) <= requests <= _one_cursor(count) + more
    if count <= PAGE_LIMIT:
        assert requests == 1
    backward = [r for r in twenty.requests if r.query.get("order_by") == [BACKWARD]]
    assert bool(backward) == (count > 2 * PAGE_LIMIT)


def test_listing__orders_by_one_field_with_its_direction(
    twenty: TwentyEmulator, remote: TwentyRemote
) -> None:
    """Both readers send the form the API's documentation gives
    (``order_by=updatedAt[AscNullsFirst]``): one field and its direction, never a bare field,
    nor a second field a server may refuse or ignore (the server appends ``id`` itself)."""
    _seed(twenty, list(range(2 * PAGE_LIMIT + 50)))

    _listed(remote)

    orders = {value for r in twenty.requests for value in r.query.get("order_by", [])}
    assert orders == {"updatedAt[AscNullsFirst]", "updatedAt[DescNullsLast]"}


def test_listing__all_records_sharing_one_stamp(
    twenty: TwentyEmulator, remote: TwentyRemote
) -> None:
    created = _seed(twenty, [0] * 1000)  # a bulk import: one updatedAt for all

    listed = _listed(remote)

    assert sorted(listed) == sorted(created)
    assert len(twenty.requests) <= _one_cursor(1000) + 1


@pytest.mark.parametrize("at_milliseconds", [False, True], ids=["older", "newer"])
def test_listing__stamps_finer_than_the_answers_skip_nothing(
    twenty: TwentyEmulator, remote: TwentyRemote, at_milliseconds: bool
) -> None:
    """Stored to the microsecond, answered to the millisecond (``microsecond_stamps``): a
    newest-first reader on the server's cursor would skip records sharing its page boundary's
    millisecond, and so would an oldest-first one on newer servers, which compare the cursor's
    millisecond at the millisecond but order by the stored time (``millisecond_comparisons``):
    the records of that millisecond stored after the page's last one, with a lower id, are on
    no page. A full sweep would take them for deleted."""
    twenty.microsecond_stamps = True
    twenty.millisecond_comparisons = at_milliseconds
    created = {
        str(
            twenty.create(
                progression_fields(i), updated_at=T0 + timedelta(microseconds=37 * i + 1)
            )["id"]
        )
        for i in range(1500)  # about 27 records a millisecond
    }

    listed = _listed(remote)
    swept = _listed(remote, since=None)

    assert sorted(listed) == sorted(created)
    assert sorted(swept) == sorted(created)
    assert any(r.query.get("order_by") == [BACKWARD] for r in twenty.requests)
    # Past a page, the records of its last millisecond read are named, never a cursor.
    assert not any("starting_after" in r.query for r in twenty.requests)
    assert any(
        "not(id[in]:[" in r.query["filter"][0] for r in twenty.requests if "filter" in r.query
    )


class _Capped(httpx.HTTPTransport):
    """Refuses to send more than ``most`` requests: a listing that pages on forever fails."""

    def __init__(self, most: int) -> None:
        super().__init__()
        self.most, self.sent = most, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        if self.sent > self.most:
            raise RuntimeError(f"more than {self.most} requests")
        return super().handle_request(request)


@pytest.mark.parametrize("at_milliseconds", [False, True], ids=["older", "newer"])
@pytest.mark.parametrize("since", [T0, None], ids=["window", "sweep"])
def test_listing__a_millisecond_holding_more_than_a_page_is_read_by_id(
    twenty: TwentyEmulator, at_milliseconds: bool, since: datetime | None
) -> None:
    """500 records stored in one millisecond at as many times: the server's cursor cannot pass
    them (an older server answers the same page again, as its cursor's value is before them
    all; a newer one passes over those with a lower id), so they are read by ``id``."""
    twenty.microsecond_stamps = True
    twenty.millisecond_comparisons = at_milliseconds
    crowded = T0 + timedelta(seconds=1)
    created = _seed(twenty, [0, 2])
    for i in range(1, 501):
        record = twenty.create(
            progression_fields(i), updated_at=crowded + timedelta(microseconds=i)
        )
        created.add(str(record["id"]))
    remote = _remote(twenty, _Capped(20))
    try:
        listed = _listed(remote, since)
    finally:
        remote.close()

    assert sorted(listed) == sorted(created)
    assert [r.query["order_by"] for r in twenty.requests].count([BY_ID]) == 3  # 500 by 200


@pytest.mark.parametrize("at_milliseconds", [False, True], ids=["older", "newer"])
@pytest.mark.parametrize(("since", "later"), [(T0, 600), (None, 0)], ids=["window", "sweep"])
def test_listing__a_record_the_cursor_passes_over_is_found_by_the_counts(
    twenty: TwentyEmulator,
    remote: TwentyRemote,
    at_milliseconds: bool,
    since: datetime | None,
    later: int,
) -> None:
    """A batch written by one statement shares one stored time, so the oldest-first reader
    follows the server's cursor through it once it is too many records to name. A record
    written by another statement in the same millisecond, stored after the batch with a lower
    ``id``, is then on no page of a newer server (past the cursor's row, that millisecond goes by
    ``id``): the server's count of the records from the page's bound on shows it missing, and
    that range is read again by ``id``. On an older server the cursor's pages find it."""
    twenty.microsecond_stamps = True
    twenty.millisecond_comparisons = at_milliseconds
    crowded = T0 + timedelta(seconds=1)
    created = {
        str(twenty.create(progression_fields(i), updated_at=T0 + timedelta(microseconds=i))["id"])
        for i in range(194)
    }
    batch = crowded + timedelta(microseconds=500)  # the rest of the first page, and a page
    created |= {
        str(twenty.create(progression_fields(200 + i), updated_at=batch)["id"]) for i in range(206)
    }
    passed_over = "00000000-0000-4000-8000-000000000001"  # lower than every id of the batch
    twenty.create(
        progression_fields(500), id=passed_over, updated_at=batch + timedelta(microseconds=400)
    )
    created.add(passed_over)
    created |= {  # newer records: the newest-first reader never reaches the crowded millisecond
        str(
            twenty.create(
                progression_fields(600 + i), updated_at=crowded + timedelta(seconds=1 + i)
            )["id"]
        )
        for i in range(later)
    }

    listed = _listed(remote, since)

    assert sorted(listed) == sorted(created)
    if at_milliseconds:  # the range read again (an older server's cursor reads on by itself)
        assert any(r.query.get("order_by") == [BY_ID] for r in twenty.requests)


# Writes of one millisecond (0 to 4 after a second past T0): how many, and whether by one
# statement (one stored time, as a batch) or one by one (each its own microsecond).
_WRITES = st.tuples(st.integers(0, 4), st.integers(1, 250), st.booleans())


@pytest.mark.parametrize("at_milliseconds", [False, True], ids=["older", "newer"])
@given(writes=st.lists(_WRITES, max_size=8), sweep=st.booleans())
# Found when this property ran at random: a record written after a page-filling batch of its
# millisecond, with a lower id, on no page of a newer server's cursor.
@example(writes=[(0, 1, False), (0, 193, False), (1, 2, False), (1, 205, True)], sweep=True)
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_listing__crowded_milliseconds_of_any_mix_of_writes_lose_nothing(
    twenty: TwentyEmulator,
    at_milliseconds: bool,
    writes: list[tuple[int, int, bool]],
    sweep: bool,
) -> None:
    """Batches and single writes sharing a few milliseconds, in any mix, stored to the
    microsecond: a window and a full sweep read every record, on either kind of server."""
    twenty.reset()
    twenty.reset_log()
    twenty.microsecond_stamps = True
    twenty.millisecond_comparisons = at_milliseconds
    created: set[str] = set()
    for millisecond, count, batch in writes:
        start = T0 + timedelta(seconds=1, milliseconds=millisecond)
        for k in range(count):
            at = start + timedelta(microseconds=500 if batch else (k * 997) % 1000)
            created.add(str(twenty.create(progression_fields(len(created)), updated_at=at)["id"]))
    remote = _remote(twenty, _Capped(400))
    try:
        listed = _listed(remote, None if sweep else T0)
    finally:
        remote.close()

    assert sorted(listed) == sorted(created)


class _Intervals(httpx.HTTPTransport):
    """Notes when each request was in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[tuple[float, float]] = []
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        started = time.monotonic()
        response = super().handle_request(request)
        response.read()
        with self.lock:
            self.spans.append((started, time.monotonic()))
        return response

    def overlapping(self) -> int:
        """Requests in flight while another one was."""
        return sum(
            any(a < d and c < b for j, (c, d) in enumerate(self.spans) if j != i)
            for i, (a, b) in enumerate(self.spans)
        )


def test_listing__both_readers_are_in_flight_together(twenty: TwentyEmulator) -> None:
    created = _seed(twenty, list(range(2000)))
    twenty.latency = 0.05  # each answer takes a while, so requests sent together overlap
    transport = _Intervals()
    remote = _remote(twenty, transport)
    try:
        listed = _listed(remote)
    finally:
        remote.close()

    assert sorted(listed) == sorted(created)
    # Ten pages and the one that shows the readers met: after the first, they go in pairs.
    assert len(twenty.requests) == 11
    assert transport.overlapping() == 10


class _EditsMidway(httpx.HTTPTransport):
    """Edits records in the emulator just before the ``at``-th request is sent."""

    def __init__(self, em: TwentyEmulator, at: int, edit: list[str]) -> None:
        super().__init__()
        self.em, self.at, self.edit = em, at, edit
        self.sent = 0
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.sent += 1
            if self.sent == self.at:
                for record_id in self.edit:
                    self.em.update(record_id, {"totalXp": 7})
        return super().handle_request(request)


def test_listing__a_record_edited_midway_is_read_or_stamped_for_the_next_window(
    twenty: TwentyEmulator,
) -> None:
    seconds = list(range(1500))
    created = _seed(twenty, seconds)
    # Records from the middle of the order, which neither cursor has reached at request 3.
    ordered = sorted(created, key=lambda i: _stamp(twenty, i))
    edited = ordered[700:705]
    started = twenty.clock.now()
    remote = _remote(twenty, _EditsMidway(twenty, 3, edited))
    try:
        listed = _listed(remote)
    finally:
        remote.close()

    unchanged = [i for i in listed if i not in edited]
    assert len(unchanged) == len(set(unchanged))  # read once
    assert set(created) - set(edited) == set(unchanged)  # every record left alone is read
    for record_id in set(edited) - set(listed):
        assert _stamp(twenty, record_id) >= started


def test_full_sweep__one_cursor_reads_even_records_edited_midway(
    twenty: TwentyEmulator,
) -> None:
    """A sweep judges deletions by what it read, so it may leave nothing to the next run."""
    created = _seed(twenty, list(range(1500)))
    ordered = sorted(created, key=lambda i: _stamp(twenty, i))
    remote = _remote(twenty, _EditsMidway(twenty, 3, ordered[700:705]))
    try:
        listed = _listed(remote, since=None)
    finally:
        remote.close()

    assert set(listed) == created
    assert not any(r.query.get("order_by") == [BACKWARD] for r in twenty.requests)


class _Unplaceable(httpx.HTTPTransport):
    """Answers every newest-first page with its last record's ``updatedAt`` unreadable."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.params.get("order_by") != BACKWARD:
            return response
        body = json.loads(response.read())
        body["data"]["repProgressions"][-1]["updatedAt"] = "soon"
        return httpx.Response(
            response.status_code, headers={"Date": response.headers["Date"]}, json=body
        )


def test_listing__a_record_it_cannot_place_stops_the_newest_first_reader(
    twenty: TwentyEmulator,
) -> None:
    """The record fails alone (reported, read again by the other reader); the newest-first
    reader, which cannot tell where its next page starts, sends nothing more."""
    created = _seed(twenty, list(range(1000)))
    remote = _remote(twenty, _Unplaceable())
    try:
        records = [record for page in remote.list_changed(T0) for record in page]
    finally:
        remote.close()

    assert {r.id for r in records} == created
    errors = [r.error for r in records if r.error is not None]
    assert errors == ["updatedAt: expected a date-time, got 'soon'"]
    assert [r.query.get("order_by") for r in twenty.requests].count([BACKWARD]) == 1


def _page(*records: tuple[str, str]) -> Page:
    return Page([{"id": i, "updatedAt": u} for i, u in records], "next", None)


def test_meeting__equal_millisecond_stamps_or_a_shared_record_prove_nothing() -> None:
    """Records sharing a time come to both readers in the server's tie order (``id``
    ascending, appended to either direction), so a record both have read may stand among
    others of its time that neither has: only times a millisecond apart prove the meeting."""
    listing = Listing()
    listing.forward.last = listing.backward.last = parse_datetime("2026-11-20T10:00:00.123Z")
    assert not listing.complete()  # the server orders by the finer stored time

    listing = Listing()
    listing.fresh(listing.forward, _page(("a", "2026-11-20T10:00:00.123Z")))
    listing.fresh(
        listing.backward,
        _page(("b", "2026-11-20T10:00:00.124Z"), ("a", "2026-11-20T10:00:00.123Z")),
    )
    assert not listing.complete()  # "a" read by both, at one time: nothing proven
    listing.fresh(listing.forward, _page(("b", "2026-11-20T10:00:00.124Z")))
    assert listing.complete()


def test_fresh__a_record_changed_between_two_readings_is_read_again() -> None:
    listing = Listing()
    listing.fresh(listing.forward, _page(("a", "2026-11-20T10:00:00.123Z")))
    same = listing.fresh(listing.backward, _page(("a", "2026-11-20T10:00:00.123Z")))
    changed = listing.fresh(listing.backward, _page(("a", "2026-11-20T10:00:00.500Z")))
    assert same == []
    assert [raw["updatedAt"] for raw in changed] == [
        "2026-11-20T10:00:00.500Z"
    ]  # the pull keeps it


def test_meeting__later_forward_stamp_or_an_end_reached_proves_it() -> None:
    listing = Listing()
    listing.forward.last = parse_datetime("2026-11-20T10:00:00.124Z")
    listing.backward.last = parse_datetime("2026-11-20T10:00:00.123Z")
    assert listing.complete()
    listing = Listing()
    listing.backward.finished = True
    assert listing.complete()


def _counted(total: int, *ids: str) -> Page:
    """A page of records a millisecond apart from 10:00:00.100 by their number, with the
    server's count of what its filter matches."""
    return Page(
        [{"id": i, "updatedAt": f"2026-11-20T10:00:00.{100 + int(i):03d}Z"} for i in ids],
        "next",
        total,
    )


@pytest.mark.parametrize("cursor", [False, True], ids=["bounds", "cursor"])
@pytest.mark.parametrize("read", [4, 3], ids=["all", "one-short"])
def test_tally__only_a_range_the_cursor_went_through_is_read_again(cursor: bool, read: int) -> None:
    """Ten records match; after two pages the bound moves to record 5's time, naming record 5,
    and the server counts five from there (six with record 5): four before it. A range paged
    by bounds alone is exact (a record deleted meanwhile makes the counts differ for nothing);
    one the cursor went through is read again when fewer records of it were read."""
    tally = Tally()
    pages: list[tuple[Ask, Page]] = [
        (Ask(FORWARD), _counted(10, "1", "2")),
        (Ask(FORWARD, cursor="c" if cursor else None), _counted(10, *("3", "4")[: read - 2])),
    ]
    bound = "2026-11-20T10:00:00.105Z"
    pages.append((Ask(FORWARD, since=bound, skip=("5",)), _counted(5, "6")))
    for ask, page in pages:
        tally.add(page.records)
        tally.measure(ask, page)

    missing = cursor and read < 4
    assert tally.gaps == ([(None, parse_datetime(bound))] if missing else [])
