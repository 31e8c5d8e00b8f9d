"""The requests a run sent to the Airtable emulator, sent again alone by a bare HTTP client.

A run's listing time is what its requests take without the run around them: the same method,
path, parameters and body, one after the other on one keep-alive connection, each answer read
and decoded as JSON, and a listing's next page asked with the ``offset`` the previous answer
gave. Whatever the remote client does (field ids, formulas, ``POST …/listRecords``), the
replay sends what it sent.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests

from reconciler.emulators.base import LoggedRequest


@dataclass(frozen=True)
class Replayed:
    """What a replay took and got."""

    seconds: float
    requests: int
    records: int  # records in the answers


def replay(url: str, token: str, logged: Sequence[LoggedRequest]) -> Replayed:
    """Send ``logged`` again to the server at ``url``, one after the other."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    offset: str | None = None
    records = 0
    started = time.perf_counter()
    try:
        for request in logged:
            query: dict[str, Any] = {k: list(v) for k, v in request.query.items()}
            body = request.body
            if "offset" in query:
                query["offset"] = [offset]
            if isinstance(body, dict) and "offset" in body:
                body = {**body, "offset": offset}
            response = session.request(
                request.method, url + request.path, params=query, json=body, timeout=60
            )
            response.raise_for_status()
            answer = response.json()
            offset = answer.get("offset") if isinstance(answer, dict) else None
            records += len(answer.get("records", [])) if isinstance(answer, dict) else 0
        elapsed = time.perf_counter() - started
    finally:
        session.close()
    return Replayed(elapsed, len(logged), records)
