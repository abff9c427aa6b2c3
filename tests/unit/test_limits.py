"""Flow control: the shared pause, the token bucket and the AIMD concurrency limit."""

from __future__ import annotations

import asyncio
import time

from replicator.scim.limits import AdaptiveLimit, Pause, RateLearner, TokenBucket
from replicator.scim.transport import HttpTransport


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


async def test_adaptive_limit_halves_on_overload_and_grows_back(monkeypatch) -> None:
    """An overload halves the limit (not below the minimum); a window of successes adds one, once a
    second has passed since the cut."""
    clock = [1000.0]
    monkeypatch.setattr("replicator.scim.limits.time.monotonic", lambda: clock[0])
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
    assert limit.current == 8  # within a second of the cut
    clock[0] += 1.0
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


def test_rate_learner_ignores_the_burst_before_the_first_refusal(monkeypatch) -> None:
    """A server capped at 100/s with a full bucket of 100 accepts 100 at once, then refuses and names
    a 1 s pause. The first window (the burst) teaches nothing; the second, 100 accepted over the
    second that followed, teaches 95% of 100/s. Refusals that follow within a second change nothing."""
    clock = [1000.0]
    monkeypatch.setattr("replicator.scim.limits.time.monotonic", lambda: clock[0])
    learner = RateLearner()
    for _ in range(100):
        learner.accepted()
    clock[0] += 0.05
    assert learner.refused() is None  # the burst allowance: no estimate from it
    assert learner.refused() is None  # the other requests that were in flight
    clock[0] += 1.0
    for _ in range(100):
        learner.accepted()
    clock[0] += 0.05
    assert round(learner.refused() or 0, 1) == 90.5  # 0.95 * 100 / 1.05 s
    clock[0] += 0.01
    assert round(learner.refused() or 0, 1) == 90.5


def test_rate_learner_takes_a_first_estimate_from_a_refused_burst_with_a_pause(monkeypatch) -> None:
    """100 accepted in 50 ms, then a 429 naming a 1 s pause: at most 100 per 1.05 s, 95% of it is
    the first estimate. A few accepted before a random refusal teach nothing."""
    clock = [1000.0]
    monkeypatch.setattr("replicator.scim.limits.time.monotonic", lambda: clock[0])
    burst, few, long_pause = RateLearner(), RateLearner(), RateLearner()
    clock[0] += 10.0  # the window starts at the first answer, not when the learner was made
    for _ in range(100):
        burst.accepted()
        long_pause.accepted()
    for _ in range(5):
        few.accepted()
    clock[0] += 0.05
    assert round(burst.refused(pause=1.0) or 0, 1) == 90.5
    assert burst.provisional
    assert few.refused(pause=1.0) is None
    assert long_pause.refused(pause=60.0) is None  # a quota or maintenance, not a refill


def test_a_burst_estimate_above_the_real_rate_does_not_stop_rate_learning(monkeypatch) -> None:
    """A server with a bucket of 100 refilled at 10/s: the burst says 90/s, the next window 9/s.
    The burst's estimate is provisional: the measured one replaces it and learning goes on (a drop
    below half of the first estimate would otherwise switch pacing off for good)."""
    clock = [1000.0]
    monkeypatch.setattr("replicator.scim.limits.time.monotonic", lambda: clock[0])
    client = HttpTransport("http://127.0.0.1:9/v2")
    learner = client._learner
    assert learner is not None
    for _ in range(100):
        learner.accepted()
    clock[0] += 0.05
    client._learn_rate(1.0)
    assert client._bucket is not None and round(client._bucket.rate) == 90
    clock[0] += 1.05
    for _ in range(10):
        learner.accepted()
    client._learn_rate(1.0)
    assert client._learner is learner and not learner.provisional
    assert round(client._bucket.rate, 1) == 9.0
