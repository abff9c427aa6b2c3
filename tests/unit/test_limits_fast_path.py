"""AdaptiveLimit's await-free fast path (`try_acquire`, `release_now`): the same slots, in the same order."""

from __future__ import annotations

import asyncio

from replicator.scim.limits import AdaptiveLimit


async def test_try_acquire_takes_a_free_slot_and_refuses_a_full_limit() -> None:
    """try_acquire takes slots while there is room and says False once the limit is reached."""
    limit = AdaptiveLimit(2, 2)
    assert limit.try_acquire() and limit.try_acquire()
    assert not limit.try_acquire()
    assert limit.in_flight == 2
    limit.release_now(overloaded=False)
    assert limit.in_flight == 1 and limit.try_acquire()


async def test_try_acquire_does_not_pass_a_parked_waiter() -> None:
    """A slot freed while a caller waits goes to that caller: try_acquire does not jump the queue."""
    limit = AdaptiveLimit(1, 1)
    assert limit.try_acquire()
    waiter = asyncio.ensure_future(limit.acquire())
    await asyncio.sleep(0)  # let it park
    assert limit._waiters
    limit.release_now(overloaded=False)
    assert not limit.try_acquire()
    await waiter
    assert limit.in_flight == 1


async def test_release_now_cuts_on_overload_as_release_does() -> None:
    """release_now halves the limit on an overloaded answer, like the awaited release."""
    limit = AdaptiveLimit(2, 16)
    assert limit.try_acquire()
    limit.release_now(overloaded=True)
    assert limit.current == 8 and limit.cuts == 1 and limit.in_flight == 0
