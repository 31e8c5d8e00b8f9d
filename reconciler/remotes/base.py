"""The remote interface the engine talks to, and the retry policy both remotes share (their
pacing is in :mod:`reconciler.remotes.pacing`, the splitting of a refused batch in
:mod:`reconciler.remotes.isolation`)."""

from __future__ import annotations

import email.utils
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
)

from reconciler.errors import RecordError, RemoteUnavailable
from reconciler.model import Converter, Mapping, converter, to_wire
from reconciler.records import RemoteRecord, Values, WriteResult
from reconciler.remotes.pacing import Pacer

T = TypeVar("T")
R = TypeVar("R")

# Requests of one remote in flight at once, at the most (reads of records by id, write batches),
# where the time answers take bounds a run rather than the rate limit (Twenty's minute): the
# pacer still decides when each may start.
IN_FLIGHT = 4


@dataclass
class ApiStats:
    """Requests a remote sent in a run (the report's ``api`` block)."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0


@dataclass(frozen=True)
class PushItem:
    """One record to write: an update, or a create when ``create`` is set.

    ``current`` is the record as read just before (when the remote reads before writing), so a
    write can send back what it must keep unchanged (``RemoteRecord.keep``).
    """

    local_id: int
    remote_id: str | None
    values: Values  # canonical values of the columns to send
    create: bool = False  # a create with a client-chosen ``remote_id`` (idempotent on retry)
    current: RemoteRecord | None = None


class RemoteClock:
    """The remote's clock, as its answers' ``Date`` header shows it against this host's clock.

    Both services send ``Date`` on every answer. The header has whole seconds and is stamped
    before the answer travels, so each sample is offset by up to a second plus the latency; the
    median of recent samples, plus half a second, is what ``offset`` reports.
    """

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._now = now
        self._samples: deque[float] = deque(maxlen=25)

    def observe(self, header: str | None) -> None:
        """Take one answer's ``Date`` header into account (ignored when absent or unreadable)."""
        if not header:
            return
        try:
            sent = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return
        if sent.tzinfo is None:
            return
        self._samples.append((sent - self._now()).total_seconds() + 0.5)

    @property
    def offset(self) -> timedelta | None:
        """The remote's clock minus this host's, or None before any answer carried a date."""
        if not self._samples:
            return None
        return timedelta(seconds=statistics.median(self._samples))


@dataclass(frozen=True)
class Finding:
    """One line ``reconcile check`` prints about a mapping's remote.

    A failed finding is a configuration problem (exit 2) unless ``unavailable`` says the remote
    could not be asked at all (unreachable, credentials refused: exit 3). A ``warning`` passes
    but is shown as such.
    """

    name: str
    ok: bool
    detail: str = ""
    hint: str = ""
    warning: bool = False
    unavailable: bool = False
    # What the finding is about beyond the mapping (a base and token, a server and key), so
    # mappings that share it get one line, and several ones get a line each, named.
    scope: str = ""


class Remote(Protocol):
    """What the engine needs from a remote; it never knows which remote it talks to."""

    mapping: Mapping
    stats: ApiStats
    clock: RemoteClock
    pacer: Pacer  # its budget's, shared with the mappings on the same base or workspace
    write_batch: int  # records per write request
    # Whether a push must read a record right before writing it: Twenty's batch upsert would
    # restore a deleted record (and move a record to the top of its views) if sent blind.
    read_before_write: bool
    # Requests of this remote a push or a read by ids may have in flight at once (see IN_FLIGHT).
    in_flight: int

    def prepare(self, cached: Any | None) -> None:
        """Get ready for a run: resolve and check what the mapping needs of the remote schema.

        Args:
            cached: what ``cache_update`` returned in an earlier run (kept in the database), or
                None. A remote uses it to spend no request when nothing changed.

        Raises:
            MappingError: the remote cannot be used as configured (the message says the fix).
        """
        ...

    def cache_update(self) -> Any | None:
        """What to keep for the next run's ``prepare`` when it changed in this run, else None."""
        ...

    def verdict(self) -> None:
        """At the end of a mapping's stages: raise ``MappingError`` when the run found the
        remote unable to do part of what the mapping needs (a Twenty server without batch
        upsert), once what it could do is recorded."""
        ...

    def inspect(self, cached: Any | None) -> Iterator[Finding]:
        """What ``reconcile check`` reports of this mapping's remote, read fresh: whether it
        answers and takes the credentials, then the mapped fields. ``cached`` is what runs kept
        (``cache_update``), to compare with (a field renamed since, say)."""
        ...

    def find(
        self, columns: Sequence[str], keys: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], list[RemoteRecord]]:
        """Live records whose natural key is one of ``keys``, grouped by key.

        ``columns`` are mapped local columns (the mapping's ``match_on``); a key is the tuple
        of their canonical values, and a record's key is read from its canonical values the
        same way. Batched: never one request per key.
        """
        ...

    def list_changed(
        self, since: datetime | None, until: datetime | None = None
    ) -> Iterator[list[RemoteRecord]]:
        """Pages of records modified in ``[since, until]`` on the remote's clock (all when
        ``since`` is None); soft-deleted records come with ``deleted`` set where the remote
        keeps them."""
        ...

    def fetch(self, ids: Sequence[str]) -> dict[str, RemoteRecord]:
        """Current records by id, batched. Soft-deleted ones come with ``deleted`` set; an id
        missing from the answer is gone for good."""
        ...

    def write(self, items: Sequence[PushItem]) -> list[WriteResult]:
        """Create or update records in batches; a rejected record fails alone, and a record
        deleted remotely comes back with ``gone`` set (never recreated)."""
        ...

    def valid_id(self, remote_id: str) -> bool:
        """Whether a string has the shape of this remote's record ids."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class Transient(Exception):
    """A failure worth retrying: 429, 5xx, a timeout or a dropped connection.

    ``hold`` is how long the remote refuses every request after this one (Airtable locks a base
    for 30 seconds after a 429): nothing is sent to it before that time has passed. ``status``
    is the HTTP status of an answer (None when there was none: a timeout, a dropped connection).
    ``unreached``: no connection could be opened (refused, a name that does not resolve, a
    connect timeout), so the request never reached the server; or what answered was not the
    API (a web page where JSON was due). ``limit``: the limit a refusal named, as ``(requests,
    seconds)`` (Twenty's 429 names the bucket that refused), which the pacer keeps to from then.
    """

    def __init__(
        self,
        message: str,
        *,
        throttled: bool = False,
        hold: float = 0.0,
        status: int | None = None,
        unreached: bool = False,
        limit: tuple[int, float] | None = None,
    ) -> None:
        super().__init__(message)
        self.throttled = throttled
        self.hold = hold
        self.status = status
        self.unreached = unreached
        self.limit = limit


class Rejected(Exception):
    """The remote refused a request for its content (400/404/422): not retried as is."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class RetryPolicy:
    """Backoff for transient failures: doubling from ``base`` seconds up to ``cap``.

    The defaults outlast Airtable's 30-second lockout (about two minutes in all). A server no
    request of the run has reached yet gets ``unreached_attempts`` (a second and a half of
    waiting): a wrong address or a server that is down will not answer within the next two
    minutes, and a run from cron, by hand or in CI should say so at once; the next run catches
    up. Once the server has answered, a connection it refuses is a blip, retried as long as
    any other failure.
    """

    base: float = 0.5
    cap: float = 30.0
    attempts: int = 10
    max_elapsed: float = 150.0
    unreached_attempts: int = 3
    sleep: Callable[[float], None] = time.sleep

    def wait_for(self, state: RetryCallState) -> float:
        """Seconds to wait before the next attempt."""
        return float(min(self.cap, self.base * 2 ** (state.attempt_number - 1)))


@dataclass
class Caller:
    """Sends requests through the pacer, retrying transient failures, counting them all."""

    name: str
    pacer: Pacer
    policy: RetryPolicy
    reach: str = ""  # what to check when the server was never reached (its URL, the variable)
    stats: ApiStats = field(default_factory=ApiStats)
    _counting: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _local: threading.local = field(default_factory=threading.local, repr=False)
    _reached: bool = field(default=False, repr=False)  # a request of this run reached the server

    def __call__(self, request: Callable[[], T]) -> T:
        """Run one request with pacing and retries; raises RemoteUnavailable when they run out
        (inside :meth:`once`, at the first 5xx answer). Thread-safe: requests of one remote may
        be in flight at once (:func:`at_once`)."""

        def counted() -> T:
            self.pacer.wait()
            self._count(requests=1)
            reached = True  # an answer, taken, refused or not understood
            try:
                return request()
            except Transient as exc:
                self._count(throttled=int(exc.throttled))
                if exc.hold:
                    self.pacer.hold(exc.hold)  # backoff must not knock during a lockout
                if exc.throttled:
                    self.pacer.refused(exc.limit)
                reached = not exc.unreached
                raise
            finally:
                self._reached = self._reached or reached

        def before_sleep(state: RetryCallState) -> None:
            self._count(retries=1)

        splitting = getattr(self._local, "splitting", False)

        def final(exc: Transient) -> bool:  # inside once(), a 5xx answer is not retried
            return splitting and server_error(exc)

        def worth_retrying(exc: BaseException) -> bool:
            return isinstance(exc, Transient) and not final(exc)

        policy = self.policy
        retrying = Retrying(
            retry=retry_if_exception(worth_retrying),
            wait=policy.wait_for,
            stop=self._stop(policy),
            sleep=policy.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(counted)
        except Transient as exc:
            tries = retrying.statistics.get("attempt_number", 1)
            raise self._gave_up(exc, final=final(exc), tries=tries) from exc

    def _stop(self, policy: RetryPolicy) -> Callable[[RetryCallState], bool]:
        """When to stop retrying: the policy's limits, or fewer attempts while no request of
        this run has reached the server (see :class:`RetryPolicy`)."""
        limits = stop_after_attempt(policy.attempts) | stop_after_delay(policy.max_elapsed)

        def stop(state: RetryCallState) -> bool:
            if limits(state):
                return True
            outcome = state.outcome
            exc = outcome.exception() if outcome is not None and outcome.failed else None
            never = isinstance(exc, Transient) and exc.unreached and not self._reached
            return never and state.attempt_number >= policy.unreached_attempts

        return stop

    def _gave_up(self, exc: Transient, *, final: bool, tries: int) -> RemoteUnavailable:
        """The error of a request that will not be tried again."""
        if final:
            how = "failed"
        elif exc.unreached and not self._reached:
            how = f"could not be reached ({tries} attempts)"
        else:
            how = "kept failing after retries"
        unreached = exc.status is None and not exc.throttled and self.reach
        advice = f"; {self.reach}" if unreached else ""
        return RemoteUnavailable(f"{self.name} {how}: {exc}{advice}")

    @contextmanager
    def once(self) -> Iterator[None]:
        """Inside (in this thread), an answer of 5xx is final: not retried. A 429, a timeout or
        a dropped connection is retried as always."""
        before = getattr(self._local, "splitting", False)
        self._local.splitting = True
        try:
            yield
        finally:
            self._local.splitting = before

    def _count(self, *, requests: int = 0, retries: int = 0, throttled: int = 0) -> None:
        with self._counting:
            self.stats.requests += requests
            self.stats.retries += retries
            self.stats.throttled += throttled


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def at_once(work: Callable[[T], R], items: Sequence[T], depth: int = IN_FLIGHT) -> list[R]:
    """``work`` of each item, up to ``depth`` at once (in threads), the results in the items'
    order. Every item's work ends before this returns; then the first exception, if any, is
    raised. One item, or ``depth`` 1, runs in this thread."""
    if len(items) <= 1 or depth <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(depth, len(items))) as pool:
        futures = [pool.submit(work, item) for item in items]
    return [f.result() for f in futures]


def server_error(exc: Transient) -> bool:
    """Whether a transient failure was an answer of 5xx."""
    return exc.status is not None and exc.status >= 500


def wire_fields(mapping: Mapping, values: Values) -> dict[str, Any]:
    """A record's canonical values as the remote's field names and spellings."""
    return {
        mapping.field(col).remote: to_wire(mapping.field(col), value)
        for col, value in values.items()
    }


def typed_record(
    mapping: Mapping,
    record_id: str,
    modified: datetime,
    fields: dict[str, Any],
    *,
    deleted: bool = False,
) -> RemoteRecord:
    """Type a remote record's fields into canonical values; a bad value fails the record alone."""
    values: dict[str, Any] = {}
    try:
        for column, remote, convert in _converters(mapping):
            values[column] = convert(fields.get(remote))
    except RecordError as exc:
        return RemoteRecord(record_id, modified, values, error=str(exc), deleted=deleted)
    return RemoteRecord(record_id, modified, values, deleted=deleted)


_CONVERTERS: dict[int, tuple[Mapping, tuple[tuple[str, str, Converter], ...]]] = {}


def _converters(mapping: Mapping) -> tuple[tuple[str, str, Converter], ...]:
    """``(column, remote name, converter)`` of each field, made once per mapping (a run has a
    handful; they are kept by identity, as hashing a mapping costs more than typing a field)."""
    known = _CONVERTERS.get(id(mapping))
    if known is None or known[0] is not mapping:
        if len(_CONVERTERS) > 64:  # a process that reads many configs (the tests)
            _CONVERTERS.clear()
        made = tuple((s.column, s.remote, converter(s, from_remote=True)) for s in mapping.fields)
        known = _CONVERTERS[id(mapping)] = (mapping, made)
    return known[1]


def results_by_id(
    batch: Sequence[PushItem], records: dict[str, RemoteRecord], remote: str
) -> list[WriteResult]:
    """One result per item, matched to the records the remote answered with."""
    return [
        WriteResult(i.local_id, record=records[str(i.remote_id)])
        if str(i.remote_id) in records
        else WriteResult(i.local_id, error=f"{remote} did not return the record")
        for i in batch
    ]
