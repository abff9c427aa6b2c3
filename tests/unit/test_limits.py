"""Flow control: the shared pause, the token bucket and the AIMD concurrency limit."""

from __future__ import annotations

import asyncio
import time

from replicator.scim.limits import AdaptiveLimit, Pause, TokenBucket


async def test_pause_holds_every_waiter_until_the_named_moment() -> None:
    """Waiters started during a pause all resume after it, never before."""
    pause = Pause()
    pause.extend(0.2)
    started = time.monotonic()
    await asyncio.gather(*(pause.wait() for _ in range(5)))
    assert time.monotonic() - started >= 0.19
    assert pause.total >= 0.19


async def test_pause_is_capped() -> None:
    """A huge Retry-After is capped by max_pause."""
    pause = Pause(max_pause=0.05)
    pause.extend(3600)
    assert pause.remaining <= 0.05


async def test_token_bucket_spaces_requests() -> None:
    """At 20 per second with a burst of 1, ten takes need at least 0.45 s."""
    bucket = TokenBucket(20, burst=1)
    started = time.monotonic()
    for _ in range(10):
        await bucket.take()
    assert time.monotonic() - started >= 0.44


async def test_adaptive_limit_halves_on_overload_and_grows_back() -> None:
    """An overload halves the limit (not below the minimum); a window of successes adds one."""
    limit = AdaptiveLimit(2, 16)
    await limit.acquire()
    await limit.release(overloaded=True)
    assert limit.current == 8 and limit.cuts == 1
    await limit.acquire()
    await limit.release(overloaded=True)  # within the cooldown: no second cut
    assert limit.current == 8
    for _ in range(8):
        await limit.acquire()
        await limit.release(overloaded=False)
    assert limit.current == 9


async def test_adaptive_limit_bounds_in_flight() -> None:
    """No more than `current` holders at once."""
    limit = AdaptiveLimit(1, 3)
    peak = 0

    async def hold() -> None:
        nonlocal peak
        await limit.acquire()
        peak = max(peak, limit.in_flight)
        await asyncio.sleep(0.01)
        await limit.release(overloaded=False)

    await asyncio.gather(*(hold() for _ in range(12)))
    assert peak == 3
