"""Flow control for one SCIM server: a shared pause (Retry-After), a token bucket, adaptive concurrency.

- `Pause`: when a server answers 429/503 with Retry-After, *every* caller of that server waits until
  the moment it named, not only the request that got the answer.
- `TokenBucket`: an optional ceiling on requests per second.
- `AdaptiveLimit`: AIMD concurrency between a minimum and a maximum: +1 after a window of successes
  without overload, halved (at most once a second) on 429, 503 or a timeout; no growth within a
  second of a cut (the burst after a Retry-After pause must not go out at the old concurrency).
- `RateLearner`: learns a server's request-rate cap from its 429s (requests it accepted per second
  between two 429s, pauses included: a burst after a pause says nothing of the sustained rate), so
  that the token bucket can run just under it instead of bouncing off it.
"""

from __future__ import annotations

import asyncio
import collections
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
        if self._until <= 0.0:
            return  # never paused: the common case costs nothing
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
    """How many requests may be in flight now, adapting to what the server can take.

    Acquiring is a plain counter while there is room (no await, no lock: this runs for every request);
    only callers that must wait park on a future, woken in order as slots free up.
    """

    def __init__(self, minimum: int, maximum: int) -> None:
        self.minimum = max(1, min(minimum, maximum))
        self.maximum = max(1, maximum)
        self.limit = float(self.maximum)
        self.in_flight = 0
        self.cuts = 0
        self._successes = 0
        self._last_cut = 0.0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def current(self) -> int:
        return int(self.limit)

    async def acquire(self) -> None:
        while self.in_flight >= int(self.limit) or self._waiters:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            if self.in_flight < int(self.limit):
                break
        self.in_flight += 1

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody waits (no await: the fast path of every request)."""
        if self.in_flight < int(self.limit) and not self._waiters:
            self.in_flight += 1
            return True
        return False

    async def release(self, *, overloaded: bool) -> None:
        self.release_now(overloaded=overloaded)

    def release_now(self, *, overloaded: bool) -> None:
        """Give the slot back, learning from how the request went (`release` without the await)."""
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
            if (self._successes >= int(self.limit) and self.limit < self.maximum
                    and time.monotonic() - self._last_cut >= 1.0):
                self.limit += 1
                self._successes = 0
        free = int(self.limit) - self.in_flight
        for waiter in list(self._waiters)[: max(free, 0)]:
            if not waiter.done():
                waiter.set_result(None)


class RateLearner:
    """Estimates the request rate a server accepts, from what it accepted between two 429s.

    `rate` is None until the server has refused twice; then 95% of the rate it accepted between the
    two, raised by 5% after every 5 seconds without a 429 (the cap may have been lifted, or the
    estimate was low). What came before the first refusal is not counted as a rate: it holds the
    server's burst allowance (a token bucket starts full). One exception: a burst of at least
    `BURST` requests, from the first answer to a refusal within a second with a pause of at most
    `BURST_PAUSE_MAX` seconds, says the server gives at most that burst per (burst time + pause);
    95% of that is a `provisional` first estimate, so that the requests after the pause do not empty
    the refilled bucket at full speed and meet a second wave of 429s. The next window replaces it.
    Random refusals (a faulty server) rarely let `BURST` requests through before the first one; a
    long pause may be a quota or maintenance rather than a refill, and is not read as a rate.

    Refusals unrelated to our rate (a quota shared with others, random faults) would drive the
    estimate down and down: when one falls below half of the first measured one, `gave_up` is set
    and the caller should stop pacing for good.
    """

    BURST = 50
    BURST_PAUSE_MAX = 5.0

    def __init__(self) -> None:
        self.rate: float | None = None
        self._accepted = 0
        self._since = time.monotonic()
        self._last_raise = self._since
        self._refused_before = False
        self.provisional = False  # the rate comes from the first burst, not from a window between 429s
        self.gave_up = False
        self._first_measured: float | None = None

    def accepted(self) -> bool:
        """Count an accepted request; True when the rate was raised."""
        self._accepted += 1
        now = time.monotonic()
        if self._accepted == 1 and not self._refused_before:
            self._since = now  # the first window starts at the first answer, not when the client was made
        if self.rate is not None and now - self._last_raise >= 5.0:
            self.rate *= 1.05
            self._last_raise = now
            return True
        return False

    def refused(self, pause: float | None = None) -> float | None:
        """A 429 arrived, naming `pause` seconds to wait. Returns the new rate (None while unknown)."""
        now = time.monotonic()
        elapsed = now - self._since
        if not self._refused_before:
            self._refused_before = True
            burst, self._accepted, self._since = self._accepted, 0, now
            if pause and pause <= self.BURST_PAUSE_MAX and elapsed < 1.0 and burst >= self.BURST:
                self.rate = 0.95 * burst / (elapsed + pause)
                self.provisional = True
                self._last_raise = now
            return self.rate
        if elapsed < 1.0:
            # 429s closer together than a second say nothing about a sustained rate (random refusals,
            # a burst): count on, and let Retry-After and the concurrency cut do their part
            return self.rate
        if self._accepted:
            self.rate = 0.95 * self._accepted / elapsed
            self.provisional = False
            if self._first_measured is None:
                self._first_measured = self.rate
            elif self.rate < 0.5 * self._first_measured:
                self.gave_up = True
        self._accepted = 0
        self._since = now
        self._last_raise = now
        return self.rate
