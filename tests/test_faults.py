"""Faults over real HTTP with a real Postgres: lockouts, 5xx bursts, timeouts, dropped
connections, retry scheduling and dead letters. Whatever fails, no change is lost."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
import requests
import sqlalchemy as sa
import urllib3
from tenacity import RetryCallState

from reconciler.config import Secret, TwentyTarget
from reconciler.emulators.airtable import AirtableEmulator
from reconciler.emulators.limits import SlidingWindowLimiter
from reconciler.emulators.twenty import TwentyEmulator
from reconciler.errors import RemoteUnavailable
from reconciler.model import REP_PROGRESSIONS
from reconciler.remotes import airtable as airtable_remote
from reconciler.remotes import airtable_http
from reconciler.remotes import twenty as twenty_remote
from reconciler.remotes.base import Caller, RetryPolicy, Transient
from reconciler.remotes.pacing import Pacer
from tests.helpers import execute, rows, seed_leads, seed_progressions, twenty_writes
from tests.processes import scalar, wait_until

M = "rep_progressions"
Cli = Callable[..., Any]


def _patches(em: AirtableEmulator) -> list[Any]:
    return [r for r in em.requests if r.method == "PATCH"]


def _airtable_notes(em: AirtableEmulator) -> dict[str, str | None]:
    return {r["id"]: r["fields"].get("Notes") for r in em.records("Leads")}


def _failure(db: sa.Engine) -> dict[str, Any]:
    with db.connect() as conn:
        (row,) = conn.execute(sa.text("SELECT * FROM reconciler.failures")).mappings()
        return dict(row)


def _retry_is_due_now(db: sa.Engine) -> None:
    """Move every scheduled retry into the past (time passing, without waiting for it)."""
    execute(db, "UPDATE reconciler.failures SET next_attempt_at = now() - interval '1 second'")


# -- rate limits and lockouts ---------------------------------------------------------------------


def test_airtable_lockout__backoff_outlasts_it_and_the_run_completes(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client allowed more than the base takes trips the lockout; backoff waits it out."""
    ids = seed_leads(airtable, 150)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'local ' || id WHERE id <= 25")
    for rid in ids[100:105]:
        airtable.update("Leads", rid, {"Status": "Hot"})
    airtable.limiter = SlidingWindowLimiter(2, 1.0, 0.5)
    # The tool holds for Airtable's 30 s after a 429; this base locks out for 0.5 s only.
    monkeypatch.setattr(airtable_http, "LOCKOUT_SECONDS", 0.5)
    monkeypatch.setenv("AIRTABLE_RATE_LIMIT", "50")
    airtable.reset_log()

    result = cli()

    assert result.exit_code == 0, result.output
    api = result.mapping("leads")["api"]
    assert api["throttled"] > 0
    assert api["throttled"] == airtable.count(status=429)
    assert result.mapping("leads")["push"]["updated"] == 25
    assert sorted(n for n in _airtable_notes(airtable).values() if n) == sorted(
        f"local {i}" for i in range(1, 26)
    )
    assert {r["status"] for r in rows(db, where="status = 'Hot'")} == {"Hot"}
    assert len(rows(db, where="status = 'Hot'")) == 5


def test_airtable_pacing__below_the_limit_never_trips_the_lockout(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paced at 4 requests/s against a 5/s base with a 30 s lockout: not one 429."""
    seed_leads(airtable, 120)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'paced' WHERE id <= 20")
    airtable.limiter = SlidingWindowLimiter(5, 1.0, 30.0)
    monkeypatch.setenv("AIRTABLE_RATE_LIMIT", "4")
    airtable.reset_log()

    result = cli("--mapping", "leads")

    assert result.exit_code == 0, result.output
    assert airtable.count(status=429) == 0
    assert result.mapping("leads")["api"]["throttled"] == 0
    assert result.mapping("leads")["push"]["updated"] == 20


def test_default_retry_policy__outlasts_a_30_second_lockout() -> None:
    """With the shipped defaults, a request refused for 30 s of (simulated) time still succeeds,
    and each wait is longer than the one before until the cap."""
    clock = {"now": 0.0}
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock["now"] += seconds

    def request() -> str:
        if clock["now"] < 30.0:
            raise Transient("rate limited (429)", throttled=True)
        return "ok"

    caller = Caller("Airtable", Pacer.rate(0), RetryPolicy(sleep=sleep))
    assert caller(request) == "ok"
    assert clock["now"] >= 30.0
    assert all(b > a for a, b in itertools.pairwise(waits) if b < RetryPolicy().cap)
    assert caller.stats.throttled == len(waits) == caller.stats.retries


def test_retry_policy__waits_double_up_to_the_cap() -> None:
    """The backoff doubles from its base and never exceeds its cap."""
    policy = RetryPolicy(base=0.5, cap=4.0)

    def wait(attempt: int) -> float:
        state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = attempt
        return policy.wait_for(state)

    assert [wait(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def _refused() -> str:
    raise Transient("connection problem: ConnectError", unreached=True)


def test_server_never_reached__the_request_gives_up_after_three_attempts() -> None:
    """No connection could be opened, and no request of the run has reached the server yet (a
    wrong address, a server that is down): three attempts, not the two minutes of retries a
    server that answered gets, and the error says it could not be reached."""
    caller = Caller("Twenty", Pacer.rate(0), RetryPolicy(sleep=lambda _: None), "check the URL")

    with pytest.raises(RemoteUnavailable) as raised:
        caller(_refused)

    assert caller.stats.requests == 3
    assert caller.stats.retries == 2
    assert str(raised.value) == (
        "Twenty could not be reached (3 attempts): connection problem: ConnectError; check the URL"
    )


def test_server_reached_once__a_refused_connection_is_retried_as_long_as_any_failure() -> None:
    """Once a request of the run reached the server, a refused connection is a blip (a restart):
    retried for the policy's whole length."""
    caller = Caller("Twenty", Pacer.rate(0), RetryPolicy(sleep=lambda _: None))
    assert caller(lambda: "answered") == "answered"

    with pytest.raises(RemoteUnavailable, match="kept failing after retries"):
        caller(_refused)

    assert caller.stats.requests == 1 + RetryPolicy().attempts


@pytest.mark.parametrize(
    ("failure", "attempts"),
    [(httpx.ConnectTimeout("connect"), 3), (httpx.ReadTimeout("read"), RetryPolicy().attempts)],
)
def test_twenty_timeouts__a_connect_timeout_never_reached_the_server_a_read_timeout_did(
    failure: httpx.TransportError, attempts: int
) -> None:
    """A connect timeout (a firewall dropping the packets) is a server never reached: three
    attempts; a read timeout came after the connection opened: the whole policy."""
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        raise failure

    target = TwentyTarget(Secret("k"), "TWENTY_API_KEY", "http://twenty.test", 1e9)
    policy = RetryPolicy(sleep=lambda _: None)
    remote = twenty_remote.TwentyRemote(
        REP_PROGRESSIONS, target, policy, transport=httpx.MockTransport(handler)
    )
    with pytest.raises(RemoteUnavailable):
        list(remote.list_changed(None))
    remote.close()

    assert len(calls) == attempts


def test_airtable_connection_errors__only_those_before_a_connection_opened_are_unreached() -> None:
    """How requests reports them: a connect timeout, or urllib3's ``NewConnectionError`` (refused,
    or a name that does not resolve) as the reason, is unreached; a read timeout or a connection
    dropped once open (``ProtocolError``) reached the server."""
    pool = urllib3.HTTPConnectionPool("airtable.test")
    refused = urllib3.exceptions.NewConnectionError(None, "refused")  # type: ignore[arg-type]
    unresolved = urllib3.exceptions.NameResolutionError("airtable.test", None, OSError())  # type: ignore[arg-type]
    dropped = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError())

    def wrapped(reason: Exception) -> requests.ConnectionError:
        return requests.ConnectionError(urllib3.exceptions.MaxRetryError(pool, "/", reason))

    never = airtable_http._never_connected
    assert never(requests.exceptions.ConnectTimeout("connect"))
    assert never(wrapped(refused))
    assert never(wrapped(unresolved))
    assert not never(requests.exceptions.ReadTimeout("read"))
    assert not never(requests.ConnectionError(dropped))


@dataclass(frozen=True)
class Side:
    """One remote with both emulators up and seeded (3 records each): its emulator, its
    mapping, the other remote's mapping, and the variable holding its address."""

    emulator: Any
    mapping: str
    other: str
    variable: str


@pytest.fixture(params=["airtable", "twenty"])
def side(
    request: pytest.FixtureRequest,
    airtable: AirtableEmulator,
    twenty: TwentyEmulator,
    db: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> Side:
    monkeypatch.setenv("RECONCILER_RETRY_BASE_SECONDS", "0.001")
    seed_leads(airtable, 3)
    seed_progressions(twenty, 3)
    if request.param == "airtable":
        return Side(airtable, "leads", M, "AIRTABLE_API_URL")
    return Side(twenty, M, "leads", "TWENTY_API_URL")


def test_unreachable_server__the_mapping_stops_after_three_attempts_naming_the_address(
    side: Side, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing listens at the remote's address: the mapping stops after three attempts (the
    connection refused, as ``requests`` and ``httpx`` report it), exit 3, and the error names
    the address; the other remote's mapping runs."""
    monkeypatch.setenv(side.variable, "http://127.0.0.1:9")  # nothing listens there

    result = cli()

    assert result.exit_code == 3, result.output
    assert result.mapping(side.mapping)["api"]["requests"] == 3
    (error,) = [e for e in result.report["errors"] if e["mapping"] == side.mapping]
    assert "could not be reached (3 attempts): connection problem" in error["message"]
    assert f"is http://127.0.0.1:9 reachable? check {side.variable}" in error["message"]
    assert result.mapping(side.other)["pull"]["inserted"] == 3
    assert not [e for e in result.report["errors"] if e["mapping"] == side.other]


def test_connection_dropped_before_any_answer__retried_as_any_failure(side: Side, cli: Cli) -> None:
    """A server that takes the connection and closes it without answering was reached: its
    first four requests dropped, the run still goes through (the fewer attempts are for a
    server no connection could be opened to)."""
    side.emulator.faults.drop(times=4)

    result = cli()

    assert result.exit_code == 0, result.output
    assert result.mapping(side.mapping)["api"]["retries"] >= 4
    assert result.mapping(side.mapping)["pull"]["inserted"] == 3


# -- 5xx bursts -----------------------------------------------------------------------------------


def test_503_burst_on_airtable_writes__retried_and_every_edit_arrives(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    """Three 503s on PATCH: retried, and every edit lands exactly once."""
    seed_leads(airtable, 15)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'n' || id")
    airtable.faults.fail(503, times=3, method="PATCH")

    result = cli()

    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["api"]["retries"] == 3
    assert result.mapping("leads")["push"]["updated"] == 15
    local = {r["airtable_record_id"]: r["notes"] for r in rows(db)}
    assert _airtable_notes(airtable) == local


def test_503_burst_on_twenty_creates__no_duplicate(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli
) -> None:
    """Creates retried through a 503 burst end as exactly one record each."""
    for i in range(5):
        execute(db, "INSERT INTO rep_progressions (name, total_xp) VALUES (:n, 1)", n=f"new {i}")
    twenty.faults.fail(503, times=4, method="POST")

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert result.mapping(M)["push"]["created"] == 5
    assert result.mapping(M)["api"]["retries"] == 4
    assert sorted(r["name"] for r in twenty.records()) == [f"new {i}" for i in range(5)]
    assert {str(r["twenty_id"]) for r in rows(db, M)} == {r["id"] for r in twenty.records()}


def test_remote_down_for_the_whole_run__exit_3_then_the_next_run_catches_up(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retries run out: the mapping fails with exit 3 naming Twenty; nothing is lost."""
    monkeypatch.setenv("RECONCILER_RETRY_BASE_SECONDS", "0.001")
    seed_progressions(twenty, 3)
    assert cli("--mapping", M).exit_code == 0
    execute(db, "UPDATE rep_progressions SET streak_days = 42")
    twenty.faults.fail(503, times=1000)

    failed = cli("--mapping", M)

    assert failed.exit_code == 3, failed.output
    assert failed.report["status"] == "failed"
    assert any("Twenty" in e["message"] for e in failed.report["errors"])
    twenty.faults.clear()
    result = cli("--mapping", M)
    assert result.exit_code == 0, result.output
    assert {r["streakDays"] for r in twenty.records()} == {42}


def test_airtable_500_on_one_record__it_fails_alone_and_the_rest_is_written(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that answers 500 for any batch holding one record: after the batch's retries,
    its halves get one attempt at a 5xx each, down to the record. It fails alone (exit 1,
    retryable, not dead), the other fourteen land, and a later run writes it once the server
    takes it. A connection dropped during the split is retried as always."""
    monkeypatch.setenv("RECONCILER_RETRY_BASE_SECONDS", "0.001")
    ids = seed_leads(airtable, 15)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'n' || id")
    bad = ids[3]
    airtable.faults.fail(500, times=1000, method="PATCH", containing=bad)
    airtable.faults.drop(times=1, method="PATCH")  # the first PATCH without the bad record
    airtable.reset_log()

    result = cli()

    assert result.exit_code == 1, result.output
    (error,) = result.report["errors"]
    assert error["record"] == bad
    assert error["message"].startswith("Airtable failed: Airtable answered 500")
    assert error["message"].endswith("so the server fails on this record")
    assert result.mapping("leads")["push"]["updated"] == 14
    local = {r["airtable_record_id"]: r["notes"] for r in rows(db)}
    assert _airtable_notes(airtable) == {**local, bad: None}
    failure = _failure(db)
    assert failure["record_key"] == bad and failure["dead"] is False
    # The batch of ten: its ten attempts, then halves of 5, 3 and 2 down to the record (one
    # attempt each: 5+5, 2+3, 1+2, 1+1), and the good half of five once more after the dropped
    # connection; the batch of five goes through at once.
    assert len(_patches(airtable)) == 10 + 2 + 1 + 2 + 2 + 2 + 1
    assert airtable.count(status=0) == 1

    airtable.faults.clear()
    _retry_is_due_now(db)
    again = cli()
    assert again.exit_code == 0, again.output
    assert _airtable_notes(airtable) == local


def test_twenty_500_on_one_record__it_fails_alone_and_the_rest_is_written(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same on Twenty's batch upsert: the record the server fails on fails alone."""
    monkeypatch.setenv("RECONCILER_RETRY_BASE_SECONDS", "0.001")
    ids = seed_progressions(twenty, 6)
    assert cli("--mapping", M).exit_code == 0
    execute(db, "UPDATE rep_progressions SET streak_days = 42")
    bad = ids[4]
    twenty.faults.fail(500, times=1000, method="POST", containing=bad)

    result = cli("--mapping", M)

    assert result.exit_code == 1, result.output
    assert [e["record"] for e in result.report["errors"]] == [bad]
    assert result.mapping(M)["push"]["updated"] == 5
    streaks = {r["id"]: r["streakDays"] for r in twenty.records()}
    assert [rid for rid, days in streaks.items() if days != 42] == [bad]
    assert _failure(db)["dead"] is False

    twenty.faults.clear()
    _retry_is_due_now(db)
    assert cli("--mapping", M).exit_code == 0
    assert {r["streakDays"] for r in twenty.records()} == {42}


def test_airtable_down_for_writes__the_halves_get_one_attempt_each_then_exit_3(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every PATCH answered 500: not one record's doing. After the batch's retries each half is
    tried once; both fail, so the mapping stops as a remote failure (exit 3), no record is
    blamed, and the next run writes them all."""
    monkeypatch.setenv("RECONCILER_RETRY_BASE_SECONDS", "0.001")
    seed_leads(airtable, 3)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'n' || id")
    airtable.faults.fail(500, times=1000, method="PATCH")
    airtable.reset_log()

    failed = cli()

    assert failed.exit_code == 3, failed.output
    assert all(e["record"] is None for e in failed.report["errors"]), failed.report["errors"]
    assert len(_patches(airtable)) == 10 + 2
    assert scalar(db, "SELECT count(*) FROM reconciler.failures") == 0
    airtable.faults.clear()
    assert cli().exit_code == 0
    assert _airtable_notes(airtable) == {r["airtable_record_id"]: r["notes"] for r in rows(db)}


# -- timeouts and dropped connections -------------------------------------------------------------


def test_airtable_timeout__write_retried_and_applied_once_in_effect(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PATCH that outlives the read timeout is retried; the late first attempt does no harm."""
    seed_leads(airtable, 3)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'after timeout'")
    monkeypatch.setattr(airtable_remote, "TIMEOUT", (2, 0.3))
    airtable.faults.delay(1.0, times=1, method="PATCH")
    airtable.reset_log()

    result = cli()

    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["api"]["retries"] >= 1
    wait_until(lambda: len(_patches(airtable)) >= 2, what="the delayed PATCH to complete")
    assert set(_airtable_notes(airtable).values()) == {"after timeout"}
    airtable.reset_log()
    again = cli()
    assert again.exit_code == 0 and _patches(airtable) == []


def test_twenty_timeout_on_create__retried_create_makes_no_duplicate(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create whose answer never came back (but which succeeded) is retried with the same
    client-chosen id: one record, linked locally, and the next run writes nothing."""
    execute(db, "INSERT INTO rep_progressions (name, badges) VALUES ('slow', '[\"b\"]')")
    monkeypatch.setattr(twenty_remote, "TIMEOUT", httpx.Timeout(0.3, connect=2.0))
    twenty.faults.delay(1.0, times=1, method="POST")

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert result.mapping(M)["api"]["retries"] >= 1
    wait_until(lambda: len(twenty_writes(twenty)) >= 2, what="the delayed create to complete")
    (remote,) = twenty.records()
    assert remote["name"] == "slow" and json.loads(remote["badges"]) == ["b"]
    assert str(rows(db, M)[0]["twenty_id"]) == remote["id"]
    twenty.reset_log()
    again = cli("--mapping", M)
    assert again.exit_code == 0, again.output
    assert twenty_writes(twenty) == []


def test_twenty_create_answer_lost__the_next_run_links_the_record_without_a_duplicate(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create that reached Twenty but whose every answer was lost is found by the next run's
    pull under the id the create chose, and linked to its row: not inserted as a new row."""
    monkeypatch.setenv("RECONCILER_RETRY_BASE_SECONDS", "0.001")
    execute(db, "INSERT INTO rep_progressions (name) VALUES ('answer lost')")
    twenty.faults.cut(times=1000, method="POST")
    assert cli("--mapping", M).exit_code == 3
    (created,) = twenty.records()
    twenty.faults.clear()

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert [str(r["twenty_id"]) for r in rows(db, M)] == [created["id"]]
    assert [r["id"] for r in twenty.records()] == [created["id"]]


def test_twenty_create_answer_lost_then_deleted__the_record_stays_deleted(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create whose answer was lost, deleted in Twenty before the next run: the row is marked
    deleted remotely and the record is not brought back by an upsert on its id."""
    monkeypatch.setenv("RECONCILER_RETRY_BASE_SECONDS", "0.001")
    execute(db, "INSERT INTO rep_progressions (name) VALUES ('answer lost')")
    twenty.faults.cut(times=1000, method="POST")
    assert cli("--mapping", M).exit_code == 3
    (created,) = twenty.records()
    twenty.soft_delete(created["id"])
    twenty.faults.clear()
    twenty.reset_log()

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert twenty_writes(twenty) == [] and twenty.records() == []
    assert result.mapping(M)["remote_deleted_ids"] == [created["id"]]
    (row,) = rows(db, M)
    assert str(row["twenty_id"]) == created["id"] and row["remote_deleted_at"] is not None


@pytest.mark.parametrize("method", ["GET", "PATCH"])
def test_airtable_connection_reset__retried(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, method: str
) -> None:
    """Connections closed without an answer (on reads or writes) are retried."""
    ids = seed_leads(airtable, 5)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET claimed_by = 'rep'")
    airtable.update("Leads", ids[0], {"Status": "Won"})
    airtable.faults.drop(times=2, method=method)

    result = cli()

    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["api"]["retries"] == 2
    assert airtable.count(status=0) == 2
    assert {r["fields"].get("Claimed By") for r in airtable.records("Leads")} == {"rep"}
    assert rows(db, where=f"airtable_record_id = '{ids[0]}'")[0]["status"] == "Won"


def test_twenty_connection_reset__on_reads_and_writes(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli
) -> None:
    """Dropped connections on the listing and on the upsert: retried, all data through."""
    ids = seed_progressions(twenty, 4)
    assert cli("--mapping", M).exit_code == 0
    execute(db, "UPDATE rep_progressions SET closed_deals = 7")
    execute(db, "INSERT INTO rep_progressions (name) VALUES ('fresh')")
    twenty.update(ids[0], {"currentRank": "E-7"})
    twenty.faults.drop(times=1, method="GET")
    twenty.faults.drop(times=2, method="POST")

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert result.mapping(M)["api"]["retries"] == 3
    assert len(twenty.records()) == 5
    assert {r["closedDeals"] for r in twenty.records() if r["name"] != "fresh"} == {7}
    assert rows(db, M, f"twenty_id = '{ids[0]}'")[0]["current_rank"] == "E-7"


# -- retry scheduling and dead letters ------------------------------------------------------------


def test_retryable_failure__growing_delays_then_dead_letter_after_max_attempts(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write the remote acknowledges without the record is retried on a doubling schedule,
    then dead-lettered after RECONCILER_MAX_ATTEMPTS; the dead letter is listed in every later
    report and is not retried, until the row changes again locally: then it starts afresh."""
    monkeypatch.setenv("RECONCILER_MAX_ATTEMPTS", "3")
    (rid, other) = seed_leads(airtable, 2)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'stuck' WHERE airtable_record_id = :r", r=rid)
    airtable.faults.fail(200, times=100, body={"records": []}, method="PATCH")

    delays: list[timedelta] = []
    for attempt in (1, 2, 3):
        result = cli()
        assert result.exit_code == 1, result.output
        assert [e["record"] for e in result.report["errors"]] == [rid]
        # The run that dead-letters it says so, as every later run does.
        dead = "dead-lettered after 3 attempt(s): " in result.report["errors"][0]["message"]
        assert dead is (attempt == 3)
        failure = _failure(db)
        assert failure["attempts"] == attempt
        delays.append(failure["next_attempt_at"] - failure["last_failed_at"])
        if attempt < 3:
            waiting = cli()  # not due yet: nothing is sent
            assert waiting.mapping("leads")["push"]["pending"] == 0
            _retry_is_due_now(db)
    assert delays[1] == 2 * delays[0] and delays[2] == 2 * delays[1]
    assert _failure(db)["dead"] is True
    assert result.mapping("leads")["push"]["dead"] == 1

    _retry_is_due_now(db)
    airtable.reset_log()
    later = cli()
    assert _patches(airtable) == []
    assert later.mapping("leads")["push"]["dead"] == 1
    (entry,) = later.report["errors"]
    assert entry["record"] == rid and "dead-lettered after 3 attempt(s)" in entry["message"]

    airtable.faults.clear()
    execute(db, "UPDATE leads SET notes = 'unstuck' WHERE airtable_record_id = :r", r=rid)
    fresh = cli()
    assert fresh.exit_code == 0, fresh.output
    assert fresh.report["errors"] == [] and fresh.mapping("leads")["push"]["dead"] == 0
    assert _airtable_notes(airtable) == {rid: "unstuck", other: None}
    assert scalar(db, "SELECT count(*) FROM reconciler.failures") == 0


def test_dead_letter__a_local_edit_starts_the_attempts_afresh(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row edited after its push was dead-lettered is tried again with a new count of
    attempts: failing once more, it is retried, not dead-lettered again at once."""
    monkeypatch.setenv("RECONCILER_MAX_ATTEMPTS", "2")
    (rid,) = seed_leads(airtable, 1)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'stuck'")
    airtable.faults.fail(200, times=100, body={"records": []}, method="PATCH")
    assert cli().exit_code == 1
    _retry_is_due_now(db)
    assert cli().exit_code == 1
    assert (_failure(db)["attempts"], _failure(db)["dead"]) == (2, True)
    execute(db, "UPDATE leads SET notes = 'edited again'")

    result = cli()

    assert result.exit_code == 1, result.output
    assert [e["record"] for e in result.report["errors"]] == [rid]
    assert "dead-lettered" not in result.report["errors"][0]["message"]
    assert (_failure(db)["attempts"], _failure(db)["dead"]) == (1, False)


def test_pull_dead_letter__the_run_that_dead_letters_a_record_says_so_as_later_ones_do(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    """A remote value that can never be stored locally dead-letters its record at once: the
    report of that run lists it as dead-lettered, worded as a later run lists it (which reads it
    again while it is in the window, and counts the attempt)."""
    seed_leads(airtable, 1)
    bad = airtable.create("Leads", {"First Name": "Bad", "ICP Score": "high"}, validate=False)

    first = cli()
    later = cli()

    assert first.exit_code == later.exit_code == 1, first.output
    for result, attempts in ((first, 1), (later, 2)):
        (error,) = result.report["errors"]
        assert (error["stage"], error["record"]) == ("pull", bad["id"])
        assert error["message"].startswith(f"dead-lettered after {attempts} attempt(s): ")
        assert "ICP Score" in error["message"]
    assert _failure(db)["dead"] is True


def test_non_retryable_4xx__dead_letters_at_once_and_a_local_edit_revives_it(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli
) -> None:
    """A create refused with 400 is dead-lettered on the first attempt under its local key,
    listed in every report, never resent as is, and created once the row changes again."""
    seed_progressions(twenty, 1)
    assert cli("--mapping", M).exit_code == 0
    execute(db, "INSERT INTO rep_progressions (name) VALUES ('refused')")
    local_id = scalar(db, "SELECT id FROM rep_progressions WHERE name = 'refused'")
    key = f"rep_progressions:{local_id}"
    twenty.faults.fail(400, times=1, method="POST")

    first = cli("--mapping", M)

    assert first.exit_code == 1, first.output
    assert first.mapping(M)["push"]["dead"] == 1 and first.mapping(M)["api"]["retries"] == 0
    assert [e["record"] for e in first.report["errors"]] == [key]
    assert first.report["errors"][0]["message"].startswith("dead-lettered after 1 attempt(s): ")
    twenty.reset_log()
    second = cli("--mapping", M)
    assert twenty_writes(twenty) == []
    assert second.mapping(M)["push"]["dead"] == 1
    assert [e["record"] for e in second.report["errors"]] == [key]
    assert "dead-lettered after 1 attempt(s)" in second.report["errors"][0]["message"]

    execute(db, "UPDATE rep_progressions SET total_xp = 5 WHERE name = 'refused'")
    third = cli("--mapping", M)
    assert third.exit_code == 0, third.output
    assert third.mapping(M)["push"]["created"] == 1 and third.report["errors"] == []
    assert sorted(r["name"] for r in twenty.records()) == ["Rep 0", "refused"]
