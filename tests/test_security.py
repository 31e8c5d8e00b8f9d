"""Security: secrets never leave, record ids are validated before they reach a formula or a
filter, refused credentials stop the run naming the remote, TLS is always verified."""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from reconciler.config import load_settings
from reconciler.emulators.airtable import AirtableEmulator
from reconciler.emulators.base import EmulatorServer
from reconciler.emulators.twenty import TwentyEmulator
from reconciler.model import LEADS, REP_PROGRESSIONS
from reconciler.remotes.airtable import AirtableRemote
from reconciler.remotes.factory import build_remote
from reconciler.remotes.twenty import TwentyRemote, plain_http_transport
from tests.helpers import execute, rows, seed_leads, seed_progressions

M = "rep_progressions"
Cli = Callable[..., Any]
PACKAGE = Path(__file__).resolve().parents[1] / "reconciler"
INJECTIONS = [
    "x') OR TRUE() OR ('",
    "recAAAAAAAAAAAAAA' , TRUE(), '",
    "recAAAAAAAAAAAAAA\n",
    "00000000-0000-4000-8000-000000000001]",
    "00000000-0000-4000-8000-000000000001,id[neq]:0",
    "00000000-0000-4000-8000-000000000001\n",
]


def _request_text(em: EmulatorServer) -> str:
    """Everything the emulator was sent: paths, query strings and bodies."""
    return "\n".join(f"{r.path} {r.query} {r.body}" for r in em.requests)


@pytest.fixture
def password_url(
    database_url: str, db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """DATABASE_URL of a role that logs in with a password (so there is one to leak)."""
    role, password = f"sec_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    with db.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'")
    url = make_url(database_url).set(username=role, password=password)
    rendered = url.render_as_string(hide_password=False)
    assert password in rendered
    monkeypatch.setenv("DATABASE_URL", rendered)
    yield password
    with db.begin() as conn:
        conn.exec_driver_sql(f"DROP OWNED BY {role}")
        conn.exec_driver_sql(f"DROP ROLE {role}")


# -- secrets ---------------------------------------------------------------------------------------


def _database_text(db: sa.Engine) -> str:
    """Every row of every table in the reconciler's schema, as text."""
    with db.connect() as conn:
        tables = conn.execute(
            sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'reconciler'")
        ).scalars()
        return "\n".join(
            str(row)
            for table in list(tables)
            for row in conn.execute(sa.text(f"SELECT t::text FROM reconciler.{table} t"))
        )


def _files_text(folder: Path) -> str:
    return "\n".join(
        p.read_text(errors="replace")
        for p in folder.rglob("*")
        if p.is_file() and "pg" not in p.relative_to(folder).parts
    )


def test_secrets__never_in_output_reports_files_or_the_database(
    airtable: AirtableEmulator,
    twenty: TwentyEmulator,
    password_url: str,
    db: sa.Engine,
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Across successful, partial and failed runs and the history commands, neither token nor
    the database password shows anywhere: stdout, stderr, reports, files, database."""
    secrets = [airtable.token, twenty.token, password_url]
    seed_leads(airtable, 3)
    seed_progressions(twenty, 2)
    airtable.create("Leads", {"First Name": "Bad", "ICP Score": "high"}, validate=False)
    results = [cli("--json", "-v"), cli("-v"), cli("runs", "--json"), cli("log", "--json")]
    results.append(cli("check"))
    assert results[0].exit_code == 1, results[0].output  # the bad record fails alone
    monkeypatch.setenv("TWENTY_API_KEY", "wrong-key-" + twenty.token)
    results.append(cli("-v", "--mapping", M))
    assert results[-1].exit_code == 3
    url = make_url(str(load_settings().database_url.value))  # type: ignore[union-attr]
    monkeypatch.setenv(
        "DATABASE_URL", url.set(query={"host": str(tmp_path / "nowhere")}).render_as_string(False)
    )
    results.append(cli("-v"))
    assert results[-1].exit_code == 3 and "***" in results[-1].stderr

    seen = "\n".join(r.output for r in results)
    seen += _files_text(tmp_path) + _database_text(db)
    assert "Bad" in seen or "ICP Score" in seen  # the haystack is the real one
    for secret in secrets:
        assert secret not in seen


def test_secrets__settings_repr_hides_them(
    airtable: AirtableEmulator, twenty: TwentyEmulator, password_url: str
) -> None:
    """The resolved settings can be logged or printed whole without showing a secret."""
    settings = load_settings()
    text = repr(settings) + str(settings)
    for secret in (airtable.token, twenty.token, password_url):
        assert secret not in text
    for remote in (build_remote(LEADS, settings), build_remote(REP_PROGRESSIONS, settings)):
        assert airtable.token not in repr(remote) and twenty.token not in repr(remote)
        remote.close()


# -- record ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", INJECTIONS)
def test_record_ids__airtable_fetch_never_puts_an_invalid_id_in_a_formula(
    airtable: AirtableEmulator, bad: str
) -> None:
    """Only well-formed ids reach ``filterByFormula``; the valid ones are still fetched."""
    (good,) = seed_leads(airtable, 1)
    settings = load_settings()
    remote = build_remote(LEADS, settings)
    assert isinstance(remote, AirtableRemote)
    try:
        found = remote.fetch([bad, good])
    finally:
        remote.close()
    assert set(found) == {good}
    sent = _request_text(airtable)
    assert "TRUE()" not in sent and bad not in sent and "\\n" not in sent


@pytest.mark.parametrize("bad", INJECTIONS)
def test_record_ids__twenty_fetch_never_puts_an_invalid_id_in_a_filter(
    twenty: TwentyEmulator, bad: str
) -> None:
    """Only UUIDs reach the ``id[in]`` filter."""
    (good,) = seed_progressions(twenty, 1)
    remote = build_remote(REP_PROGRESSIONS, load_settings())
    assert isinstance(remote, TwentyRemote)
    try:
        found = remote.fetch([bad, good])
    finally:
        remote.close()
    assert set(found) == {good}
    filters = [q for r in twenty.requests for q in r.query.get("filter", [])]
    assert filters == [f"and(id[in]:[{good}],or(deletedAt[is]:NULL,deletedAt[is]:NOT_NULL))"]


@pytest.mark.parametrize("stage", ["both", "push"])
@pytest.mark.parametrize("bad", INJECTIONS[:3])
def test_record_ids__a_bad_local_id_fails_alone_and_never_reaches_airtable(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli, bad: str, stage: str
) -> None:
    """A leads row holding an injection as its record id is reported alone; the other rows'
    edits go through, and nothing of it is ever sent."""
    seed_leads(airtable, 3)
    assert cli().exit_code == 0
    execute(db, "INSERT INTO leads (airtable_record_id, notes) VALUES (:r, 'x')", r=bad)
    execute(db, "UPDATE leads SET notes = 'edited'")
    airtable.reset_log()

    result = cli("--stage", stage)

    assert result.exit_code == 1, result.output
    assert [e["record"] for e in result.report["errors"]] == [bad]
    assert result.mapping("leads")["push"]["updated"] == 3
    sent = _request_text(airtable)
    assert "TRUE()" not in sent and bad not in sent
    assert {r["fields"].get("Notes") for r in airtable.records("Leads")} == {"edited"}


def test_record_ids__a_bad_id_in_the_retry_queue_is_never_sent(
    airtable: AirtableEmulator, db: sa.Engine, cli: Cli
) -> None:
    """A pull retry whose stored record id is malformed is not put in a formula; the run
    goes on for every other record."""
    seed_leads(airtable, 2)
    execute(
        db,
        "INSERT INTO reconciler.failures (mapping, stage, record_key, remote_id, message, "
        "next_attempt_at) VALUES ('leads', 'pull', 'k', :r, 'old', now() - interval '1 hour')",
        r=INJECTIONS[0],
    )

    result = cli()

    assert result.exit_code in (0, 1), result.output
    assert len(rows(db)) == 2
    assert "TRUE()" not in _request_text(airtable)


# -- refused credentials ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mapping", "variable", "remote_name"),
    [("leads", "AIRTABLE_TOKEN", "Airtable"), (M, "TWENTY_API_KEY", "Twenty")],
)
def test_wrong_token__exit_3_naming_the_remote(
    airtable: AirtableEmulator,
    twenty: TwentyEmulator,
    database_url: str,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
    mapping: str,
    variable: str,
    remote_name: str,
) -> None:
    """A refused (expired, revoked, mistyped) token stops that mapping with exit 3; the
    message names the remote and the variable to check, and never the token."""
    monkeypatch.setenv(variable, "expired-token-value")

    result = cli("--mapping", mapping)

    assert result.exit_code == 3, result.output
    assert result.report["status"] == "failed"
    (error,) = result.report["errors"]
    assert remote_name in error["message"] and variable in error["message"]
    assert remote_name in result.stderr
    assert result.report_path is not None
    assert "expired-token-value" not in result.output + result.report_path.read_text()
    assert "Traceback" not in result.output


def test_wrong_token__one_remote_refused_the_other_still_syncs(
    airtable: AirtableEmulator,
    twenty: TwentyEmulator,
    db: sa.Engine,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Airtable refusing its token does not stop the Twenty mapping in the same run."""
    seed_progressions(twenty, 2)
    monkeypatch.setenv("AIRTABLE_TOKEN", "expired-token-value")

    result = cli()

    assert result.exit_code == 3, result.output
    assert len(rows(db, M)) == 2


# -- TLS -------------------------------------------------------------------------------------------

TLS_OFF = re.compile(
    r"verify\s*=\s*False|[\"']verify[\"']\s*:\s*False|CERT_NONE|check_hostname\s*=\s*False"
    r"|_create_unverified_context|disable_warnings|PYTHONHTTPSVERIFY|CURL_CA_BUNDLE"
)


def test_tls__verification_is_never_turned_off_in_the_package() -> None:
    """No source file of the package disables certificate or host name checks."""
    offenders = [
        f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if "emulators" not in path.parts
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if TLS_OFF.search(line)
    ]
    assert offenders == []


def test_tls__clients_are_built_with_verifying_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Airtable session verifies certificates; the Twenty client's SSL context requires a
    valid certificate for the right host name."""
    monkeypatch.setenv("AIRTABLE_TOKEN", "t")
    monkeypatch.setenv("AIRTABLE_BASE_ID", "appX")
    monkeypatch.setenv("TWENTY_API_KEY", "k")
    settings = load_settings()
    airtable = build_remote(LEADS, settings)
    twenty = build_remote(REP_PROGRESSIONS, settings)
    try:
        assert isinstance(airtable, AirtableRemote) and isinstance(twenty, TwentyRemote)
        assert airtable._api.session.verify is True
        context = twenty._client._transport._pool._ssl_context  # type: ignore[attr-defined]
        assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname is True
    finally:
        airtable.close()
        twenty.close()


def test_tls__a_plain_http_server_gets_a_context_that_trusts_no_certificate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Twenty server reached over plain HTTP costs no CA bundle: its client's context still
    requires a valid certificate for the right host name, and trusts none, so no TLS connection
    could ever go unverified."""
    monkeypatch.setenv("TWENTY_API_KEY", "k")
    monkeypatch.setenv("TWENTY_API_URL", "http://twenty.internal:3000")
    twenty = build_remote(REP_PROGRESSIONS, load_settings())
    try:
        assert isinstance(twenty, TwentyRemote)
        context = twenty._client._transport._pool._ssl_context  # type: ignore[attr-defined]
        assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname is True
        assert context.cert_store_stats()["x509_ca"] == 0
    finally:
        twenty.close()
    assert plain_http_transport("https://api.twenty.com") is None
    assert plain_http_transport("HTTPS://twenty.internal") is None


def _self_signed(folder: Path) -> ssl.SSLContext:
    """A server context with a throwaway self-signed certificate for 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a throwaway certificate")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@pytest.mark.parametrize("which", ["airtable", "twenty"])
def test_tls__an_untrusted_certificate_is_refused_before_any_request(
    which: str,
    database_url: str,
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """Behind HTTPS with a self-signed certificate the run fails with exit 3, and the server
    never receives a request (so the token never crossed an unverified connection)."""
    em: Any = request.getfixturevalue(which)
    server = em._httpd
    server.socket = _self_signed(tmp_path).wrap_socket(server.socket, server_side=True)
    secure = em.url.replace("http://", "https://")
    monkeypatch.setenv("AIRTABLE_API_URL" if which == "airtable" else "TWENTY_API_URL", secure)
    monkeypatch.setenv("RECONCILER_RETRY_BASE_SECONDS", "0.001")

    result = cli("--mapping", "leads" if which == "airtable" else M)

    assert result.exit_code == 3, result.output
    assert em.requests == []
