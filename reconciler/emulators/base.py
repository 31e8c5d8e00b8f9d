"""Shared plumbing of the local API emulators.

Each emulator is a real HTTP server on loopback (``ThreadingHTTPServer`` in a daemon thread) with:

* bearer-token auth,
* a request log tests can count (``server.requests``, ``server.count(...)``),
* injectable faults (``server.faults.fail(503, times=3)``, ``.delay(...)``, ``.drop(...)``,
  ``.raw(...)`` for bodies that are not JSON, ``.cut(...)`` for a connection dropped mid-body:
  :mod:`reconciler.emulators.faults`),
* optional per-request latency (to make benchmarks realistic),
* an injectable clock (``server.clock``) for server-maintained timestamps, so tests can skew it;
  the ``Date`` header of every answer follows it, as both real services send one (RFC 9110
  section 6.6.1: an origin server with a clock MUST send ``Date``),
* a rate limiter hook that the concrete emulator fills in (:mod:`reconciler.emulators.limits`).

Concrete emulators implement :meth:`EmulatorServer.dispatch` (routing) and
:meth:`EmulatorServer.admit` (rate limiting) and :meth:`EmulatorServer.error` (error body shape).
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import gc
import json
import re
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from reconciler.emulators.faults import Faults


@dataclass(frozen=True)
class Request:
    """One parsed HTTP request as the emulator sees it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any

    def param(self, name: str) -> str | None:
        """The first value of a query parameter, or None."""
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(frozen=True)
class Response:
    """What the emulator answers: a status, a JSON body (or None) and extra headers.

    ``raw`` replaces the JSON body with these bytes as they are (an HTML error page, a truncated
    document), sent with ``content_type``; ``cut`` sends the headers and only the first half of
    the body, then closes the connection (a connection lost mid-body).
    """

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str = "application/json; charset=utf-8"
    cut: bool = False


@dataclass(frozen=True)
class LoggedRequest:
    """A request in the log, with the status it was answered with (0 for a dropped connection)."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int
    at: float


class Clock:
    """The emulator's clocks: wall time (real UTC plus an adjustable skew, or a frozen instant)
    for the timestamps it stamps, and monotonic time (real plus whatever tests ``advance``) for
    rate limits and expiry, so tests move time forward instead of sleeping."""

    def __init__(self) -> None:
        self.skew = timedelta(0)
        self.frozen: datetime | None = None
        self.advanced = 0.0

    def now(self) -> datetime:
        """The current server time (aware UTC)."""
        base = self.frozen if self.frozen is not None else datetime.now(UTC)
        return base + self.skew

    def monotonic(self) -> float:
        """Seconds on the server's monotonic clock."""
        return time.monotonic() + self.advanced

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass for rate limits, lockouts and iterator expiry."""
        self.advanced += seconds

    def reset(self) -> None:
        """Back to real time."""
        self.skew, self.frozen, self.advanced = timedelta(0), None, 0.0


class EmulatorServer(ABC):
    """A strict local API server running in a background thread.

    Args:
        token: the bearer token the server accepts.
        latency: seconds to wait before answering each request (simulated network latency).
    """

    def __init__(self, token: str, *, latency: float = 0.0) -> None:
        self.token = token
        self.latency = latency
        self.clock = Clock()
        self.faults = Faults()
        self.requests: list[LoggedRequest] = []
        self.lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:PORT``) of the running server."""
        if self._httpd is None:
            raise RuntimeError("emulator is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self, port: int = 0) -> str:
        """Start serving on loopback (an ephemeral port unless given); returns the base URL."""
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> EmulatorServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request log -----------------------------------------------------------------------------

    def count(
        self, method: str | None = None, path: str | None = None, status: int | None = None
    ) -> int:
        """How many logged requests match the method, path prefix and status given."""
        with self.lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method)
                and (path is None or r.path.startswith(path))
                and (status is None or r.status == status)
            )

    def reset_log(self) -> None:
        """Empty the request log."""
        with self.lock:
            self.requests.clear()

    # -- hooks for the concrete emulators --------------------------------------------------------

    @abstractmethod
    def dispatch(self, request: Request) -> Response:
        """Route and answer one authenticated, admitted request."""

    @abstractmethod
    def admit(self, now: float) -> Response | None:
        """Rate limiting: None to let the request through, else the refusal to answer."""

    @abstractmethod
    def error(self, status: int, kind: str, message: str) -> Response:
        """An error response in the API's own body shape."""

    def authorized(self, request: Request) -> bool:
        """Whether the request carries the expected bearer token."""
        return request.headers.get("authorization") == f"Bearer {self.token}"

    def rate_limited(self, request: Request) -> bool:
        """Whether the request counts against the rate limit (every request, unless the API
        exempts some)."""
        return True

    # -- the pipeline every request goes through -------------------------------------------------

    def handle(self, request: Request) -> Response | None:
        """Faults, latency, auth, rate limit, then dispatch. None means: drop the connection."""
        fault = self.faults.take(request.method, request.path, request.body, request.query)
        if fault is not None and fault.kind == "delay":
            (fault.until or threading.Event()).wait(fault.seconds)  # a fresh event: all of it
        # A rate limit counts a request when it arrives (Airtable's 5 a second per base,
        # https://airtable.com/developers/web/api/rate-limits; Twenty's bucket at Date.now() as
        # the request is handled, packages/twenty-server/src/engine/core-modules/throttler/
        # throttler.service.ts). The simulated latency is the network's round trip, so the
        # request is stamped before it, not when this thread wakes from it:
        # a wake-up delayed by the host's load (or a collection in this process) must not read
        # as two requests arriving closer together than they were sent.
        arrived = self.clock.monotonic()
        if self.latency:
            time.sleep(self.latency)
        if fault is not None and fault.kind == "drop":
            return None
        if fault is not None and fault.kind == "status":
            if fault.body is not None:
                return Response(fault.status, fault.body)
            return self.error(fault.status, "INJECTED_FAULT", f"injected fault {fault.status}")
        if fault is not None and fault.kind == "raw":
            return Response(
                fault.status, raw=fault.raw, content_type=fault.content_type, headers=fault.headers
            )
        if not self.authorized(request):
            return self.error(401, "AUTHENTICATION_REQUIRED", "Authentication required")
        refusal = self.admit(arrived) if self.rate_limited(request) else None
        if refusal is not None:
            return refusal
        with self.lock:
            response = self.dispatch(request)
        if fault is not None and fault.kind == "cut":
            return dataclasses.replace(response, cut=True)
        return response

    def log(self, request: Request, status: int) -> None:
        """Append a request to the log."""
        with self.lock:
            self.requests.append(
                LoggedRequest(
                    request.method, request.path, request.query, request.body, status, time.time()
                )
            )


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """No garbage collection in this process while a run talks to emulators it hosts.

    The emulators serve from threads of the process that starts them, and stamp each request's
    arrival as their thread reads it. A full collection of a process holding much (a test
    session, or a bench holding every seeded record: pauses of 0.1-0.56 s were seen) stops
    every thread: requests that arrived during it are stamped late, so one sent a paced second
    after one of them can look too close (a 429 and a lockout no real service, in a process of
    its own, would give), and requests meant to be in flight together go apart. What the run
    allocates is freed by reference counting; collection resumes after it.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _make_handler(server: EmulatorServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # answer at once, not after the client's delayed ACK

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the default stderr access log."""

        def date_time_string(self, timestamp: float | None = None) -> str:
            """The ``Date`` header, from the emulator's clock (skew included), not the host's."""
            return email.utils.format_datetime(server.clock.now(), usegmt=True)

        def _serve(self) -> None:
            request, bad_json = self._read()
            response = (
                server.error(400, "INVALID_REQUEST_BODY", "Request body is not valid JSON")
                if bad_json
                else server.handle(request)
            )
            server.log(request, 0 if response is None else response.status)
            if response is None:
                self._drop()  # the connection dropped, no answer
            else:
                self._answer(response)

        def _read(self) -> tuple[Request, bool]:
            """The request, and whether its body was meant as JSON but is not."""
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
                bad_json = False
            except ValueError:
                body, bad_json = raw.decode("utf-8", "replace"), True
            request = Request(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            return request, bad_json

        def _answer(self, response: Response) -> None:
            """Send the answer; a ``cut`` one stops halfway and drops the connection."""
            if response.raw is not None:
                payload = response.raw
            else:
                payload = b"" if response.body is None else json.dumps(response.body).encode()
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if response.cut:
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self._drop()
                return
            self.wfile.write(payload)

        def _drop(self) -> None:
            """Close the connection at once."""
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    return Handler


def iso_ms(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, as both remote APIs render datetimes.

    The year has four digits (``0001-…`` for year 1): Twenty answers JavaScript ``Date``s,
    which JSON writes with ``toISOString``, "always 24 or 27 characters long"
    (https://developer.mozilla.org/en-US/docs/Web/JavaScript/Reference/Global_Objects/Date/toISOString;
    ECMAScript ``sec-date.prototype.toisostring``); Airtable's "UTC date time string"
    (https://airtable.com/developers/web/api/field-model#dateandtime) is ISO 8601, whose years
    have four digits. ``isoformat`` writes them so; glibc's ``strftime("%Y")`` writes ``1``.
    """
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def iso_us(moment: datetime) -> str:
    """ISO-8601 UTC with microseconds and ``Z``: a Postgres ``timestamptz`` as stored."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


_MICROSECONDS_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})\d{3}Z$")


def js_dates(value: Any) -> Any:
    """``value`` with every microsecond ISO stamp in it cut to the millisecond, as a stored
    ``timestamptz`` reaches a Node server's JSON through a JavaScript ``Date``."""
    if isinstance(value, str):
        match = _MICROSECONDS_RE.match(value)
        return f"{match.group(1)}Z" if match else value
    if isinstance(value, dict):
        return {k: js_dates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [js_dates(v) for v in value]
    return value


def parse_iso(text: str) -> datetime:
    """Parse an ISO-8601 datetime (``Z`` or offset) into aware UTC; raises ValueError."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"datetime without a time zone: {text!r}")
    return value.astimezone(UTC)
