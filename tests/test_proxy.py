"""A proxy named by the environment carries the Airtable requests, as requests itself would
send them (``HTTP_PROXY``/``HTTPS_PROXY``, ``NO_PROXY``): the remote prepares each request once
and sends it with the environment's settings, found once per origin."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers import seed_leads


class ForwardingProxy(ThreadingHTTPServer):
    """A plain HTTP proxy: takes requests for absolute URLs, forwards them, logs each."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.seen: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(BaseHTTPRequestHandler):
    server: ForwardingProxy

    def _forward(self) -> None:
        self.server.seen.append(f"{self.command} {self.path}")
        target = urlsplit(self.path)  # a proxy is sent the absolute URL
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"}
        path = target.path + (f"?{target.query}" if target.query else "")
        upstream.request(self.command, path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        upstream.close()

    do_GET = do_POST = do_PATCH = _forward

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[ForwardingProxy]:
    server = ForwardingProxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _proxy_only(monkeypatch: pytest.MonkeyPatch, **settings: str) -> None:
    """These proxy settings and no other (lowercase names win over uppercase ones)."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)


def test_airtable_requests_go_through_the_proxy_the_environment_names(
    airtable, db, cli, proxy, monkeypatch
) -> None:
    seed_leads(airtable, 3)
    _proxy_only(monkeypatch, HTTP_PROXY=proxy.url)
    result = cli("--mapping", "leads")
    assert result.exit_code == 0, result.output
    assert len(proxy.seen) == len(airtable.requests) > 0
    assert all(line.split()[1].startswith(airtable.url) for line in proxy.seen)


def test_no_proxy_sends_the_airtable_requests_straight_to_the_server(
    airtable, db, cli, proxy, monkeypatch
) -> None:
    seed_leads(airtable, 3)
    _proxy_only(monkeypatch, HTTP_PROXY=proxy.url, NO_PROXY="127.0.0.1")
    result = cli("--mapping", "leads")
    assert result.exit_code == 0, result.output
    assert airtable.requests and proxy.seen == []
