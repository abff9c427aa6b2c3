"""The HTTP exchange with one SCIM server: one aiohttp session, and the only code that sends requests.

`HttpTransport` sends each request under the server's pause, rate limit and concurrency limit, follows
redirects only within the configured origin (`auth.redirect_target`), retries what `retry.retry_verdict`
allows, and hands every failure to `status`, which translates it once into `replicator.errors` (a TLS
failure then gets the probe's hint, `diagnosis.tls_request_message`: what to set). It counts
what it sent (`requests`, by method) and how it went (`stats`, `latency`, `limit`, `pause`: `flow()`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple, Self

import aiohttp
import msgspec
import stamina
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from replicator import __version__
from replicator.errors import ScimTimeoutError, TransportError
from replicator.pipeline.urls import shown_url
from replicator.scim.auth import MAX_REDIRECTS, REDIRECT_STATUSES, Auth, NoAuth, redirect_target
from replicator.scim.diagnosis import Side
from replicator.scim.latency import Latencies, percentiles_ms
from replicator.scim.limits import AdaptiveLimit, Pause, RateLearner, TokenBucket
from replicator.scim.retry import RetryPolicy, retry_verdict
from replicator.scim.status import (
    FOREIGN_ERRORS,
    error_from_response,
    refused_credentials,
    status_overloads,
    transport_error,
)
from replicator.scim.wire import SCIM_JSON

# retries are counted in HttpTransport.stats and reported per cycle; stamina's own log line per retry
# would flood the log under a 429 storm
stamina.instrumentation.set_on_retry_hooks([])
log = logging.getLogger("replicator.scim")


Body = bytes | bytearray  # a response's body (a bytearray when it came in more than one chunk: `_body`)


class Reply(NamedTuple):
    """A 2xx answer: status, body, and the Location header (where a create put the object)."""

    status: int
    body: Body
    location: str | None


class HttpTransport:
    """Sends requests to one SCIM server. Use as an async context manager."""

    url_setting = "url"  # the setting that holds the host, as a TLS hint names it (PingOne's Platform API: api_url)

    def __init__(
        self,
        base_url: str,
        *,
        auth: Auth | None = None,
        timeout: float = 30.0,
        verify_tls: bool = True,
        ca_bundle: str | None = None,
        max_connections: int = 64,
        name: str = "scim",
        retry: RetryPolicy | None = None,
        rate_limit: float | None = None,
        min_concurrency: int | None = None,
        content_type: str = SCIM_JSON,
    ) -> None:
        self.base_url = URL(base_url.rstrip("/"))
        self._content_type = content_type  # of the bodies sent (PingOne's Platform API: application/json)
        self.name = name
        self._auth = auth or NoAuth()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._ssl: ssl.SSLContext | bool = True
        if not verify_tls:
            self._ssl = False
        elif ca_bundle:
            self._ssl = ssl.create_default_context(cafile=ca_bundle)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self.requests: Counter[str] = Counter()
        self._retry = retry or RetryPolicy()
        self.stats: Counter[str] = Counter()  # retries, 429, 503, timeouts
        self.latency = Latencies()
        self.pause = Pause(max_pause=self._retry.max_pause)
        self._bucket = TokenBucket(rate_limit) if rate_limit else None
        self._learner = None if rate_limit else RateLearner()  # a configured rate is not second-guessed
        self.limit = AdaptiveLimit(min_concurrency or max_connections, max_connections)
        self._retry_logged = False  # the first retry is logged (a warning), the others only counted
        # the request headers (without a body, with one) under the last Authorization value, made once
        self._headers: tuple[str | None, CIMultiDictProxy[str], CIMultiDictProxy[str]] = self._headers_under(None)

    async def __aenter__(self) -> Self:
        connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=self._ssl)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            headers={"User-Agent": f"scim-replicator/{__version__}", "Accept": f"{SCIM_JSON}, application/json"},
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
    def share_budget(self, other: HttpTransport) -> None:
        """Send under `other`'s budget from now on: its pause, token bucket (`rate_limit`) and concurrency
        limit, and count in its requests, stats and latency (two APIs of one rate-limited service)."""
        self.pause, self.limit = other.pause, other.limit
        if other._bucket is not None:
            self._bucket = other._bucket
        self.requests, self.stats, self.latency = other.requests, other.stats, other.latency

    def flow(self) -> dict[str, float]:
        """How the calls went so far: retries and throttling answers, the concurrency limit, pauses, latency."""
        return {
            **{k: float(v) for k, v in self.stats.items()},
            "concurrency": float(self.limit.current),
            "concurrency_cuts": float(self.limit.cuts),
            "paused_seconds": round(self.pause.total, 3),
            **percentiles_ms(self.latency.sample),
        }

    # -- the one place requests are made ----------------------------------------------------------

    async def request(
        self,
        method: str,
        url: URL,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        idempotent: bool | None = None,
        retry_unconnected: bool = True,
        keep_body: bool = True,
    ) -> Reply:
        """Send one request, retrying what is worth retrying; return (status, body) of a 2xx answer.

        GET, PUT, PATCH and DELETE are retried on transport errors, timeouts, 5xx (not 501) and 429.
        POST is retried only when the server surely did not act on it (429, 503, connection refused):
        after a lost answer it may have created the object, which the caller checks by lookup.
        `retry_unconnected=False`: a connection that cannot be made (refused, DNS) fails at once (the
        probe before a cycle: a wrong host or port is said at once, not after a minute of retries).
        `keep_body=False`: a 2xx answer's body is read and let go as it arrives (its Reply's body is
        empty), for answers nobody reads: a PATCH adding members to a group of everyone is answered
        with the whole group, megabytes each, many in flight.
        """
        data = msgspec.json.encode(body) if body is not None else None
        try:
            # the first attempt outside stamina: most calls succeed, and building a retry context (or
            # the retry hook) for each of them was a fifth of the client's CPU time
            return await self._send(method, url, params, data, keep_body)
        except Exception as exc:
            retry_on = self._retry_hook(idempotent=method != "POST" if idempotent is None else idempotent,
                                        retry_unconnected=retry_unconnected)
            delay = retry_on(exc)
            if delay is False or self._retry.attempts <= 1:
                raise
        await asyncio.sleep(self._retry.wait_initial if delay is True else float(delay))
        async for attempt in stamina.retry_context(
            on=retry_on,
            attempts=self._retry.attempts - 1,
            timeout=self._retry.timeout,
            wait_initial=self._retry.wait_initial,
            wait_max=self._retry.wait_max,
            wait_jitter=self._retry.wait_initial,
        ):
            with attempt:
                return await self._send(method, url, params, data, keep_body)
        raise AssertionError("unreachable")

    def _retry_hook(self, *, idempotent: bool, retry_unconnected: bool = True) -> Callable[[Exception], bool | float]:
        """`retry_verdict`, counting each retry in `stats`; the first retry of this transport is logged."""

        def retry_on(exc: Exception) -> bool | float:
            if not retry_unconnected and isinstance(exc, TransportError) and not exc.sent:
                return False
            verdict = retry_verdict(exc, idempotent=idempotent)
            if verdict is not False:
                self.stats["retries"] += 1
                if not self._retry_logged:
                    self._retry_logged = True
                    log.warning("%s: retrying after %s (up to %d attempts within %.0f s; further retries on this "
                                "side are counted in the report, not logged)", self.name, exc, self._retry.attempts,
                                self._retry.timeout)
            return verdict

        return retry_on

    async def _send(self, method: str, url: URL, params: dict[str, str] | None, data: bytes | None,
                    keep_body: bool = True) -> Reply:
        """One HTTP exchange under the server's pause, rate limit and concurrency limit."""
        assert self._session is not None, "use ScimClient as an async context manager"
        for refresh in (False, True):
            await self.pause.wait()
            if self._bucket is not None:
                await self._bucket.take()
            header = await self._auth.header(self._session)
            if header != self._headers[0]:
                self._headers = self._headers_under(header)
            headers = self._headers[1] if data is None else self._headers[2]
            if not self.limit.try_acquire():
                await self.limit.acquire()
            status: int | None = None
            overloaded = False
            self.requests[method] += 1
            started = time.monotonic()
            try:
                status, payload, retry_after, location = await self._exchange(method, url, params, data, headers,
                                                                              keep_body)
            except FOREIGN_ERRORS as exc:
                failure = transport_error(exc, method, url, self.name,
                                          Side(self.name, shown_url(self.base_url), url_setting=self.url_setting))
                if isinstance(failure, ScimTimeoutError):
                    overloaded = True
                    self.stats["timeouts"] += 1
                raise failure from exc
            finally:
                self.latency.add(time.monotonic() - started)
                self.limit.release_now(overloaded=overloaded or status_overloads(status))
            if status == 401 and not refresh and self._auth.refreshable:
                self._auth.invalidate(header)
                continue
            if status in (401, 403):
                raise refused_credentials(method, url, status, self.name, configured=not isinstance(self._auth, NoAuth))
            if status >= 300:
                error = error_from_response(method, url, status, payload, retry_after, self._auth.secrets())
                if status in (429, 503):
                    self.stats[str(status)] += 1
                    self.pause.extend(error.retry_after if error.retry_after is not None else 1.0)
                if status == 429:
                    self._learn_rate(error.retry_after)
                raise error
            if self._learner is not None and self._learner.accepted() and self._bucket is not None:
                self._bucket.rate = self._learner.rate or self._bucket.rate
            return Reply(status, payload, location)
        raise AssertionError("unreachable")

    def _headers_under(self, authorization: str | None) -> tuple[str | None, CIMultiDictProxy[str], CIMultiDictProxy[str]]:
        """The headers of a request without a body and of one with a body, under `authorization`: read-only
        multidicts, which aiohttp copies as they are (from a dict it would build one for every request)."""
        auth = {"Authorization": authorization} if authorization else {}
        return (authorization, CIMultiDictProxy(CIMultiDict(auth)),
                CIMultiDictProxy(CIMultiDict({"Content-Type": self._content_type, **auth})))

    async def _exchange(self, method: str, url: URL, params: dict[str, str] | None, data: bytes | None,
                        headers: CIMultiDictProxy[str], keep_body: bool = True) -> tuple[int, Body, str | None, str | None]:
        """One request, following redirects that stay within the configured origin (`redirect_target`
        decides; aiohttp's own following would leave it, and turn a POST into a GET); each request is
        counted. Returns status, body (b"" for a 2xx answer when not `keep_body`: read to its end, so
        the connection is kept, without holding it), Retry-After and Location."""
        assert self._session is not None
        for hops in range(MAX_REDIRECTS + 1):
            async with self._session.request(method, url, params=params, data=data, headers=headers,
                                             allow_redirects=False) as response:
                if keep_body or not 200 <= response.status < 300:
                    payload = await _body(response.content)
                else:
                    while await response.content.readany():
                        pass
                    payload = b""
                status, location = response.status, response.headers.get("Location")
                if status not in REDIRECT_STATUSES:
                    return status, payload, response.headers.get("Retry-After"), location
            url = redirect_target(method, url, status, location, origin=self.base_url, hops=hops,
                                  where=f"{method} {url.path} on {self.name}", secrets=self._auth.secrets())
            params = None  # the Location says the whole URL to ask next
            self.requests[method] += 1
        raise AssertionError("unreachable: redirect_target refuses the hop past MAX_REDIRECTS")

    def _learn_rate(self, pause: float | None) -> None:
        """After a 429, pace requests just under the rate the server accepted (until the learner
        gives up: then pacing stops for good)."""
        if self._learner is None:
            return
        rate = self._learner.refused(pause)
        if rate is None:
            return
        if self._learner.gave_up:
            self._learner, self._bucket = None, None
            self.stats["rate_learning_dropped"] = 1
            self.stats.pop("learned_rate", None)
            return
        if self._bucket is None:
            self._bucket = TokenBucket(rate, burst=1.0)
        self._bucket.rate = rate
        self.stats["learned_rate"] = round(rate, 1)  # type: ignore[assignment]  # the one float this Counter holds


async def _body(content: aiohttp.StreamReader) -> Body:
    """A response's whole body. Memory: a body of more than one chunk is read into one growing buffer,
    not kept as chunks and joined (which holds it twice at once: a page holding a group of a million
    members is tens of megabytes); it is then a bytearray, which everything reading a body accepts."""
    first = await content.readany()
    if content.at_eof():
        return first
    body = bytearray(first)
    async for chunk in content.iter_any():
        body += chunk
    return body
