"""Pacing under the remotes' rate limits: Airtable's 5 requests a second per base, Twenty's
requests a minute per workspace. One pacer per limited remote for a run (:class:`PacerPool`),
shared by the mappings on it."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

# Seconds the pacer adds to a remote's rate-limit window (see Pacer), by where the transport
# stamps a request (``Pacer.sent``). Airtable's stamps once the request's bytes are written
# (``airtable_http.Stamping``): no wait of a loaded host can come after the stamp, and the guard
# is left only the spread of network delays from here to the server between two requests a
# window apart (on one path, milliseconds). 1% of Airtable's one-second window.
JITTER_GUARD = 0.01
# Twenty's transport stamps a request as it takes it, before its bytes leave: room for a
# loaded host too. Nothing against Twenty's minute.
SEND_GUARD = 0.05
# After a refusal that names no limit (at Airtable: a 30-second lockout), the guard becomes at
# least this, then doubles at each further one, up to MAX_GUARD: the path, or another client
# of the base, needs more room than the guard gave. Runs keep it (``lessons``) for a week.
REFUSED_GUARD = 0.05
MAX_GUARD = 0.2


class Pacer:
    """At most ``limit`` request starts in any ``window`` seconds: the rule both services
    enforce (Airtable: 5 a second per base; Twenty: 100 a minute per workspace).

    A rested pacer lets ``limit`` requests start at once, then one each time the oldest start
    leaves the window, so a run spends no time the limit does not require. The window is kept
    ``guard`` seconds longer than the remote's, so that requests which reach the server a
    little sooner after their predecessors than they left here (latency jitter) still cannot
    put one request too many into a window on the server's side: at Airtable that would cost a
    30-second lockout. A fixed guard, not a share of the window: jitter does not grow with the
    window. Thread-safe: mappings on one base share one pacer.

    Args:
        limit: requests per window (0 or less: no limit).
        window: the window's length in seconds.
        clock, sleep: injectable for tests.
        guard: how many seconds longer than ``window`` the pacer keeps its own window
            (default: the class's ``GUARD``).
    """

    GUARD = JITTER_GUARD

    def __init__(
        self,
        limit: int,
        window: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        guard: float | None = None,
    ) -> None:
        self.limit = limit
        self.span = window  # the remote's window; ``window`` is the pacer's own, longer one
        self.guard = self.GUARD if guard is None else guard
        self.window = window + self.guard
        self._taught: dict[str, float] = {}  # what refusals taught (see ``lessons``)
        self._lesson_at = -math.inf  # when a refusal last taught something
        self.taught_now = False  # whether a refusal of this run taught something
        self.clock, self.sleep = clock, sleep
        self._starts: list[list[float]] = []  # recent starts, each a slot ``sent`` may move
        self._mine = threading.local()
        self._held_until = 0.0
        self._lock = threading.Lock()

    @classmethod
    def rate(cls, per_period: float, period: float = 1.0, **kwargs: Any) -> Pacer:
        """A pacer for ``per_period`` requests each ``period`` seconds (fractions allowed: 2.5
        a second is 3 in any 1.2 seconds); 0 or less: no limit."""
        if per_period <= 0:
            return cls(0, period, **kwargs)
        limit = max(1, math.floor(per_period))
        return cls(limit, period * limit / per_period, **kwargs)

    def wait(self) -> None:
        """Block until the next request may start, and count it as started then (or when
        :meth:`sent` says it left, if later)."""
        with self._lock:
            now = self.clock()
            start = max(now, self._held_until)
            if self.limit > 0:
                recent = [s for s in self._starts if s[0] > now - self.window]
                start = self._earliest(start, [s[0] for s in recent])
                slot = [start]
                self._starts = [*recent, slot]
                self._mine.slot = slot
        if start > now:
            self.sleep(start - now)

    def _earliest(self, start: float, recent: list[float]) -> float:
        """When, from ``start`` on, the rule lets the next request go, given the starts of the
        requests still in the window (called with the lock held)."""
        if len(recent) >= self.limit:
            start = max(start, sorted(recent)[-self.limit] + self.window)
        return start

    def sent(self) -> None:
        """The request this thread was last let go for is leaving now: count it from now if
        that is later than its slot (the thread may have waited for the interpreter or the CPU
        in between, or for a connection to open, and the next requests are spaced from when it
        really left). Called as often as the transport likes: a slot only ever moves later."""
        slot: list[float] | None = getattr(self._mine, "slot", None)
        if slot is None:
            return
        with self._lock:
            slot[0] = max(slot[0], self.clock())

    def hold(self, seconds: float) -> None:
        """Let no request start for ``seconds`` from now (a remote's lockout)."""
        with self._lock:
            self._held_until = max(self._held_until, self.clock() + seconds)

    @property
    def per_second(self) -> float:
        """The remote's rate this pacer keeps under (infinite without a limit)."""
        return self.limit / self.span if self.limit > 0 else math.inf

    def refused(self, limit: tuple[int, float] | None = None) -> None:
        """The remote refused the request this thread was last let go for (a 429). When it
        named a limit (``limit`` requests in ``span`` seconds, a bucket of ``limit`` refilled
        in ``span``) stricter than this pacer's, keep to it from now on (see
        :meth:`_keep_to`). Otherwise the pacer kept to the remote's limit and was refused all
        the same: the guard was too narrow for this path (or another client spent part of the
        budget), so widen it (at least ``REFUSED_GUARD``, then doubling, at most
        ``MAX_GUARD``). A request let go before the last such lesson was paced by the rule it
        corrected, and teaches nothing more."""
        slot: list[float] | None = getattr(self._mine, "slot", None)
        with self._lock:
            self._refused()
            if slot is not None and slot[0] < self._lesson_at:
                return
            if limit is None or not self._learn_limit(*limit):
                self._widen(min(MAX_GUARD, max(REFUSED_GUARD, 2 * self.guard)))
            self._lesson_at = self.clock()
            self.taught_now = True

    def lessons(self) -> dict[str, float]:
        """What refusals taught this pacer (a wider guard; a stricter limit, as ``limit`` and
        ``span``), for a later run's :meth:`adopt`; empty when nothing."""
        with self._lock:
            return dict(self._taught)

    def adopt(self, lessons: dict[str, float] | None) -> None:
        """Start from what an earlier run's refusals taught (:meth:`lessons`); never looser
        than this pacer already is. Unknown or malformed entries are ignored."""
        if not isinstance(lessons, dict):
            return
        with self._lock:
            guard, limit, span = (lessons.get(k) for k in ("guard", "limit", "span"))
            if isinstance(guard, (int, float)) and self.guard < guard <= MAX_GUARD:
                self._widen(float(guard))
            if isinstance(limit, (int, float)) and isinstance(span, (int, float)):
                self._learn_limit(int(limit), float(span))

    def _widen(self, guard: float) -> None:
        """Keep ``guard`` seconds more than the remote's window, as a lesson (called with the
        lock held)."""
        self.guard = guard
        self.window = self.span + guard
        self._taught["guard"] = guard

    def _learn_limit(self, limit: int, span: float) -> bool:
        """:meth:`_keep_to`, as a lesson when it changes anything (called with the lock
        held)."""
        if not self._keep_to(limit, span):
            return False
        self._taught |= {"limit": float(self.limit), "span": self.span}
        return True

    def tighten(self, other: Pacer) -> None:
        """Keep to ``other``'s limit from now on where it is the stricter (a mapping's own
        ``rate_limit`` lowers its remote's budget)."""
        with self._lock:
            self._keep_to(other.limit, other.span)

    def _keep_to(self, limit: int, span: float) -> bool:
        """At most ``limit`` at once and ``limit / span`` a second from now on, where either is
        fewer than this pacer's; never looser; nothing for no limit (called with the lock
        held). Whether anything changed."""
        if limit < 1 or span <= 0:
            return False
        rate = min(self.per_second, limit / span)
        fewer = limit if self.limit <= 0 else min(self.limit, limit)
        if fewer != self.limit or rate < self.per_second:
            self.limit, self.span = fewer, fewer / rate
            self.window = self.span + self.guard
            return True
        return False

    def _refused(self) -> None:
        """What a refusal tells besides the limit (called with the lock held)."""


class BucketPacer(Pacer):
    """Twenty's rule both ways it is stated: at most ``limit`` requests in any window (the
    documented "about 100 requests per minute", and ``TWENTY_RATE_LIMIT``: requests a minute
    the tool allows itself), and the bucket its server keeps
    (``ThrottlerService.tokenBucketThrottleOrThrow``,
    ``packages/twenty-server/src/engine/core-modules/throttler/throttler.service.ts``): a bucket
    of ``limit`` tokens; each request refills the whole tokens earned since the previous one and
    restarts that clock, so a fraction of a token is lost. A rested pacer lets the bucket's
    ``limit`` go at once; the next waits until the first of them leaves the window, and past
    that, while requests keep coming, each waits one token's time (0.6 s at 100 a minute, plus
    the guard) after the previous one: the window alone would let a second burst go a minute
    after the first and find the bucket short, and the bucket alone would let 192 go in the
    first minute.
    """

    GUARD = SEND_GUARD

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tokens = self.limit  # the remote's count of tokens, as this pacer follows it

    def _earliest(self, start: float, recent: list[float]) -> float:
        """When the window, and the bucket as the server will count it, let the next request
        go."""
        start = super()._earliest(start, recent)
        tick = self.span / self.limit + self.guard
        if recent:
            earned = math.floor(max(0.0, start - max(recent)) / tick)
            tokens = min(self.limit, self._tokens + earned)
            if tokens < 1:
                start, tokens = max(start, max(recent) + tick), 1
        else:
            tokens = self.limit  # rested for a whole window: the bucket is full
        self._tokens = tokens - 1
        return start

    def _refused(self) -> None:
        """The remote's bucket was empty when it refused: its next token is a tick away."""
        self._tokens = 0


class PacerPool:
    """One pacer per rate-limited remote (an Airtable base, a Twenty workspace) for a run:
    mappings on the same base share its budget instead of each pacing as if alone."""

    def __init__(self) -> None:
        self._pacers: dict[tuple[str, ...], Pacer] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...], pacer: Pacer) -> Pacer:
        """The pool's pacer for ``key`` (``pacer`` when it is the first); a stricter ``pacer``
        slows the shared one down: a mapping's own ``rate_limit`` lowers the budget of the
        whole base, for the mappings already built too."""
        with self._lock:
            current = self._pacers.setdefault(key, pacer)
        current.tighten(pacer)
        return current
