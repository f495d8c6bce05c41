"""Per-API-key request rate limit (POSTS_RATE_LIMIT): a token bucket per key id.

In-process: each server process keeps its own buckets, so N processes behind
one address let a key through up to N times the configured rate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """``rate`` requests per second per key, with bursts of up to ``burst``.

    ``clock`` returns seconds (monotonic); tests pass a fake one.
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        #: key id -> (tokens left, when they were counted)
        self._buckets: dict[str, tuple[float, float]] = {}

    def acquire(self, key: str) -> float:
        """Takes one token for ``key``: 0.0 if the request may go on, else the
        seconds until a token is available (the request is refused)."""
        with self._lock:
            now = self._clock()
            tokens, then = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


def from_config(config) -> RateLimiter | None:
    """The limiter POSTS_RATE_LIMIT asks for, or None when it is off."""
    if config.rate_limit is None:
        return None
    rate, burst = config.rate_limit
    return RateLimiter(rate, burst)
