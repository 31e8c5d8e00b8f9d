"""The pacer: never more requests in any window than the remote allows, no time wasted below
that, lockouts honoured, and one budget per base shared by the mappings on it."""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
import threading

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from reconciler.config import load_settings
from reconciler.emulators.limits import SlidingWindowLimiter, TokenBucketLimiter
from reconciler.model import REP_PROGRESSIONS
from reconciler.remotes.factory import budget_key, build_remote
from reconciler.remotes.pacing import (
    JITTER_GUARD,
    MAX_GUARD,
    REFUSED_GUARD,
    SEND_GUARD,
    BucketPacer,
    Pacer,
    PacerPool,
)


class FakeTime:
    """A clock that only moves when the pacer sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.lock = threading.Lock()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def _starts(pacer: Pacer, time: FakeTime, count: int) -> list[float]:
    starts = []
    for _ in range(count):
        pacer.wait()
        starts.append(time.now)
    return starts


def test_pacer__a_rested_pacer_lets_a_burst_go_then_one_per_slot() -> None:
    time = FakeTime()
    pacer = Pacer(5, 1.0, clock=time.clock, sleep=time.sleep, guard=0.0)
    starts = [s - 100.0 for s in _starts(pacer, time, 12)]
    assert starts[:5] == [0.0] * 5
    assert starts[5:10] == pytest.approx([1.0] * 5)
    assert starts[10:] == pytest.approx([2.0] * 2)


def test_pacer__a_request_that_left_late_is_counted_from_when_it_left() -> None:
    """A thread let go at 0 that sends only at 0.3 (it waited for the interpreter): the next
    request after the limit is spaced from 0.3, not 0, so the server cannot see two within a
    window."""
    time = FakeTime()
    pacer = Pacer(2, 1.0, clock=time.clock, sleep=time.sleep, guard=0.0)
    pacer.wait()
    time.now += 0.3
    pacer.sent()
    pacer.wait()
    pacer.sent()  # on time: no change
    pacer.wait()
    assert time.now - 100.0 == pytest.approx(1.3)


def test_pacer__sent_only_moves_the_calling_threads_own_request() -> None:
    time = FakeTime()
    pacer = Pacer(2, 1.0, clock=time.clock, sleep=time.sleep, guard=0.0)
    pacer.wait()  # this thread's request, never stamped late
    other = threading.Thread(target=pacer.wait)
    other.start()
    other.join()
    time.now += 0.4
    pacer.sent()  # moves this thread's slot (0 -> 0.4); the other thread's stays at 0
    pacer.wait()
    assert time.now - 100.0 == pytest.approx(1.0)


@given(
    per_second=st.sampled_from([0.5, 1, 2.5, 5, 7]),
    gaps=st.lists(st.floats(0, 0.7), min_size=1, max_size=40),
    late=st.lists(st.floats(0, 0.3), min_size=40, max_size=40),
)
def test_pacer__never_more_than_the_rate_in_any_window_when_requests_leave_late(
    per_second: float, gaps: list[float], late: list[float]
) -> None:
    """Each request leaves up to 0.3 s after the pacer let it go: counted from when they
    really left, no window of the remote's length holds more than the limit."""
    time = FakeTime()
    pacer = Pacer.rate(per_second, clock=time.clock, sleep=time.sleep, guard=0.0)
    left = []
    for gap, delay in zip(gaps, late, strict=False):
        time.now += gap
        pacer.wait()
        time.now += delay
        pacer.sent()
        left.append(time.now)
    window = pacer.span
    most = max(sum(1 for t in left if s <= t < s + window - 1e-9) for s in left)
    assert most <= pacer.limit


@given(
    per_second=st.sampled_from([0.5, 1, 2.5, 5, 7]),
    gaps=st.lists(st.floats(0, 0.7), min_size=1, max_size=40),
)
def test_pacer__never_more_than_the_rate_in_any_window(
    per_second: float, gaps: list[float]
) -> None:
    """Whatever the callers' own pauses, any window of the remote's length holds at most the
    limit (checked with the guard off: the guard only adds room)."""
    time = FakeTime()
    pacer = Pacer.rate(per_second, clock=time.clock, sleep=time.sleep, guard=0.0)
    starts = []
    for gap in gaps:
        time.now += gap
        pacer.wait()
        starts.append(time.now)
    limit, window = pacer.limit, pacer.window
    for first, later in itertools.combinations(range(len(starts)), 2):
        if later - first >= limit:
            assert starts[later] - starts[first] >= window - 1e-9


def test_pacer__a_hold_stops_everything_until_it_ends() -> None:
    time = FakeTime()
    pacer = Pacer(5, 1.0, clock=time.clock, sleep=time.sleep)
    pacer.wait()
    pacer.hold(30.0)
    pacer.wait()
    assert time.now == pytest.approx(130.0)


def test_pacer__no_limit_never_sleeps() -> None:
    time = FakeTime()
    pacer = Pacer.rate(0, clock=time.clock, sleep=time.sleep)
    _starts(pacer, time, 1000)
    assert time.now == 100.0


def test_pool__mappings_on_one_base_share_the_stricter_budget() -> None:
    pool = PacerPool()
    first = pool.get(("airtable", "https://api.airtable.com", "appA"), Pacer.rate(5))
    again = pool.get(("airtable", "https://api.airtable.com", "appA"), Pacer.rate(5))
    slower = pool.get(("airtable", "https://api.airtable.com", "appA"), Pacer.rate(2))
    other = pool.get(("airtable", "https://api.airtable.com", "appB"), Pacer.rate(5))
    assert again is first and slower is first  # one budget for the base, already shared
    assert first.limit == 2  # the stricter rate, for every mapping on the base
    assert pool.get(("airtable", "https://api.airtable.com", "appA"), Pacer.rate(5)).limit == 2
    assert other is not first and other.limit == 5


def _twenty_key(workspace: str, key_id: str) -> str:
    """An API key as Twenty issues it: a JWT whose payload names its workspace
    (``ApiKeyService.generateApiKeyToken``); its signature is the server's to check."""

    def part(value: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    payload = {"sub": workspace, "type": "API_KEY", "workspaceId": workspace, "jti": key_id}
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(payload)}.c2lnbmF0dXJl"


def test_pool__twenty_keys_of_one_workspace_share_its_budget() -> None:
    """Twenty throttles a workspace, whichever of its API keys a request carries
    (``api:throttler:{workspaceId}-short-limit``): two mappings with two keys of one
    workspace share one pacer, and a key of another workspace has its own."""
    names = ("a", "b", "c")
    mappings = [
        dataclasses.replace(REP_PROGRESSIONS, name=n, api_key_env=f"{n.upper()}_KEY") for n in names
    ]
    env = {
        "A_KEY": _twenty_key("ws-1", "key-1"),
        "B_KEY": _twenty_key("ws-1", "key-2"),
        "C_KEY": _twenty_key("ws-2", "key-3"),
    }
    settings = dataclasses.replace(load_settings(env), mappings=tuple(mappings))
    pool = PacerPool()
    a, b, c = (build_remote(m, settings, pacers=pool)._call.pacer for m in mappings)  # type: ignore[attr-defined]
    assert a is b and c is not a
    assert budget_key(mappings[0], settings) == budget_key(mappings[1], settings)


@pytest.mark.parametrize("other", ["another-key", "a.b.c", "x.bm90IGpzb24.y", "x.W10.y", "x.e30.y"])
def test_pool__twenty_keys_that_name_no_workspace_are_each_their_own(other: str) -> None:
    """A key that is not such a JWT (another server, another form, a payload that is not
    base64, not JSON, not an object, or names no workspace) counts as a workspace of its own."""
    mappings = [
        dataclasses.replace(REP_PROGRESSIONS, name=n, api_key_env=f"{n.upper()}_KEY")
        for n in ("a", "b")
    ]
    settings = dataclasses.replace(
        load_settings({"A_KEY": "one-key", "B_KEY": other}), mappings=tuple(mappings)
    )
    assert budget_key(mappings[0], settings) != budget_key(mappings[1], settings)


def test_four_mappings_on_one_base__share_its_budget_and_draw_no_429(
    db, cli, tmp_path, monkeypatch
) -> None:
    """Each paced as if alone, four mappings on one base went over 5 requests a second."""
    from reconciler.emulators.airtable import AirtableEmulator
    from tests.helpers import execute

    em = AirtableEmulator(rate_limit=5, lockout=30.0)
    em.start()
    try:
        monkeypatch.setenv("AIRTABLE_TOKEN", em.token)
        monkeypatch.setenv("AIRTABLE_BASE_ID", em.base_id)
        monkeypatch.setenv("AIRTABLE_API_URL", em.url)
        config = []
        for i in range(4):
            em.add_table(
                f"T{i}", {"Name": "singleLineText", "lastModifiedTime": "lastModifiedTime"}
            )
            for j in range(150):  # two pages: 8 requests in all, more than 5 a second
                em.create(f"T{i}", {"Name": f"n{j}"})
            execute(
                db,
                f"CREATE TABLE t{i} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                "airtable_record_id text UNIQUE, name text, remote_deleted_at timestamptz, "
                "created_at timestamptz NOT NULL DEFAULT now(), "
                "updated_at timestamptz NOT NULL DEFAULT now())",
            )
            config.append(
                f'[mappings.t{i}]\nremote = "airtable"\ntable = "T{i}"\nlocal_table = "t{i}"\n'
                'key_column = "airtable_record_id"\n'
                'fields = [{ remote = "Name", column = "name" }]\n'
            )
        path = tmp_path / "four.toml"
        path.write_text("\n".join(config))
        names = [arg for i in range(4) for arg in ("--mapping", f"t{i}")]

        result = cli("--config", str(path), *names)

        assert result.exit_code == 0, result.output
        assert sum(m["api"]["throttled"] for m in result.report["mappings"]) == 0
        assert em.count(status=429) == 0
        assert all(m["pull"]["inserted"] == 150 for m in result.report["mappings"])
    finally:
        em.stop()


# -- Twenty's bucket -------------------------------------------------------------------------------


def _all_admitted(
    pacer: Pacer, server: TokenBucketLimiter, time: FakeTime, gaps: list[float]
) -> None:
    """Callers pausing ``gaps`` between requests: every request the pacer lets go finds a token
    in the server's bucket."""
    for gap in gaps:
        time.now += gap
        pacer.wait()
        assert server.admit(time.now + 1e-9)


def test_bucket__a_burst_of_the_bucket_then_none_until_it_leaves_the_minute() -> None:
    """100 a minute: 100 at once, then none until they leave the minute (no more than 100 in
    any minute, as documented, where the bucket alone would let one go each 0.6 s); the bucket
    has refilled by then, as the server counts it, so the next 100 go at once again."""
    time = FakeTime()
    pacer = BucketPacer.rate(100, 60.0, clock=time.clock, sleep=time.sleep, guard=0.0)
    starts = [s - 100.0 for s in _starts(pacer, time, 203)]
    assert starts[:100] == [0.0] * 100
    assert starts[100:200] == pytest.approx([60.0] * 100)
    assert starts[200:] == pytest.approx([120.0] * 3)


@given(gaps=st.lists(st.floats(0, 2.0), min_size=1, max_size=250))
@example(gaps=[0.0] * 250)  # callers that never pause
def test_bucket__never_more_than_the_limit_in_any_minute(gaps: list[float]) -> None:
    """``TWENTY_RATE_LIMIT`` is the requests a minute the tool allows itself: a server that
    counts a sliding minute (the documented "100 requests per minute") refuses none either."""
    time = FakeTime()
    pacer = BucketPacer.rate(100, 60.0, clock=time.clock, sleep=time.sleep, guard=0.0)
    server = SlidingWindowLimiter(100, 60.0)
    for gap in gaps:
        time.now += gap
        pacer.wait()
        assert server.admit(time.now)


@given(gaps=st.lists(st.floats(0, 2.0), min_size=1, max_size=250))
def test_bucket__the_servers_bucket_never_refuses_a_paced_request(gaps: list[float]) -> None:
    """Whatever the callers' own pauses, every request the pacer lets go finds a token in
    Twenty's bucket as the server keeps it (the emulator's limiter, the server's formula)."""
    time = FakeTime()
    pacer = BucketPacer.rate(100, 60.0, clock=time.clock, sleep=time.sleep, guard=0.0)
    _all_admitted(pacer, TokenBucketLimiter(100), time, gaps)


def test_bucket__a_window_pacer_would_be_refused_by_twentys_bucket() -> None:
    """Why Twenty has a pacer of its own: 100 in any minute is not what its bucket allows."""
    time = FakeTime()
    pacer = Pacer.rate(100, 60.0, clock=time.clock, sleep=time.sleep, guard=0.0)
    server = TokenBucketLimiter(100)
    answers = []
    for _ in range(200):
        time.now += 0.05
        pacer.wait()
        answers.append(server.admit(time.now))
    assert not all(answers)


@given(gaps=st.lists(st.floats(0, 2.0), min_size=1, max_size=150))
def test_bucket__after_a_refusal_naming_a_smaller_bucket_none_is_refused(gaps: list[float]) -> None:
    """A server whose bucket is smaller than ``TWENTY_RATE_LIMIT`` (a hosted plan of 50 a
    minute; a self-hosted one configured lower) names it in its 429 ("Limit reached (50
    tokens per 60000 ms)"): from then on the pacer keeps to it, whatever the callers' pauses."""
    time = FakeTime()
    pacer = BucketPacer.rate(100, 60.0, clock=time.clock, sleep=time.sleep, guard=0.0)
    server = TokenBucketLimiter(50)
    while True:  # at the tool's 100 a minute, until the server refuses
        pacer.wait()
        if not server.admit(time.now):
            break
    pacer.refused((50, 60.0))
    assert (pacer.limit, pacer.per_second) == (50, pytest.approx(50 / 60))
    _all_admitted(pacer, server, time, gaps)


def test_pacer__a_named_limit_only_ever_tightens() -> None:
    time = FakeTime()
    pacer = BucketPacer.rate(100, 60.0, clock=time.clock, sleep=time.sleep)
    pacer.refused((100, 1.0))  # Twenty's short bucket, 100 a second: looser, nothing changes
    assert (pacer.limit, pacer.per_second) == (100, pytest.approx(100 / 60))
    pacer.refused((3, 3.0))  # a bucket of 3 at one a second: fewer at once and fewer a second
    assert (pacer.limit, pacer.per_second) == (3, pytest.approx(1.0))
    pacer.refused((2, 0.5))  # fewer at once, more a second: only the burst shrinks
    assert (pacer.limit, pacer.per_second) == (2, pytest.approx(1.0))
    unlimited = Pacer(0, clock=time.clock, sleep=time.sleep)
    unlimited.refused((5, 1.0))
    assert (unlimited.limit, unlimited.per_second) == (5, pytest.approx(5.0))
    unlimited.refused((0, 1.0))  # nothing usable named
    assert unlimited.limit == 5


def test_pacer__a_refusal_naming_no_limit_widens_the_guard_up_to_its_cap() -> None:
    """Kept to the remote's own limit, the pacer was still refused: the guard was too narrow
    for the path (or another client spent part of the budget). It widens to at least 50 ms,
    doubles at each further refusal, and stops at 200 ms; the wider window holds from then."""
    time = FakeTime()
    pacer = Pacer.rate(5, clock=time.clock, sleep=time.sleep)
    assert pacer.guard == JITTER_GUARD and pacer.lessons() == {} and not pacer.taught_now
    assert BucketPacer.rate(100, 60.0).guard == SEND_GUARD

    pacer.refused()
    assert pacer.guard == REFUSED_GUARD and pacer.taught_now
    starts = [s - 100.0 for s in _starts(pacer, time, 6)]
    assert starts[5] == pytest.approx(1.0 + REFUSED_GUARD)
    for _ in range(3):
        pacer.wait()
        pacer.refused()
    assert pacer.guard == MAX_GUARD == 4 * REFUSED_GUARD
    assert pacer.lessons() == {"guard": MAX_GUARD}
    assert (pacer.limit, pacer.per_second) == (5, 5.0)  # the rate itself is unchanged


def test_pacer__a_refusal_of_a_request_let_go_before_the_last_lesson_teaches_nothing() -> None:
    """Requests in flight when the first 429 taught the pacer were paced by the rule it
    corrected: their refusals neither widen the guard nor count as a second lesson. A
    refusal of a request let go after it, under a limit the 429 names and the pacer keeps
    to, widens the guard."""
    time = FakeTime()
    pacer = BucketPacer.rate(100, 60.0, clock=time.clock, sleep=time.sleep)
    let_go, answered = threading.Event(), threading.Event()

    def in_flight() -> None:  # let go with the first request, refused after its lesson
        pacer.wait()
        let_go.set()
        answered.wait()
        pacer.refused((3, 3.0))

    other = threading.Thread(target=in_flight)
    other.start()
    pacer.wait()
    let_go.wait()
    time.now += 0.1
    pacer.refused((3, 3.0))
    assert (pacer.limit, pacer.guard) == (3, SEND_GUARD)
    answered.set()
    other.join()
    assert (pacer.limit, pacer.guard) == (3, SEND_GUARD)

    pacer.wait()
    pacer.refused((3, 3.0))
    assert (pacer.limit, pacer.guard) == (3, 2 * SEND_GUARD)
    assert pacer.lessons() == {"limit": 3.0, "span": 3.0, "guard": 2 * SEND_GUARD}


def test_pacer__a_later_run_starts_from_what_refusals_taught_never_looser() -> None:
    widened = Pacer.rate(5)
    widened.refused()
    named = BucketPacer.rate(100, 60.0)
    named.refused((3, 3.0))
    assert named.lessons() == {"limit": 3.0, "span": 3.0} and named.guard == SEND_GUARD

    later = Pacer.rate(5)
    later.adopt(widened.lessons())
    assert later.guard == REFUSED_GUARD and not later.taught_now
    assert later.lessons() == {"guard": REFUSED_GUARD}  # kept on while it holds
    for odd in (None, {}, {"guard": 0.001}, {"guard": 9.0}, {"guard": "wide"}, {"limit": 2}):
        later.adopt(odd)  # type: ignore[arg-type]
    assert (later.guard, later.limit, later.per_second) == (REFUSED_GUARD, 5, 5.0)

    bucket = BucketPacer.rate(100, 60.0)
    bucket.adopt(named.lessons())
    assert (bucket.limit, bucket.per_second) == (3, pytest.approx(1.0))
    stricter = BucketPacer.rate(2, 60.0)  # TWENTY_RATE_LIMIT already below what was taught
    stricter.adopt(named.lessons())
    assert (stricter.limit, stricter.per_second) == (2, pytest.approx(2 / 60))


def test_twenty_below_the_tools_rate__its_first_429_sets_the_pace(twenty, db, cli) -> None:
    """The tool allows itself more than this server does (a bucket of 3 at ten a second): the
    server's first refusal names its bucket, and the run keeps to it from then on, instead of
    knocking through backoff at every request past the burst."""
    from tests.helpers import seed_progressions

    seed_progressions(twenty, 1_200)  # six pages and more: past the bucket of three
    twenty.limiter = TokenBucketLimiter(600, 3)

    result = cli("--mapping", "rep_progressions")

    assert result.exit_code == 0, result.output
    assert result.mapping("rep_progressions")["pull"]["inserted"] == 1_200
    refused = twenty.count(status=429)
    assert 1 <= refused <= 2, refused  # the first refusal (one per reading end at the most)
    assert result.mapping("rep_progressions")["api"]["throttled"] == refused

    # The next run starts from the bucket the server named (kept for a week): no refusal.
    twenty.clock.advance(0.5)  # between runs, the server's bucket fills up again (0.3 s)
    twenty.reset_log()
    later = cli("--mapping", "rep_progressions", "--full")
    assert later.exit_code == 0, later.output
    assert later.mapping("rep_progressions")["pull"]["fetched"] == 1_200
    assert twenty.count(status=429) == 0
