"""Flow control for one SCIM server: a shared pause (Retry-After), a token bucket, adaptive concurrency.

- `Pause`: when a server answers 429/503 with Retry-After, *every* caller of that server waits until
  the moment it named, not only the request that got the answer.
- `TokenBucket`: an optional ceiling on requests per second.
- `AdaptiveLimit`: AIMD concurrency between a minimum and a maximum: +1 after a window of successes
  without overload, halved (at most once a second) on 429, 503 or a timeout.
"""

from __future__ import annotations

import asyncio
import time


class Pause:
    """A moment before which no request may be sent."""

    def __init__(self, max_pause: float = 300.0) -> None:
        self._until = 0.0
        self._max_pause = max_pause
        self.total = 0.0

    def extend(self, seconds: float) -> None:
        now = time.monotonic()
        until = now + min(max(seconds, 0.0), self._max_pause)
        if until > self._until:
            self.total += until - max(self._until, now)
            self._until = until

    @property
    def remaining(self) -> float:
        return max(0.0, self._until - time.monotonic())

    async def wait(self) -> None:
        while (delay := self.remaining) > 0:
            await asyncio.sleep(delay)


class TokenBucket:
    """At most `rate` requests per second on average, with bursts up to `burst`."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate / 10)
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)


class AdaptiveLimit:
    """How many requests may be in flight now, adapting to what the server can take."""

    def __init__(self, minimum: int, maximum: int) -> None:
        self.minimum = max(1, min(minimum, maximum))
        self.maximum = max(1, maximum)
        self.limit = float(self.maximum)
        self.in_flight = 0
        self.cuts = 0
        self._successes = 0
        self._last_cut = 0.0
        self._changed = asyncio.Condition()

    @property
    def current(self) -> int:
        return int(self.limit)

    async def acquire(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_flight < int(self.limit))
            self.in_flight += 1

    async def release(self, *, overloaded: bool) -> None:
        async with self._changed:
            self.in_flight -= 1
            if overloaded:
                now = time.monotonic()
                if now - self._last_cut >= 1.0 and self.limit > self.minimum:
                    self.limit = max(float(self.minimum), self.limit / 2)
                    self._last_cut = now
                    self.cuts += 1
                self._successes = 0
            else:
                self._successes += 1
                if self._successes >= int(self.limit) and self.limit < self.maximum:
                    self.limit += 1
                    self._successes = 0
            self._changed.notify_all()
