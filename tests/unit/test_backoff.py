"""The daemon's back-off delay and the two-stage shutdown shared by the daemon and one-shot runs."""

from __future__ import annotations

import asyncio

import pytest

from replicator.config import Config, load_config
from replicator.daemon import BACKOFF_MAX_FACTOR, backoff_delay
from replicator.errors import ConfigError
from replicator.shutdown import Shutdown


def test_backoff_doubles_after_each_consecutive_failure_up_to_the_cap() -> None:
    """interval after a success, interval x 2^(n-1) after the n-th failure in a row, at most x8."""
    assert BACKOFF_MAX_FACTOR == 8
    assert [backoff_delay(60, n) for n in range(7)] == [60, 60, 120, 240, 480, 480, 480]
    assert backoff_delay(0.5, 10_000) == 4.0  # no overflow however long it fails
    assert backoff_delay(10, 3, max_factor=2) == 20


def test_unhealthy_after_is_a_validated_setting_with_flag_and_variable() -> None:
    """`unhealthy_after` defaults to 3, comes from SCIMREP_UNHEALTHY_AFTER, and must be at least 1."""
    assert Config().unhealthy_after == 3
    config = load_config(environ={"SCIMREP_UNHEALTHY_AFTER": "5"}, need_endpoints=False)
    assert config.unhealthy_after == 5
    with pytest.raises(ConfigError, match="unhealthy_after"):
        load_config(environ={}, overrides={"unhealthy_after": 0}, need_endpoints=False)


async def test_first_request_sets_stop_second_cancels_the_watched_task() -> None:
    """The first stop request only sets the stop event (the work drains); the second cancels the work."""
    shutdown = Shutdown(grace=60)
    work = asyncio.ensure_future(asyncio.Event().wait())
    shutdown.watch(work)
    shutdown.request()
    assert shutdown.stop.is_set() and shutdown.requested and not shutdown.cancelled
    await asyncio.sleep(0)
    assert not work.done()
    shutdown.request()
    with pytest.raises(asyncio.CancelledError):
        await work
    assert shutdown.cancelled and shutdown.requests == 2
    shutdown.uninstall()


async def test_the_grace_period_ending_cancels_the_watched_task() -> None:
    """Without a second signal, the work is cancelled once `grace` seconds have passed."""
    shutdown = Shutdown(grace=0.01)
    work = asyncio.ensure_future(asyncio.Event().wait())
    shutdown.watch(work)
    shutdown.request()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(work, 5)
    assert shutdown.cancelled and shutdown.requests == 1


async def test_work_watched_after_the_grace_ended_is_cancelled_at_once() -> None:
    """A stop forced before the work started cancels that work as soon as it is watched."""
    shutdown = Shutdown(grace=0)
    shutdown.request()
    shutdown.request()
    work = asyncio.ensure_future(asyncio.Event().wait())
    shutdown.watch(work)
    with pytest.raises(asyncio.CancelledError):
        await work
