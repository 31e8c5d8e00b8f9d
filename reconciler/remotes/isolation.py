"""Writing a batch so that one bad record fails alone: a batch the remote refuses whole (4xx) or
keeps failing with 5xx is split until the record that sinks it is found; the rest is written."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

from reconciler.errors import RemoteUnavailable
from reconciler.records import WriteResult
from reconciler.remotes.base import PushItem, Rejected, Transient, server_error

Write = Callable[[Sequence[PushItem]], list[WriteResult]]  # one result per item
Once = Callable[[], AbstractContextManager[None]]  # inside, a 5xx answer is not retried


def write_isolating(items: Sequence[PushItem], send: Write) -> list[WriteResult]:
    """Write a batch; when the remote rejects it whole, split it until the bad record fails alone.

    Both remotes validate a batch as a whole, so one bad value would sink nine good ones.
    """
    try:
        return send(items)
    except Rejected as exc:
        if len(items) == 1:
            return [WriteResult(items[0].local_id, error=str(exc), retryable=exc.status >= 500)]
    middle = len(items) // 2
    return write_isolating(items[:middle], send) + write_isolating(items[middle:], send)


def through_server_errors(items: Sequence[PushItem], write: Write, once: Once) -> list[WriteResult]:
    """``write(items)``; a batch the server kept failing with 5xx through its retries is split
    as :func:`isolate_server_error` says."""
    try:
        return write(items)
    except RemoteUnavailable as exc:
        return isolate_server_error(items, exc, write, once)


def isolate_server_error(
    items: Sequence[PushItem],
    exc: RemoteUnavailable,
    write: Write,
    once: Once,
) -> list[WriteResult]:
    """The results of a batch the server kept failing with 5xx, when one of its records is the
    cause; raises ``exc`` when the remote itself is failing.

    A server may fail on one record's content (an error it does not turn into a 4xx), and would
    then fail every run's batch holding it: the mapping would stop each run, the rest never
    written. So each half is written once (``write``, which raises on a 5xx, inside ``once``: a
    5xx is not retried, the batch had its retries). When both halves fail with 5xx, the remote
    is failing, not a record, and ``exc`` is raised as before: an outage costs two requests
    more. Otherwise the failing half is split the same way, down to the record, which fails
    alone and retryable (a later run tries it again; it is dead-lettered if it keeps failing).
    A part whose own halves both fail fails whole, retryable.
    """
    if len(items) == 1 or not server_failed(exc):
        raise exc
    middle = len(items) // 2
    halves = (items[:middle], items[middle:])
    with once():
        parts = [_attempt(half, write) for half in halves]
        if all(isinstance(part, RemoteUnavailable) for part in parts):
            raise exc
        results: list[WriteResult] = []
        for half, part in zip(halves, parts, strict=True):
            if isinstance(part, RemoteUnavailable):
                part = _blamed(half, part, write, once)
            results += part
    return results


def _attempt(items: Sequence[PushItem], write: Write) -> list[WriteResult] | RemoteUnavailable:
    """The results of writing ``items``, or the 5xx failure that stopped it."""
    try:
        return write(items)
    except RemoteUnavailable as failed:
        if not server_failed(failed):
            raise
        return failed


def _blamed(
    items: Sequence[PushItem],
    failed: RemoteUnavailable,
    write: Write,
    once: Once,
) -> list[WriteResult]:
    """A part that failed while the other went through: split down to the record."""
    try:
        return isolate_server_error(items, failed, write, once)
    except RemoteUnavailable as again:
        if not server_failed(again):
            raise
        which = "this record" if len(items) == 1 else f"one or more of these {len(items)} records"
        error = f"{again}; the rest of its batch went through, so the server fails on {which}"
        return [WriteResult(i.local_id, error=error, retryable=True) for i in items]


def server_failed(exc: RemoteUnavailable) -> bool:
    """Whether retries ran out on answers of 5xx (not a timeout, a dropped connection, a 429)."""
    cause = exc.__cause__
    return isinstance(cause, Transient) and server_error(cause)
