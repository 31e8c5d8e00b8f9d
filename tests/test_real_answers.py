"""Whole runs against whatever real servers (and the proxies in front of them) may answer: a
random mix of non-JSON and wrongly shaped 2xx bodies, HTML error pages, connections cut
mid-body, redirects, 413s, 5xx that outlast the retries and values of types the tool does not
know, thrown at both remotes at once. Every run ends with exit 0, 1 or 3, one-line messages and
no traceback; once the faults stop, every edit made before them arrives: nothing is lost."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.emulators.airtable import AirtableEmulator
from reconciler.emulators.twenty import TwentyEmulator
from tests.helpers import execute, reset_world, rows, seed_leads, seed_progressions

M = "rep_progressions"
HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body><h1>502</h1></body></html>"
SIGN_IN = "<!doctype html><html><head><title>Sign in</title></head><body>form</body></html>"
KINDS = (
    "not_json_2xx",
    "wrong_shape_2xx",
    "html_502",
    "cut",
    "redirect",
    "too_large",
    "outage_5xx",
    "drop",
)


@dataclass(frozen=True)
class Fault:
    """One kind of answer, on one remote, for some requests of one method."""

    remote: str  # airtable | twenty
    kind: str
    method: str  # GET | write
    times: int

    def install(self, em: Any) -> None:
        method = (
            self.method
            if self.method == "GET"
            else ("PATCH" if self.remote == "airtable" else "POST")
        )
        times = 10_000 if self.kind == "outage_5xx" else self.times
        faults = em.faults
        if self.kind == "not_json_2xx":
            faults.raw(200, "OK", times, content_type="text/plain", method=method)
        elif self.kind == "wrong_shape_2xx":
            faults.raw(
                200,
                json.dumps({"unexpected": True}),
                times,
                content_type="application/json",
                method=method,
            )
        elif self.kind == "html_502":
            faults.raw(502, HTML_502, times, method=method)
        elif self.kind == "cut":
            faults.cut(times, method=method)
        elif self.kind == "redirect":
            faults.raw(
                302,
                SIGN_IN,
                times,
                headers={"Location": "https://sso.example.com/login"},
                method=method,
            )
        elif self.kind == "too_large":
            faults.raw(
                413,
                "<html><title>413 Request Entity Too Large</title></html>",
                times,
                method=method,
            )
        elif self.kind == "outage_5xx":
            faults.fail(503, times, method=method)
        else:
            faults.drop(times, method=method)


FAULTS = st.builds(
    Fault,
    remote=st.sampled_from(["airtable", "twenty"]),
    kind=st.sampled_from(KINDS),
    method=st.sampled_from(["GET", "write"]),
    times=st.integers(1, 3),
)
SCENARIO = st.tuples(st.lists(FAULTS, min_size=1, max_size=4), st.booleans())


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_RETRY_BASE_SECONDS", "0.0001")


def _lines_ok(result: Any) -> None:
    assert result.exit_code in (0, 1, 3), result.output
    assert "Traceback" not in result.output
    # Every answer is anticipated: none may end as a crash reported as an internal error.
    fatal = result.report.get("message") or ""
    assert "internal error" not in fatal and "\n" not in fatal, fatal
    for error in result.report["errors"]:
        message = str(error["message"])
        assert message and "\n" not in message and "<html" not in message.lower(), message
    for line in result.stderr.splitlines():
        assert len(line) < 2000, line


@pytest.mark.slow
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(SCENARIO)
def test_real_answers__any_mix_ends_cleanly_and_loses_nothing(
    airtable: AirtableEmulator,
    twenty: TwentyEmulator,
    db: sa.Engine,
    cli: Any,
    fast: None,
    scenario: tuple[list[Fault], bool],
) -> None:
    faults, unknown_type = scenario
    reset_world(db, airtable, twenty)
    leads = seed_leads(airtable, 4)
    reps = seed_progressions(twenty, 4)
    assert cli().exit_code == 0
    # Edits on every side, made before the faults.
    execute(db, "UPDATE leads SET notes = 'local note' WHERE airtable_record_id = :r", r=leads[0])
    execute(db, "UPDATE rep_progressions SET streak_days = 41 WHERE twenty_id = :r", r=reps[0])
    airtable.update("Leads", leads[1], {"Status": "Remote status"})
    twenty.update(reps[1], {"currentRank": "E-9"})
    if unknown_type:  # a value of a shape the mapping's kind cannot hold
        airtable.update(
            "Leads", leads[2], {"Company": {"text": "x", "type": "upc"}}, validate=False
        )
    for fault in faults:
        fault.install(airtable if fault.remote == "airtable" else twenty)

    _lines_ok(cli())

    airtable.faults.clear()
    twenty.faults.clear()
    if unknown_type:
        airtable.update("Leads", leads[2], {"Company": "Fixed"})
    execute(db, "UPDATE reconciler.failures SET next_attempt_at = now(), dead = false")
    clean = cli()
    assert clean.exit_code == 0, clean.output
    assert airtable.get("Leads", leads[0])["fields"].get("Notes") == "local note"
    assert twenty.get(reps[0])["streakDays"] == 41
    local_leads = {r["airtable_record_id"]: r for r in rows(db)}
    local_reps = {str(r["twenty_id"]): r for r in rows(db, M)}
    assert local_leads[leads[1]]["status"] == "Remote status"
    assert local_reps[reps[1]]["current_rank"] == "E-9"
    if unknown_type:
        assert local_leads[leads[2]]["company"] == "Fixed"
    assert len(rows(db)) == 4 and len(rows(db, M)) == 4
    assert len(airtable.records("Leads")) == 4 and len(twenty.records()) == 4
