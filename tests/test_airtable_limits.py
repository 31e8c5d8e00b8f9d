"""Airtable's limits: after a 429 nothing is sent to the base for 30 seconds (on a simulated
clock against the emulator's real 5/s limit and 30 s lockout, and after a 429 of any other
shape; longer when ``Retry-After`` asks, up to 300 s), and a spent monthly plan stops the
mapping at once."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from time import sleep
from typing import Any

import pytest
import requests
import sqlalchemy as sa
import urllib3

from reconciler.config import AirtableTarget, Secret
from reconciler.emulators.airtable import AirtableEmulator
from reconciler.model import LEADS
from reconciler.remotes import airtable_http
from reconciler.remotes.airtable import AirtableRemote
from reconciler.remotes.base import RetryPolicy, Transient
from reconciler.remotes.pacing import JITTER_GUARD, REFUSED_GUARD, Pacer, PacerPool
from tests.helpers import CountingPacer, execute, list_requests, seed_leads

Cli = Callable[..., Any]


class SimulatedTime:
    """A clock that moves only when something sleeps, and moves the emulator's along with it."""

    def __init__(self, em: AirtableEmulator) -> None:
        self.em = em
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.em.clock.advance(seconds)


@pytest.fixture
def strict_airtable() -> Iterator[AirtableEmulator]:
    """An emulator with Airtable's real limit: 5 requests a second, then 30 s refused."""
    em = AirtableEmulator(rate_limit=5, lockout=30.0)
    em.start()
    yield em
    em.stop()


def test_rate_limit__after_a_429_nothing_is_sent_to_the_base_for_30_seconds(
    strict_airtable: AirtableEmulator,
) -> None:
    """Allowed 10 requests a second, the tool trips the base's limit once; then it waits the
    whole lockout instead of knocking with its backoff, and every page arrives."""
    em = strict_airtable
    seed_leads(em, 650)  # 7 pages, plus the schema request
    remote, answers = _paced_remote(em, 10.0)

    remote.prepare(None)
    records = [record for page in remote.list_changed(None) for record in page]
    remote.close()

    assert len({r.id for r in records}) == 650
    _assert_held_once(em, remote, answers)
    assert [status for _, status in answers].count(200) == 8


@pytest.mark.parametrize(
    ("body", "content_type", "headers"),
    [
        ("", "text/plain", {}),
        (
            json.dumps({"errors": [{"error": "TOO_MANY_REQUESTS", "message": "Slow down"}]}),
            "application/json",
            {},
        ),
        ("<html><title>429 Too Many Requests</title></html>", "text/html", {"Retry-After": "5"}),
    ],
    ids=["empty", "another-type", "proxy-retry-after-5"],
)
def test_rate_limit__any_429_holds_the_base_for_30_seconds(
    airtable: AirtableEmulator, body: str, content_type: str, headers: dict[str, str]
) -> None:
    """Not only Airtable's ``RATE_LIMIT_REACHED``: whatever a 429 carries (another type, no
    body, a proxy's page asking for 5 s), the base is held for the lockout."""
    seed_leads(airtable, 250)  # 3 pages
    remote, answers = _paced_remote(airtable, 5.0)
    remote.prepare(None)
    listing = f"/v0/{airtable.base_id}/"
    airtable.faults.raw(429, body, content_type=content_type, headers=headers, path=listing)

    records = [record for page in remote.list_changed(None) for record in page]
    remote.close()

    assert len({r.id for r in records}) == 250
    _assert_held_once(airtable, remote, answers)


@pytest.mark.parametrize(
    ("retry_after", "held"), [("60", 60.0), ("1000", 300.0)], ids=["60", "1000-capped-at-300"]
)
def test_rate_limit__a_longer_retry_after_holds_the_base_that_long_up_to_300_seconds(
    airtable: AirtableEmulator, retry_after: str, held: float
) -> None:
    """A 429 whose ``Retry-After`` asks for more than the 30 s lockout is honoured, up to five
    minutes."""
    seed_leads(airtable, 250)  # 3 pages
    remote, answers = _paced_remote(airtable, 5.0)
    remote.prepare(None)
    body = json.dumps({"errors": [{"error": "RATE_LIMIT_REACHED", "message": "Slow down"}]})
    airtable.faults.raw(
        429,
        body,
        content_type="application/json",
        headers={"Retry-After": retry_after},
        path=f"/v0/{airtable.base_id}/",
    )

    records = [record for page in remote.list_changed(None) for record in page]
    remote.close()

    assert len({r.id for r in records}) == 250
    assert airtable.count(status=429) == 1 and remote.stats.throttled == 1
    refused_at = next(at for at, status in answers if status == 429)
    after = [at for at, status in answers if at > refused_at]
    assert min(after) - refused_at == pytest.approx(held)


def _paced_remote(
    em: AirtableEmulator, rate: float
) -> tuple[AirtableRemote, list[tuple[float, int]]]:
    """A remote paced at ``rate`` on a simulated clock, and the (time, status) of its answers."""
    time = SimulatedTime(em)
    target = AirtableTarget(Secret(em.token), "AIRTABLE_TOKEN", em.base_id, em.url, rate)
    remote = AirtableRemote(
        LEADS,
        target,
        RetryPolicy(sleep=time.sleep),
        pacer=Pacer.rate(rate, clock=time.clock, sleep=time.sleep),
    )
    answers: list[tuple[float, int]] = []
    remote._api.session.hooks["response"].append(
        lambda response, *args, **kwargs: answers.append((time.now, response.status_code))
    )
    return remote, answers


def _assert_held_once(
    em: AirtableEmulator, remote: AirtableRemote, answers: list[tuple[float, int]]
) -> None:
    """One 429, and nothing sent to the base for 30 s after it."""
    assert em.count(status=429) == 1 and remote.stats.throttled == 1
    refused_at = next(at for at, status in answers if status == 429)
    after = [at for at, status in answers if at > refused_at]
    assert after and min(after) >= refused_at + 30.0


def test_rate_limit__the_answer_is_read_in_its_real_errors_array_shape(
    strict_airtable: AirtableEmulator,
) -> None:
    """The 429 body is ``{"errors": [{"error": "RATE_LIMIT_REACHED", ...}]}``, not the usual
    ``{"error": {...}}``: the tool recognises it (and holds for the lockout)."""
    from reconciler.remotes.airtable_http import answer

    em = strict_airtable
    url = f"{em.url}/v0/{em.base_id}/Leads"
    headers = {"Authorization": f"Bearer {em.token}"}
    responses = [requests.get(url, headers=headers, timeout=5) for _ in range(6)]
    with pytest.raises(Transient) as refused:
        answer(responses[-1])
    assert refused.value.hold == 30.0 and refused.value.throttled


def test_billing_limit__stops_the_mapping_at_once_naming_the_monthly_limit(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    seed_leads(airtable, 2)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'unsent'")
    airtable.billing_limit_exceeded = True
    airtable.reset_log()

    result = cli()

    assert result.exit_code == 3, result.output
    (error,) = result.report["errors"]
    assert "monthly API call limit" in error["message"]
    assert "PUBLIC_API_BILLING_LIMIT_EXCEEDED" in error["message"]
    assert result.mapping("leads")["api"] == {"requests": 1, "retries": 0, "throttled": 0}
    assert list_requests(airtable) == 1 and airtable.count("PATCH") == 0
    airtable.billing_limit_exceeded = False  # a new month, or a bigger plan
    later = cli()
    assert later.exit_code == 0 and later.mapping("leads")["push"]["updated"] == 2


def test_pacing__a_request_whose_bytes_leave_late_is_spaced_from_when_they_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request the pacer let go may leave well after (a loaded host, a new connection's
    handshake): the transport stamps each request once its bytes are written, so the next
    window's requests are spaced from when it left, and the base's limit is never crossed. A
    stamp taken as the transport took it would let the tenth request reach the base 0.7 s
    after the fifth: six in a second, and a 429."""
    strict_airtable = AirtableEmulator(rate_limit=5, lockout=0.5)  # a 429 fails it fast
    strict_airtable.start()
    monkeypatch.setattr(airtable_http, "LOCKOUT_SECONDS", 0.5)
    seed_leads(strict_airtable, 950)  # the schema request, then 10 pages
    writes: list[int] = []
    write = urllib3.connection.HTTPConnection.request

    def late_fifth(self: Any, *args: Any, **kwargs: Any) -> None:
        writes.append(1)
        if len(writes) == 5:
            sleep(0.3)  # held between the pacer and the wire
        write(self, *args, **kwargs)

    monkeypatch.setattr(urllib3.connection.HTTPConnection, "request", late_fifth)
    target = AirtableTarget(
        Secret(strict_airtable.token),
        "AIRTABLE_TOKEN",
        strict_airtable.base_id,
        strict_airtable.url,
        5.0,
    )
    pacer = CountingPacer()
    remote = AirtableRemote(LEADS, target, RetryPolicy(sleep=sleep), pacer=pacer)

    try:
        remote.prepare(None)
        pages = list(remote.list_changed(None))
    finally:
        remote.close()
        strict_airtable.stop()

    assert len(pages) == 10 and len(writes) == 11
    assert strict_airtable.count(status=429) == 0 and remote.stats.throttled == 0
    assert pacer.let_go == pacer.left == 11  # each request stamped once, once written


def test_rate_limit__a_429_at_the_pace_widens_the_guard_for_this_run_and_the_next_week(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airtable refused a request though the run kept to its limit: the path needs more room
    between windows than the guard gave. The pacer widens its guard at once, the run keeps it
    and says so, and the runs of the next week start from it instead of drawing another
    30-second lockout; after a week without a refusal, runs start from the narrow guard
    again."""
    monkeypatch.setattr(airtable_http, "LOCKOUT_SECONDS", 0.2)  # the lockout, shortened
    pacers: list[Pacer] = []
    shared = PacerPool.get

    def get(pool: PacerPool, key: tuple[str, ...], pacer: Pacer) -> Pacer:
        pacers.append(shared(pool, key, pacer))
        return pacers[-1]

    monkeypatch.setattr(PacerPool, "get", get)
    seed_leads(airtable, 3)
    body = json.dumps({"errors": [{"error": "RATE_LIMIT_REACHED", "message": "Slow down"}]})
    airtable.faults.raw(429, body, content_type="application/json", path=f"/v0/{airtable.base_id}/")

    first = cli()
    assert first.exit_code == 0, first.output
    assert first.mapping("leads")["api"]["throttled"] == 1
    assert pacers[-1].guard == REFUSED_GUARD
    (note,) = [line for line in first.stderr.splitlines() if "(429)" in line]
    assert note.startswith("note: leads: ")
    assert "Airtable refused 1 request for their rate (429)" in note
    assert "the next week's runs keep that pace" in note and "AIRTABLE_RATE_LIMIT" in note
    with db.connect() as conn:
        kept = conn.execute(
            sa.text("SELECT pacing FROM reconciler.remote_state WHERE mapping = 'leads'")
        ).scalar()
    assert kept == {"guard": REFUSED_GUARD}

    second = cli()
    assert second.exit_code == 0 and second.mapping("leads")["api"]["throttled"] == 0
    assert pacers[-1].guard == REFUSED_GUARD
    assert "note:" not in second.stderr

    execute(db, "UPDATE reconciler.remote_state SET pacing_saved_at = now() - interval '8 days'")
    third = cli()
    assert third.exit_code == 0
    assert pacers[-1].guard == JITTER_GUARD
