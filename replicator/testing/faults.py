"""Carrying out :class:`~replicator.testing.options.Faults`: the random stream they are rolled from, the
rate-cap token bucket, the count of list requests, and the answers a fault puts in a request's place.

The random stream is re-seeded from ``Faults.seed`` whenever new Faults are put in (:meth:`use`), so the
same Faults give the same faults in the same order; the rate-cap bucket and the list-request count
outlive a change of Faults.
"""

from __future__ import annotations

import asyncio
import collections
import random
import time

from aiohttp import web

from replicator.testing.options import Faults
from replicator.testing.protocol import ScimProblem


class FaultInjector:
    """The state behind the faults one server injects."""

    def __init__(self, faults: Faults) -> None:
        self._cap_bucket: tuple[float, float] = (0.0, 0.0)  # (tokens, last refill) of Faults.rate_cap
        self.list_requests: collections.Counter[str] = collections.Counter()  # by kind name
        self.use(faults)

    def use(self, faults: Faults) -> None:
        """Inject these faults from now on; their ``seed`` restarts the random stream."""
        self.faults = faults
        self._random = random.Random(faults.seed)

    async def before_request(self, request: web.Request) -> web.Response | None:
        """Latency, then a dropped connection (returned), a rate cap, a scripted or a random error
        (raised as :class:`ScimProblem`); None: the request goes on."""
        if self.faults.latency > 0:
            await asyncio.sleep(self.faults.latency)
        if self._roll(self.faults.rate_reset):
            return drop_connection(request)
        if self.faults.rate_cap and not self._within_rate_cap(self.faults.rate_cap):
            raise ScimProblem(429, "rate cap exceeded", headers={"Retry-After": self.faults.retry_after})
        if self.faults.script and (status := self.faults.script.pop(0)):
            headers = {"Retry-After": self.faults.retry_after} if status in (429, 503) else None
            raise ScimProblem(status, "scripted fault", headers=headers)
        self._raise_injected_error()
        return None

    def loses_write_answer(self) -> bool:
        """Whether a write carried out now loses its answer (Faults.rate_reset_after_write)."""
        return self._roll(self.faults.rate_reset_after_write)

    def refuse_values(self, text: str, authorization: str = "") -> None:
        """Faults.refuse_values: a write containing one of them is refused with 400 invalidValue."""
        if self.faults.refuse_values and any(value in text for value in self.faults.refuse_values):
            echo = f" (request had Authorization: {authorization})" if self.faults.echo_authorization else ""
            raise ScimProblem(400, "value refused by this server" + echo, scim_type="invalidValue")

    def count_list_request(self, kind_name: str) -> None:
        """Count a list request of this kind; the Faults.fail_list_page-th one fails with 500."""
        self.list_requests[kind_name] += 1
        if self.list_requests[kind_name] == self.faults.fail_list_page:
            raise ScimProblem(500, f"injected fault: list request {self.faults.fail_list_page}")

    def page_size(self, count: int) -> int:
        """``count`` capped by Faults.page_cap."""
        if self.faults.page_cap is not None:
            count = min(count, self.faults.page_cap)
        return count

    def reported_total(self, total: int) -> int:
        """The totalResults to report for ``total`` matches (Faults.total_cap, Faults.truncate_total)."""
        if self.faults.total_cap is not None:
            total = min(total, self.faults.total_cap)
        return total + 5 if self.faults.truncate_total else total

    def _within_rate_cap(self, rate: float) -> bool:
        """Token bucket of `rate` per second with a burst of one second's worth."""
        now = time.monotonic()
        tokens, stamp = self._cap_bucket
        tokens = min(rate, tokens + (now - stamp) * rate) if stamp else rate
        allowed = tokens >= 1
        self._cap_bucket = (tokens - 1 if allowed else tokens, now)
        return allowed

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self._random.random() < rate

    def _raise_injected_error(self) -> None:
        retry_after = {"Retry-After": self.faults.retry_after}
        if self._roll(self.faults.rate_429):
            raise ScimProblem(429, "injected fault: too many requests", headers=retry_after)
        if self._roll(self.faults.rate_503):
            raise ScimProblem(503, "injected fault: service unavailable", headers=retry_after)
        if self._roll(self.faults.rate_500):
            raise ScimProblem(500, "injected fault: internal server error")


def drop_connection(request: web.Request) -> web.Response:
    """Abort the TCP connection; aiohttp then drops the returned response quietly."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)
