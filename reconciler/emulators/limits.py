"""The two remotes' rate limiters, as the emulators enforce them on each request's arrival."""

from __future__ import annotations

import math
import threading


class SlidingWindowLimiter:
    """At most ``limit`` requests in any ``window`` seconds; going over locks out for ``lockout``.

    This is Airtable's rule (5 requests/s per base, then every request refused for 30 s:
    https://airtable.com/developers/web/api/rate-limits). A ``limit`` of 0 disables limiting.
    """

    def __init__(self, limit: int, window: float = 1.0, lockout: float = 30.0) -> None:
        self.limit = limit
        self.window = window
        self.lockout = lockout
        self._times: list[float] = []
        self._locked_until = 0.0
        self._lock = threading.Lock()

    def admit(self, now: float) -> bool:
        """Whether a request arriving at ``now`` (monotonic seconds) is allowed."""
        if self.limit <= 0:
            return True
        with self._lock:
            if now < self._locked_until:
                return False
            self._times = [t for t in self._times if t > now - self.window]
            if len(self._times) >= self.limit:
                self._locked_until = now + self.lockout
                return False
            self._times.append(now)
            return True


class TokenBucketLimiter:
    """Twenty's token bucket (``ThrottlerService.tokenBucketThrottleOrThrow`` in
    ``packages/twenty-server/src/engine/core-modules/throttler/throttler.service.ts``):
    ``capacity`` tokens; a request first refills ``floor(elapsed * rate)`` whole tokens since the
    last admitted request, then takes one, and the refill clock restarts at that request, so the
    fraction of a token earned so far is lost. Requests closer together than one token's worth
    of time (0.6 s at 100 a minute) therefore refill nothing: past the first burst, only one
    request per 0.6 s gets through. A refused request changes nothing. ``per_minute`` 0 disables
    it.
    """

    def __init__(self, per_minute: float, capacity: float | None = None) -> None:
        self.per_minute = per_minute
        self.capacity = math.floor(capacity if capacity is not None else per_minute)
        self._tokens = self.capacity
        self._last: float | None = None
        self._lock = threading.Lock()

    def admit(self, now: float) -> bool:
        """Whether a request arriving at ``now`` (monotonic seconds) may take a token."""
        if self.per_minute <= 0:
            return True
        with self._lock:
            # Admitted after their latency, requests may come here out of their arrival order:
            # time never runs back for the bucket.
            last = now if self._last is None else self._last
            refill = math.floor(max(0.0, now - last) * self.per_minute / 60.0)
            available = min(self.capacity, self._tokens + refill)
            if available < 1:
                return False
            self._tokens = available - 1
            self._last = max(last, now)
            return True
