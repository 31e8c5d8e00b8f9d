"""Faults an emulator injects into the requests it serves (``server.faults``): an error status,
a held request, a dropped connection, a body that is not JSON, a body cut off midway."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Fault:
    kind: str  # "status" | "delay" | "drop" | "raw" | "cut"
    times: int
    status: int = 503
    body: Any = None
    seconds: float = 0.0
    method: str | None = None
    path: str | None = None
    raw: bytes = b""
    content_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    containing: str | None = None
    param: str | None = None
    param_text: str | None = None
    until: threading.Event | None = None  # a delay's end, when a test sets it

    def matches(
        self, method: str, path: str, body: Any, params: Mapping[str, Sequence[str]]
    ) -> bool:
        if self.method is not None and self.method != method:
            return False
        if self.param is not None:
            values = params.get(self.param)
            if values is None or not any((self.param_text or "") in v for v in values):
                return False
        if self.containing is not None and self.containing not in json.dumps(body):
            return False
        return self.path is None or path.startswith(self.path)


class Faults:
    """A queue of faults to inject; each fault applies to the next ``times`` matching requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[_Fault] = []

    def fail(
        self,
        status: int = 503,
        times: int = 1,
        *,
        body: Any = None,
        method: str | None = None,
        path: str | None = None,
        containing: str | None = None,
        param: str | None = None,
        param_text: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (and ``body``);
        ``containing`` narrows them to requests whose JSON body holds that text (a record id: a
        server that fails on one record's content, whatever batch it comes in), ``param`` to
        those carrying that query parameter (a server or proxy that refuses one), with
        ``param_text`` in its value when given (a formula using a function)."""
        self._add(
            _Fault(
                "status",
                times,
                status=status,
                body=body,
                method=method,
                path=path,
                containing=containing,
                param=param,
                param_text=param_text,
            )
        )

    def delay(
        self,
        seconds: float,
        times: int = 1,
        *,
        method: str | None = None,
        path: str | None = None,
        until: threading.Event | None = None,
    ) -> None:
        """Hold the next ``times`` matching requests for ``seconds`` before handling them; with
        ``until``, until that event is set (``seconds`` then bounds the hold).

        What it stands for: a server or network that answers late, so that a client's read
        timeout ends its wait while the request is still applied afterwards (RFC 9110 §9.2.2: a
        request may have been applied when no answer came; shared docs ``airtable-api.md``:
        pyairtable's ``Api(timeout=(connect, read))``). ``until`` is a test's control of the
        hold, modelling nothing more: a test releases a request once it has seen what it waits
        for, instead of guessing a duration (docs/fidelity.md, "Late and lost answers")."""
        fault = _Fault("delay", times, seconds=seconds, method=method, path=path, until=until)
        self._add(fault)

    def drop(self, times: int = 1, *, method: str | None = None, path: str | None = None) -> None:
        """Close the connection of the next ``times`` matching requests without answering."""
        self._add(_Fault("drop", times, method=method, path=path))

    def raw(
        self,
        status: int,
        body: bytes | str,
        times: int = 1,
        *,
        content_type: str = "text/html; charset=utf-8",
        headers: dict[str, str] | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with ``body`` sent as it is.

        What real servers and the proxies in front of them send besides their JSON: a load
        balancer's HTML error page (``raw(502, "<html>…")``), a 2xx whose body is not JSON or
        not the documented shape, a redirect to a login page (``raw(302, "", headers={"Location":
        …})``), a body-too-large answer (``raw(413, …)``).
        """
        data = body.encode() if isinstance(body, str) else body
        self._add(
            _Fault(
                "raw",
                times,
                status=status,
                raw=data,
                content_type=content_type,
                headers=dict(headers or {}),
                method=method,
                path=path,
            )
        )

    def cut(self, times: int = 1, *, method: str | None = None, path: str | None = None) -> None:
        """Handle the next ``times`` matching requests, but drop the connection halfway through
        sending the answer's body (the request's effect stands, as on a real server)."""
        self._add(_Fault("cut", times, method=method, path=path))

    def clear(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._queue.clear()

    def pending(self) -> int:
        """How many fault applications are still queued."""
        with self._lock:
            return sum(f.times for f in self._queue)

    def take(
        self, method: str, path: str, body: Any, params: Mapping[str, Sequence[str]] | None = None
    ) -> _Fault | None:
        """The fault that applies to this request (``params``: its query parameters), if any
        (consumes one application)."""
        with self._lock:
            for fault in self._queue:
                if fault.matches(method, path, body, params or {}):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._queue.remove(fault)
                    return fault
        return None

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._queue.append(fault)
