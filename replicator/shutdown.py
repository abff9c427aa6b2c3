"""The two-stage stop shared by every run, daemon or one-shot: the first SIGTERM/SIGINT drains (read
no more, let the calls in flight finish within `grace` seconds), a second one, or the end of the grace,
cancels the watched work at once.

It owns the loop's signal handlers while installed and nothing else: it knows no cycle, no server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

log = logging.getLogger("replicator.daemon")  # the name its records have always carried: log filters keep working


class Shutdown:
    """The two-stage stop of a run, daemon or one-shot. The first SIGTERM/SIGINT (or `request()`) sets
    `stop` (read no more, let the calls in flight finish, record, return) and arms a `grace` timer; a
    second signal, or the timer, cancels the watched task at once (`cancelled`)."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.stop = asyncio.Event()
        self.requests = 0  # signals (and request() calls) received
        self.signal_name: str | None = None  # the first signal's name
        self.cancelled = False  # the watched work was cancelled: a second signal, or the grace ran out
        self._task: asyncio.Future[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._installed: list[signal.Signals] = []

    @property
    def requested(self) -> bool:
        return self.requests > 0

    def install(self) -> None:
        """Handle SIGTERM and SIGINT on the running loop (where the platform lets us)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.request, sig)
                self._installed.append(sig)

    def uninstall(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._installed:
            loop.remove_signal_handler(sig)
        self._installed.clear()
        if self._timer is not None:
            self._timer.cancel()

    def watch(self, task: asyncio.Future[Any]) -> None:
        """`task` is the work a second signal (or the end of the grace) cancels."""
        self._task = task
        if self.cancelled:
            task.cancel()

    def request(self, sig: signal.Signals | None = None) -> None:
        """First call: drain and stop. Second call: cancel the watched task at once."""
        self.requests += 1
        if self.requests == 1:
            self.signal_name = sig.name if sig is not None else None
            log.info("stopping%s: finishing calls in flight (grace %.0fs; a second signal stops at once)",
                     f" on {self.signal_name}" if self.signal_name else "", self.grace)
            self.stop.set()
            self._timer = asyncio.get_running_loop().call_later(self.grace, self._cancel, "the grace period ended")
        else:
            self._cancel("second signal")

    def _cancel(self, why: str) -> None:
        if self._task is not None and not self._task.done():
            log.warning("%s: stopping now", why)
            self.cancelled = True
            self._task.cancel()
        elif self._task is None:
            self.cancelled = True  # nothing runs yet: the work is cancelled as soon as it is watched
