"""A push sends its write batches several at a time (after the first, alone), and reads records
by id several at a time; whatever was written is recorded, also when a batch in flight fails."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from reconciler.emulators.airtable import AirtableEmulator
from reconciler.emulators.twenty import TwentyEmulator
from reconciler.remotes.base import IN_FLIGHT, at_once
from tests.helpers import execute, rows, seed_leads, twenty_writes

M = "rep_progressions"
BATCH = "/rest/batch/repProgressions"
HOLD = 0.5
NEW_ROWS = "INSERT INTO rep_progressions (name) SELECT 'rep ' || g FROM generate_series(1, 300) g"


def test_at_once__results_in_order_and_several_at_a_time() -> None:
    running, most = 0, 0
    lock = threading.Lock()

    def work(n: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return n * n

    assert at_once(work, list(range(10))) == [n * n for n in range(10)]
    assert 1 < most <= IN_FLIGHT


def test_at_once__every_item_ends_before_the_first_error_is_raised() -> None:
    done: list[int] = []

    def work(n: int) -> int:
        if n == 1:
            raise ValueError("one")
        time.sleep(0.05)
        done.append(n)
        return n

    with pytest.raises(ValueError, match="one"):
        at_once(work, [0, 1, 2, 3])
    assert sorted(done) == [0, 2, 3]


def test_batches_go_several_at_once_after_the_first(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any
) -> None:
    """Five batches of creates, each held on the server for HOLD seconds: the first is answered
    before any other is sent, and the other four are held together (sent one after another,
    their answers would be HOLD apart)."""
    execute(db, NEW_ROWS)
    twenty.faults.delay(HOLD, times=5, method="POST", path=BATCH)

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert result.mapping(M)["push"]["created"] == 300
    assert len(twenty.records()) == 300
    first, *others = sorted(r.at for r in twenty_writes(twenty))
    assert len(others) == 4
    assert min(others) - first >= HOLD  # sent after the first was answered
    assert max(others) - min(others) < HOLD  # held on the server at the same time


def test_a_failing_batch_in_flight__what_the_others_wrote_is_recorded(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any
) -> None:
    """The second batch is refused (the key, so the mapping stops); the batches sent with it
    are answered and recorded, not lost: every record Twenty holds is linked to its row, and
    the next run creates only what is missing."""
    execute(db, NEW_ROWS)
    twenty.faults.delay(0.0, times=1, method="POST", path=BATCH)  # the first batch: no fault
    twenty.faults.fail(401, method="POST", path=BATCH)

    result = cli("--mapping", M)

    assert result.exit_code == 3, result.output
    held = {r["id"] for r in twenty.records()}
    linked = {str(r["twenty_id"]) for r in rows(db, M) if r["twenty_id"] is not None}
    assert len(held) == 240  # five batches of 60 were sent; one was refused
    assert linked == held
    assert result.mapping(M)["push"]["created"] == 240

    again = cli("--mapping", M)

    assert again.exit_code == 0, again.output
    assert again.mapping(M)["push"]["created"] == 60
    assert len(twenty.records()) == 300
    assert {str(r["twenty_id"]) for r in rows(db, M)} == {r["id"] for r in twenty.records()}


def test_airtable_writes_go_one_at_a_time(
    airtable: AirtableEmulator, db: sa.Engine, cli: Any
) -> None:
    """At Airtable the rate limit, not the answers, bounds a push, and a sixth request within a
    second locks the base for 30 s: three batches, each held on the server, are sent one after
    the other (each answered before the next is sent)."""
    seed_leads(airtable, 30)
    assert cli("--mapping", "leads").exit_code == 0
    execute(db, "UPDATE leads SET notes = 'called back'")
    airtable.reset_log()
    airtable.faults.delay(HOLD / 2, times=3, method="PATCH")

    result = cli("--mapping", "leads")

    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["push"]["updated"] == 30
    answered = sorted(r.at for r in airtable.requests if r.method == "PATCH")
    assert len(answered) == 3
    assert all(b - a >= HOLD / 2 for a, b in itertools.pairwise(answered))
