"""Whatever a Twenty server (or the proxy in front of it) answers, a run ends in a per-record or
per-mapping error, never a traceback, and nothing is lost."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from reconciler.config import Secret, TwentyTarget
from reconciler.emulators.twenty import TwentyEmulator
from reconciler.model import REP_PROGRESSIONS
from reconciler.remotes.base import PushItem, RetryPolicy
from reconciler.remotes.twenty import TwentyRemote
from tests.helpers import execute, rows, seed_progressions, twenty_writes

M = "rep_progressions"
SIGN_IN = "<!doctype html><html><head><title>Sign in &ndash; Acme SSO</title></head><body>x</body>"
NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad "
    "Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
TOO_LARGE = "<html><title>413 Request Entity Too Large</title></html>"
JSON = "application/json"


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_RETRY_BASE_SECONDS", "0.001")


def _synced_and_edited(em: TwentyEmulator, db: sa.Engine, cli: Any, count: int = 3) -> list[str]:
    """Records pulled once, then edited locally (total_xp = 77); the request log emptied."""
    ids = seed_progressions(em, count)
    assert cli("--mapping", M).exit_code == 0
    execute(db, "UPDATE rep_progressions SET total_xp = 77")
    em.reset_log()
    return ids


def _one_error(result: Any) -> str:
    (error,) = result.report["errors"]
    message = str(error["message"])
    assert "\n" not in message and "<" not in message, message
    assert "Traceback" not in result.output
    return message


def _dead(db: sa.Engine) -> list[bool]:
    with db.connect() as conn:
        return [bool(d) for (d,) in conn.execute(sa.text("SELECT dead FROM reconciler.failures"))]


def _retries_due_now(db: sa.Engine) -> None:
    execute(db, "UPDATE reconciler.failures SET next_attempt_at = now() - interval '1 second'")


# -- listings -------------------------------------------------------------------------------------


def test_listing__a_2xx_html_page_stops_the_mapping_in_one_line(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any
) -> None:
    """A URL pointing at another site (an SSO portal) answers 200 with a page, not JSON."""
    seed_progressions(twenty, 2)
    twenty.faults.raw(200, SIGN_IN, method="GET")

    result = cli("--mapping", M)

    assert result.exit_code == 3, result.output
    message = _one_error(result)
    assert "an HTML page ('Sign in \u2013 Acme SSO')" in message and "TWENTY_API_URL" in message
    assert result.mapping(M)["api"]["retries"] == 0
    assert rows(db, M) == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('{"data": {}}', "no list of records at data.repProgressions"),
        ('{"data": {"repProgressions": {"edges": []}}}', "no list of records"),
        ("[1, 2]", "no list of records"),
        ('{"data": {"repProgressions": [{"name": "x"}]}, "pageInfo": {}}', "without an id"),
        ('{"data": {"repProgressions": []}}', "no pageInfo.hasNextPage"),
        (
            '{"data": {"repProgressions": []}, "pageInfo": {"endCursor": "c"}}',
            "no pageInfo.hasNextPage",
        ),
        ('{"data": {"repProgressions": []}, "pageInfo": {"hasNextPage": true}}', "no endCursor"),
    ],
)
def test_listing__a_body_of_the_wrong_shape_stops_the_mapping(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any, body: str, says: str
) -> None:
    """Nothing of a page that is not a page is applied, nor taken for the end of the listing."""
    seed_progressions(twenty, 2)
    twenty.faults.raw(200, body, content_type=JSON, method="GET", path="/rest/repProgressions")

    result = cli("--mapping", M)

    assert result.exit_code == 3, result.output
    assert says in _one_error(result)
    assert rows(db, M) == []
    assert cli("--mapping", M).exit_code == 0  # the next run reads it all
    assert len(rows(db, M)) == 2


def test_proxy_error_page__retried_then_one_line_without_markup(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any, fast_retries: None
) -> None:
    seed_progressions(twenty, 1)
    twenty.faults.raw(502, NGINX_502, times=1000)

    result = cli("--mapping", M)

    assert result.exit_code == 3, result.output
    message = _one_error(result)
    assert "HTTP 502: an HTML page ('502 Bad Gateway')" in message
    assert result.mapping(M)["api"]["retries"] >= 1


def test_redirect__named_with_the_setting_to_fix_and_not_retried(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any
) -> None:
    """httpx does not follow redirects; a login page's redirect is a wrong TWENTY_API_URL."""
    seed_progressions(twenty, 1)
    twenty.faults.raw(302, "", headers={"Location": "https://sso.example.com/login"})

    result = cli("--mapping", M)

    assert result.exit_code == 3, result.output
    message = _one_error(result)
    assert "redirected to https://sso.example.com/login" in message
    assert "check TWENTY_API_URL" in message
    assert len(twenty.requests) == 1


def test_address_serving_no_twenty_route__named_with_the_setting_to_fix(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A path after the host that the server does not serve (a proxy's prefix given twice, a
    wrong one): the server answers 404 for the route, as Nest does for any it lacks."""
    seed_progressions(twenty, 1)
    monkeypatch.setenv("TWENTY_API_URL", twenty.url + "/crm")

    result = cli("--mapping", M)

    assert result.exit_code == 3, result.output
    message = _one_error(result)
    assert message.startswith("Twenty refused the listing: Twenty answered 404"), message
    assert f"is {twenty.url}/crm Twenty's address? check TWENTY_API_URL" in message


def test_connection_cut_mid_body__retried(twenty: TwentyEmulator, db: sa.Engine, cli: Any) -> None:
    """httpx raises RemoteProtocolError for a body cut short: the request is sent again."""
    seed_progressions(twenty, 3)
    twenty.faults.cut(times=1, method="GET")

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert result.mapping(M)["api"]["retries"] == 1
    assert len(rows(db, M)) == 3


def test_listing__a_408_is_retried(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any, fast_retries: None
) -> None:
    seed_progressions(twenty, 3)
    twenty.faults.fail(408, times=1, method="GET", path="/rest/repProgressions")

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert result.mapping(M)["api"]["retries"] == 1
    assert len(rows(db, M)) == 3


def test_connection_cut_on_every_answer__exit_3_naming_it(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any, fast_retries: None
) -> None:
    seed_progressions(twenty, 1)
    twenty.faults.cut(times=1000, method="GET")

    result = cli("--mapping", M)

    assert result.exit_code == 3, result.output
    assert "RemoteProtocolError" in _one_error(result)


# -- writes ---------------------------------------------------------------------------------------


def test_push__an_upsert_answer_cut_mid_body_is_sent_again_without_duplicates(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any
) -> None:
    """The cut write was applied; sending the upsert again changes nothing more."""
    _synced_and_edited(twenty, db, cli)
    execute(db, "INSERT INTO rep_progressions (name) VALUES ('fresh')")
    twenty.faults.cut(times=1, method="POST")

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert (result.mapping(M)["push"]["updated"], result.mapping(M)["push"]["created"]) == (3, 1)
    assert len(twenty_writes(twenty)) == 2
    assert len(twenty.records()) == 4
    assert {r["totalXp"] for r in twenty.records() if r["name"] != "fresh"} == {77}


def test_push__a_create_answered_already_exists_fails_for_a_retry_and_is_linked_next_run(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any
) -> None:
    """A server without batch upsert answers "Record already exists" to a create sent again
    after its answer was cut: the first one landed. The row fails for a retry, not
    dead-lettered, and the next run links it to that record, which ends the failure."""
    twenty.supports_upsert = False
    execute(db, "INSERT INTO rep_progressions (name) VALUES ('fresh')")
    twenty.faults.cut(times=1, method="POST")

    result = cli("--mapping", M)

    assert result.exit_code == 1, result.output
    assert "Record already exists" in _one_error(result)
    assert _dead(db) == [False]
    (created,) = twenty.records()
    _retries_due_now(db)
    again = cli("--mapping", M)
    assert again.exit_code == 0, again.output
    (row,) = rows(db, M)
    assert str(row["twenty_id"]) == created["id"]
    assert len(twenty.records()) == 1
    assert _dead(db) == []  # no failure left for `reconcile status` to count


@pytest.mark.parametrize(
    ("body", "content_type", "says"),
    [
        ("Created", "text/plain", "with 'Created' instead of JSON"),
        ('{"ok": true}', JSON, "did not return the record"),
        ('{"data": {"createRepProgressions": [{"name": "x"}]}}', JSON, "did not return"),
    ],
)
def test_push__an_unusable_upsert_answer_fails_its_records_for_a_retry(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any, body: str, content_type: str, says: str
) -> None:
    """Whether such a batch was written is unknown: each record fails alone, retryable (an
    upsert sent again is harmless), and the next run sends it."""
    _synced_and_edited(twenty, db, cli)
    twenty.faults.raw(201, body, content_type=content_type, method="POST")

    result = cli("--mapping", M)

    assert result.exit_code == 1, result.output
    assert result.mapping(M)["push"]["failed"] == 3
    assert all(says in e["message"] for e in result.report["errors"])
    assert _dead(db) == [False, False, False]
    _retries_due_now(db)
    again = cli("--mapping", M)
    assert again.exit_code == 0, again.output
    assert again.mapping(M)["push"]["updated"] == 3
    assert {r["totalXp"] for r in twenty.records()} == {77}


def test_push__a_redirect_stops_the_mapping_and_leaves_the_changes_pending(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any
) -> None:
    _synced_and_edited(twenty, db, cli)
    twenty.faults.raw(307, "", headers={"Location": "http://elsewhere/"}, method="POST")

    result = cli("--mapping", M)

    assert result.exit_code == 3, result.output
    assert "redirected to http://elsewhere/" in _one_error(result)
    assert cli("--mapping", M).exit_code == 0
    assert {r["totalXp"] for r in twenty.records()} == {77}


def test_push__a_key_whose_role_may_not_write_stops_the_mapping(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any
) -> None:
    """Twenty answers 403 to a valid key whose role lacks a permission: not a bad key."""
    _synced_and_edited(twenty, db, cli)
    twenty.faults.fail(403, method="POST")

    result = cli("--mapping", M)

    assert result.exit_code == 3, result.output
    message = _one_error(result)
    assert "refused the request (HTTP 403" in message and "role's permissions" in message
    assert result.mapping(M)["api"]["retries"] == 0
    assert _dead(db) == []


def test_push__413_splits_the_batch_until_it_fits(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any
) -> None:
    _synced_and_edited(twenty, db, cli, count=4)
    twenty.faults.raw(413, TOO_LARGE, method="POST")

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert result.mapping(M)["push"]["updated"] == 4
    assert len(twenty_writes(twenty)) == 3  # refused whole, then two halves
    assert {r["totalXp"] for r in twenty.records()} == {77}


def test_push__a_record_too_large_alone_fails_alone_and_is_not_retried_as_is(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any
) -> None:
    _synced_and_edited(twenty, db, cli, count=1)
    twenty.faults.raw(413, TOO_LARGE, method="POST")

    result = cli("--mapping", M)

    assert result.exit_code == 1, result.output
    message = _one_error(result)
    assert "too large (413: an HTML page ('413 Request Entity Too Large'))" in message
    assert _dead(db) == [True]  # it fails again until the row changes


def test_push__a_5xx_outlasting_the_retries_stops_the_mapping_and_loses_nothing(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any, fast_retries: None
) -> None:
    _synced_and_edited(twenty, db, cli)
    twenty.faults.fail(500, times=1000, method="POST")

    result = cli("--mapping", M)

    assert result.exit_code == 3, result.output
    assert "kept failing after retries: HTTP 500" in _one_error(result)
    assert _dead(db) == []
    twenty.faults.clear()
    assert cli("--mapping", M).exit_code == 0
    assert {r["totalXp"] for r in twenty.records()} == {77}


# -- one record too large among others (the transport decides by content) -------------------------


@pytest.fixture
def sizing_remote() -> Iterator[tuple[TwentyRemote, list[int]]]:
    """A remote whose server refuses any batch holding a name over 1,000 characters (413)."""
    sizes: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        batch = json.loads(request.content)
        sizes.append(len(batch))
        if any(len(r.get("name") or "") > 1000 for r in batch):
            return httpx.Response(413, text="Payload Too Large")
        stamp = {"createdAt": "2026-11-20T10:00:00.000Z", "updatedAt": "2026-11-20T10:00:00.000Z"}
        unsent = {f.remote: None for f in REP_PROGRESSIONS.fields}  # every field is answered
        return httpx.Response(
            201,
            json={"data": {"createRepProgressions": [{**unsent, **r, **stamp} for r in batch]}},
        )

    target = TwentyTarget(Secret("k"), "TWENTY_API_KEY", "http://twenty.test", 1e9)
    policy = RetryPolicy(sleep=lambda _: None)
    remote = TwentyRemote(REP_PROGRESSIONS, target, policy, transport=httpx.MockTransport(handler))
    yield remote, sizes
    remote.close()


def test_write__the_one_record_too_large_fails_alone(
    sizing_remote: tuple[TwentyRemote, list[int]],
) -> None:
    remote, sizes = sizing_remote
    names = ["a", "b", "c", "x" * 5000, "e"]
    items = [
        PushItem(i, str(uuid.uuid4()), {"name": name}, create=True) for i, name in enumerate(names)
    ]

    results = remote.write(items)

    assert [r.record is not None for r in results] == [True, True, True, False, True]
    failed = results[3]
    assert failed.error is not None and "too large (413" in failed.error
    assert failed.retryable is False
    assert sizes == [5, 2, 3, 1, 2, 1, 1]


# -- reconcile check ------------------------------------------------------------------------------


def test_check__a_redirect_or_a_page_instead_of_the_data_model_is_named(
    airtable: Any, twenty: TwentyEmulator, database_url: str, cli: Any
) -> None:
    twenty.faults.raw(302, "", headers={"Location": "https://sso.example.com/"}, method="GET")
    redirected = cli("check")
    twenty.faults.raw(200, SIGN_IN, method="GET")
    paged = cli("check")

    for result, says in (
        (redirected, "Twenty answered 302, redirected to https://sso.example.com/"),
        (
            paged,
            "Twenty answered 200 with an HTML page ('Sign in \u2013 Acme SSO') instead of JSON",
        ),
    ):
        assert result.exit_code == 3, result.output
        (line,) = [x for x in result.stdout.splitlines() if "twenty reachable" in x]
        assert line.startswith(f"✗ twenty reachable and API key accepted: {says}"), line
        assert "<" not in line
