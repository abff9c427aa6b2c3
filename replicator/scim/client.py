"""The SCIM client: one aiohttp session per side; the only code that makes SCIM requests.

`ScimClient` sends each request under the server's pause, rate limit and concurrency limit, follows
redirects only within the configured origin (`auth.redirect_target`), retries what `retry.retry_verdict`
allows, and hands every failure to `status`, which translates it once into `replicator.errors`. Answers
are decoded by `wire`; a listing's bookkeeping (duplicates, totalResults, completeness) is `paging`'s:
listing advances by the number of items actually returned and stops at totalResults or an empty page.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Self

import aiohttp
import msgspec
import stamina
from yarl import URL

from replicator import __version__
from replicator.errors import AuthError, ProtocolError, ScimStatusError, ScimTimeoutError
from replicator.scim.auth import MAX_REDIRECTS, REDIRECT_STATUSES, Auth, NoAuth, auth_for, redirect_target
from replicator.scim.latency import Latencies, percentiles_ms
from replicator.scim.limits import AdaptiveLimit, Pause, RateLearner, TokenBucket
from replicator.scim.paging import ReadReport, fresh_resources, next_count, note_total, remembering, uses_cursor
from replicator.scim.retry import RetryPolicy, retry_verdict
from replicator.scim.status import FOREIGN_ERRORS, error_from_response, status_overloads, transport_error
from replicator.scim.urns import BULK_REQUEST, SEARCH_REQUEST
from replicator.scim.wire import (
    SCIM_JSON,
    BulkResult,
    ServerFeatures,
    any_decoder,
    bulk_results,
    decode_json,
    decode_list,
    expect_resource,
    features_from,
)

if TYPE_CHECKING:
    from replicator.config import SideConfig

_LONGEST_FILTER_IN_URL = 1024  # bytes of filter text before we search with POST /.search instead

# retries are counted in ScimClient.stats and reported per cycle; stamina's own log line per retry
# would flood the log under a 429 storm
stamina.instrumentation.set_on_retry_hooks([])
ENDPOINTS = {"User": "Users", "Group": "Groups"}


class Reply(NamedTuple):
    """A 2xx answer: status, body, and the Location header (where a create put the object)."""

    status: int
    body: bytes
    location: str | None


class ScimClient:
    """Talks to one SCIM server. Use as an async context manager."""

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
        paging: str = "auto",
        retry: RetryPolicy | None = None,
        rate_limit: float | None = None,
        min_concurrency: int | None = None,
    ) -> None:
        self.base_url = URL(base_url.rstrip("/"))
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
        self.features = ServerFeatures()
        self._paging = paging
        self._retry = retry or RetryPolicy()
        self.stats: Counter[str] = Counter()  # retries, 429, 503, timeouts
        self.latency = Latencies()
        self.pause = Pause(max_pause=self._retry.max_pause)
        self._bucket = TokenBucket(rate_limit) if rate_limit else None
        self._learner = None if rate_limit else RateLearner()  # a configured rate is not second-guessed
        self.limit = AdaptiveLimit(min_concurrency or max_connections, max_connections)

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

    def flow(self) -> dict[str, float]:
        """How the calls went so far: retries and throttling answers, the concurrency limit, pauses, latency."""
        return {
            **{k: float(v) for k, v in self.stats.items()},
            "concurrency": float(self.limit.current),
            "concurrency_cuts": float(self.limit.cuts),
            "paused_seconds": round(self.pause.total, 3),
            **percentiles_ms(self.latency.sample),
        }

    @property
    def writes(self) -> int:
        return sum(n for m, n in self.requests.items() if m in ("POST", "PUT", "PATCH", "DELETE"))

    # -- the one place requests are made ----------------------------------------------------------

    async def request(
        self,
        method: str,
        url: URL,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        idempotent: bool | None = None,
    ) -> Reply:
        """Send one request, retrying what is worth retrying; return (status, body) of a 2xx answer.

        GET, PUT, PATCH and DELETE are retried on transport errors, timeouts, 5xx (not 501) and 429.
        POST is retried only when the server surely did not act on it (429, 503, connection refused):
        after a lost answer it may have created the object, which the caller checks by lookup.
        """
        data = msgspec.json.encode(body) if body is not None else None
        retry_on = self._retry_hook(idempotent=method != "POST" if idempotent is None else idempotent)
        try:
            # the first attempt outside stamina: most calls succeed, and building a retry context
            # for each of them was a fifth of the client's CPU time
            return await self._send(method, url, params, data)
        except Exception as exc:
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
                return await self._send(method, url, params, data)
        raise AssertionError("unreachable")

    def _retry_hook(self, *, idempotent: bool) -> Callable[[Exception], bool | float]:
        """`retry_verdict`, counting each retry in `stats`."""

        def retry_on(exc: Exception) -> bool | float:
            verdict = retry_verdict(exc, idempotent=idempotent)
            if verdict is not False:
                self.stats["retries"] += 1
            return verdict

        return retry_on

    async def _send(self, method: str, url: URL, params: dict[str, str] | None, data: bytes | None) -> Reply:
        """One HTTP exchange under the server's pause, rate limit and concurrency limit."""
        assert self._session is not None, "use ScimClient as an async context manager"
        for refresh in (False, True):
            await self.pause.wait()
            if self._bucket is not None:
                await self._bucket.take()
            header = await self._auth.header(self._session)
            headers = {"Content-Type": SCIM_JSON} if data is not None else {}
            if header:
                headers["Authorization"] = header
            await self.limit.acquire()
            status: int | None = None
            overloaded = False
            self.requests[method] += 1
            started = time.monotonic()
            try:
                status, payload, retry_after, location = await self._exchange(method, url, params, data, headers)
            except FOREIGN_ERRORS as exc:
                failure = transport_error(exc, method, url, self.name)
                if isinstance(failure, ScimTimeoutError):
                    overloaded = True
                    self.stats["timeouts"] += 1
                raise failure from exc
            finally:
                self.latency.add(time.monotonic() - started)
                overloaded = overloaded or status_overloads(status)
                await self.limit.release(overloaded=overloaded)
            if status == 401 and not refresh and self._auth.refreshable:
                self._auth.invalidate(header)
                continue
            if status in (401, 403):
                raise AuthError(f"{method} {url.path} answered {status}: {self.name} refused our credentials")
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

    async def _exchange(self, method: str, url: URL, params: dict[str, str] | None, data: bytes | None,
                        headers: dict[str, str]) -> tuple[int, bytes, str | None, str | None]:
        """One request, following redirects that stay within the configured origin (`redirect_target`
        decides; aiohttp's own following would leave it, and turn a POST into a GET); each request is
        counted. Returns status, body, Retry-After and Location."""
        assert self._session is not None
        for hops in range(MAX_REDIRECTS + 1):
            async with self._session.request(method, url, params=params, data=data, headers=headers,
                                             allow_redirects=False) as response:
                payload = await response.read()
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

    async def bulk(self, operations: list[dict[str, Any]]) -> list[BulkResult | None]:
        """Send operations as one Bulk request; one result per operation, None where the server gave
        none (it stopped early). POST results are matched by bulkId, the others by position."""
        url = self.base_url / "Bulk"
        body = {"schemas": [BULK_REQUEST], "Operations": operations}
        _, payload, _ = await self.request("POST", url, body=body)
        results = bulk_results(operations, decode_json(payload, f"POST {url.path}: {self.name}"))
        if results is None:
            raise ProtocolError(f"POST {url.path}: {self.name} answered without Operations")
        self.stats["bulk_operations"] += len(operations)
        return results

    def resource_url(self, kind: str, resource_id: str | None = None) -> URL:
        url = self.base_url / ENDPOINTS[kind]
        return url / resource_id if resource_id is not None else url

    # -- discovery ----------------------------------------------------------------------------------

    async def discover(self) -> ServerFeatures:
        """Read ServiceProviderConfig; a server without one keeps the defaults."""
        url = self.base_url / "ServiceProviderConfig"
        try:
            _, payload, _ = await self.request("GET", url)
        except ScimStatusError:
            return self.features
        features = features_from(decode_json(payload, f"GET {url.path}: {self.name}"))
        if features is not None:
            self.features = features
        return self.features

    # -- reads --------------------------------------------------------------------------------------

    async def iter_pages(
        self, kind: str, report: ReadReport, *, page_size: int = 500, cursor: bool | None = None,
        with_raw: bool = False, read_before: Callable[[list[str]], Awaitable[set[str]]] | None = None,
        max_page_bytes: int | None = None,
    ) -> AsyncGenerator[list[Any], None]:
        """Yield pages of resources (duplicates removed), filling `report` as it goes; with `with_raw`,
        pages of (id, JSON bytes as sent) pairs, left for the caller to decode when it needs to.

        `max_page_bytes`: ask for pages of about this size at most (for resources as large as a group
        of every user): the first page asks for one resource, each next one for as many as the last
        page's resources average into that size, at most four times as many as before and `page_size`,
        and a divisor of the number read so far (`aligned_count`).

        The next page is requested while the caller works on this one. Duplicates are found with
        `read_before(ids)` (which notes the ids and returns those it was given before) when the caller
        keeps that record itself, or with a set of the ids read. A failing page raises after recording
        the problem in `report`, so the caller knows the read is incomplete. Close the iterator
        (`contextlib.aclosing`) when leaving early, so the page requested ahead is cancelled.
        """
        use_cursor = uses_cursor(self._paging, self.features.cursor_paging) if cursor is None else cursor
        url = self.resource_url(kind)
        if read_before is None:
            read_before = remembering()

        count = page_size if max_page_bytes is None else 1

        def request_page(start: int, next_cursor: str) -> asyncio.Future[Reply]:
            params = {"count": str(count)}
            if use_cursor:
                params["cursor"] = next_cursor
            else:
                params["startIndex"] = str(start)
            return asyncio.ensure_future(self.request("GET", url, params=params))

        start = 1
        ahead: asyncio.Future[Reply] | None = request_page(start, "")
        try:
            while ahead is not None:
                try:
                    payload = (await ahead).body
                    page = decode_list(payload)
                except msgspec.ValidationError as exc:
                    report.problems.append(f"page {report.pages + 1}: not a SCIM ListResponse")
                    raise ProtocolError(f"GET {url.path}: {self.name} sent a page that is not a ListResponse") from exc
                except msgspec.DecodeError as exc:
                    report.problems.append(f"page {report.pages + 1}: invalid JSON")
                    raise ProtocolError(f"GET {url.path}: {self.name} sent invalid JSON") from exc
                except Exception as exc:
                    report.problems.append(f"page {report.pages + 1}: {exc}")
                    raise
                ahead = None
                report.pages += 1
                note_total(report, page.total_results)
                fresh = await fresh_resources(page, report, with_raw, read_before)
                if max_page_bytes is not None and page.Resources:
                    count = next_count(count, page_size, max_page_bytes, len(page.Resources), len(payload),
                                       start - 1 + len(page.Resources))
                if use_cursor:
                    if page.nextCursor and page.Resources:
                        ahead = request_page(start, page.nextCursor)
                elif page.Resources:
                    start += len(page.Resources)
                    if not fresh:
                        report.problems.append(f"page {report.pages}: only ids already seen (server ignores startIndex?)")
                    elif page.total_results is None or start <= page.total_results:
                        ahead = request_page(start, "")
                del payload, page  # a page of large groups is megabytes: not kept while the caller works
                if fresh:
                    yield fresh
            report.finished = True
        finally:
            if ahead is not None:
                ahead.cancel()
                await asyncio.gather(ahead, return_exceptions=True)

    async def get(self, kind: str, resource_id: str) -> dict[str, Any]:
        url = self.resource_url(kind, resource_id)
        _, payload, _ = await self.request("GET", url)
        return expect_resource(payload, f"GET {url.path}: {self.name}")

    async def find(self, kind: str, filter_expression: str) -> list[dict[str, Any]]:
        """Resources matching a filter (at most a few: this is for finding one object)."""
        url = self.resource_url(kind)
        if len(filter_expression.encode()) <= _LONGEST_FILTER_IN_URL:
            _, payload, _ = await self.request("GET", url, params={"filter": filter_expression, "count": "10"})
        else:
            # too long for a URL (servers cap request lines and headers): RFC 7644 3.4.3 search by POST
            url = url / ".search"
            body = {"schemas": [SEARCH_REQUEST], "filter": filter_expression, "count": 10}
            _, payload, _ = await self.request("POST", url, body=body, idempotent=True)
        try:
            found = [any_decoder.decode(raw) for raw in decode_list(payload).Resources]
            return [r for r in found if isinstance(r, dict)]
        except msgspec.DecodeError as exc:
            raise ProtocolError(f"GET {url.path}: {self.name} sent a search answer that is not a ListResponse") from exc

    # -- writes -------------------------------------------------------------------------------------

    async def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        url = self.resource_url(kind)
        reply = await self.request("POST", url, body=body)
        if not reply.body.strip() and reply.location:
            # some servers answer 201 with a Location header and no body
            return {**body, "id": URL(reply.location).name}
        return expect_resource(reply.body, f"POST {url.path}: {self.name}")

    async def patch(self, kind: str, resource_id: str, body: dict[str, Any]) -> None:
        await self.request("PATCH", self.resource_url(kind, resource_id), body=body)

    async def replace(self, kind: str, resource_id: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """PUT; the resource the server answered with, or None when it answered without one."""
        url = self.resource_url(kind, resource_id)
        reply = await self.request("PUT", url, body=body)
        return expect_resource(reply.body, f"PUT {url.path}: {self.name}") if reply.body.strip() else None

    async def delete(self, kind: str, resource_id: str) -> None:
        await self.request("DELETE", self.resource_url(kind, resource_id))


def client_for(cfg: SideConfig, name: str, *, max_connections: int, min_concurrency: int | None = None) -> ScimClient:
    """A client for one side of the configuration (not yet opened)."""
    return ScimClient(
        cfg.url,
        auth=auth_for(cfg),
        timeout=cfg.timeout,
        verify_tls=cfg.verify_tls,
        ca_bundle=cfg.ca_bundle,
        max_connections=max_connections,
        name=name,
        paging=cfg.paging,
        retry=RetryPolicy(attempts=cfg.retry_attempts, timeout=cfg.retry_timeout),
        rate_limit=cfg.rate_limit,
        min_concurrency=min_concurrency,
    )
