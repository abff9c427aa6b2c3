"""The SCIM client: the resource operations of one side (a `replicator.directory.Directory`).

`ScimClient` reads (discovery, listing, get, find) and writes (create, patch, replace, delete, bulk) SCIM
resources; every request goes through its `HttpTransport` (pause, rate and concurrency limits, redirects,
retries, error translation). Answers are decoded by `wire`; a listing's bookkeeping (duplicates,
totalResults, completeness) is `paging`'s: listing advances by the number of items actually returned and
stops at totalResults or an empty page.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Self

import msgspec
from yarl import URL

from replicator.errors import ProtocolError
from replicator.scim.auth import Auth, NoAuth, auth_for
from replicator.scim.paging import ReadReport, fresh_resources, next_count, note_total, remembering, uses_cursor
from replicator.scim.probe import probe_base
from replicator.scim.retry import RetryPolicy
from replicator.scim.transport import HttpTransport, Reply
from replicator.scim.urns import BULK_REQUEST, SEARCH_REQUEST
from replicator.scim.wire import (
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
    from replicator.directory import Directory

_LONGEST_FILTER_IN_URL = 1024  # bytes of filter text before we search with POST /.search instead
ENDPOINTS = {"User": "Users", "Group": "Groups"}


def resource_url(base_url: URL, kind: str, resource_id: str | None = None) -> URL:
    """The endpoint of a kind (`Users`) under a server's base URL, or of one resource under it."""
    url = _endpoint(base_url, kind)
    return url / resource_id if resource_id is not None else url


@functools.lru_cache(maxsize=64)
def _endpoint(base_url: URL, kind: str) -> URL:
    """`base_url / Users`, made once (yarl's `/` was about 1% of a copy's CPU, once per create)."""
    return base_url / ENDPOINTS[kind]


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
        credentials: str = "",
    ) -> None:
        self.transport = HttpTransport(
            base_url, auth=auth, timeout=timeout, verify_tls=verify_tls, ca_bundle=ca_bundle,
            max_connections=max_connections, name=name, retry=retry, rate_limit=rate_limit,
            min_concurrency=min_concurrency,
        )
        self.base_url = self.transport.base_url
        self.name = name
        self.features = ServerFeatures()
        self._paging = paging
        # how this side authenticates (none, bearer, basic, oauth), for the probe's messages
        self.credentials = credentials or ("none" if auth is None or isinstance(auth, NoAuth) else "")
        # the transport's own counters, under the names the rest of the house reads
        self.requests = self.transport.requests
        self.stats = self.transport.stats  # retries, 429, 503, timeouts, bulk_operations
        self.latency = self.transport.latency
        self.pause = self.transport.pause
        self.limit = self.transport.limit

    async def __aenter__(self) -> Self:
        await self.transport.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.transport.__aexit__(*exc)

    def flow(self) -> dict[str, float]:
        """How the calls went so far: retries and throttling answers, the concurrency limit, pauses, latency."""
        return self.transport.flow()

    async def bulk(self, operations: list[dict[str, Any]]) -> list[BulkResult | None]:
        """Send operations as one Bulk request; one result per operation, None where the server gave
        none (it stopped early). POST results are matched by bulkId, the others by position."""
        url = self.base_url / "Bulk"
        body = {"schemas": [BULK_REQUEST], "Operations": operations}
        _, payload, _ = await self.transport.request("POST", url, body=body)
        results = bulk_results(operations, decode_json(payload, f"POST {url.path}: {self.name}"))
        if results is None:
            raise ProtocolError(f"POST {url.path}: {self.name} answered without Operations")
        self.stats["bulk_operations"] += len(operations)
        return results

    # -- discovery ----------------------------------------------------------------------------------

    def storable(self, kind: str, form: dict[str, Any]) -> tuple[dict[str, Any], Sequence[str]]:
        """A SCIM server is sent the whole form (what it drops is learned, not assumed: cycle/keeps.py)."""
        return form, ()

    def notes(self) -> list[str]:
        return []

    async def discover(self) -> ServerFeatures:
        """Check that the base URL answers as SCIM (`probe.probe_base`: one precise error, before any
        write, for a wrong path, a server that is not SCIM, refused credentials or an unreachable host)
        and read its ServiceProviderConfig; a server without one keeps the defaults."""
        url = self.base_url / "ServiceProviderConfig"
        _, payload = await probe_base(self.transport, self.credentials)
        if payload is None:
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
        pages of (id, JSON as sent) pairs, the JSON bytes-like (`msgspec.Raw`: a view into the page's
        payload), left for the caller to decode when it needs to.

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
        url = resource_url(self.base_url, kind)
        if read_before is None:
            read_before = remembering()

        count = page_size if max_page_bytes is None else 1

        def request_page(start: int, next_cursor: str) -> asyncio.Future[Reply]:
            params = {"count": str(count)}
            if use_cursor:
                params["cursor"] = next_cursor
            else:
                params["startIndex"] = str(start)
            return asyncio.ensure_future(self.transport.request("GET", url, params=params))

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
        url = resource_url(self.base_url, kind, resource_id)
        _, payload, _ = await self.transport.request("GET", url)
        return expect_resource(payload, f"GET {url.path}: {self.name}")

    async def find(self, kind: str, filter_expression: str) -> list[dict[str, Any]]:
        """Resources matching a filter (at most a few: this is for finding one object)."""
        url = resource_url(self.base_url, kind)
        if len(filter_expression.encode()) <= _LONGEST_FILTER_IN_URL:
            _, payload, _ = await self.transport.request("GET", url, params={"filter": filter_expression, "count": "10"})
        else:
            # too long for a URL (servers cap request lines and headers): RFC 7644 3.4.3 search by POST
            url = url / ".search"
            body = {"schemas": [SEARCH_REQUEST], "filter": filter_expression, "count": 10}
            _, payload, _ = await self.transport.request("POST", url, body=body, idempotent=True)
        try:
            found = [any_decoder.decode(raw) for raw in decode_list(payload).Resources]
            return [r for r in found if isinstance(r, dict)]
        except msgspec.DecodeError as exc:
            raise ProtocolError(f"GET {url.path}: {self.name} sent a search answer that is not a ListResponse") from exc

    # -- writes -------------------------------------------------------------------------------------

    async def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        url = resource_url(self.base_url, kind)
        reply = await self.transport.request("POST", url, body=body)
        if not reply.body.strip() and reply.location:
            # some servers answer 201 with a Location header and no body
            return {**body, "id": URL(reply.location).name}
        return expect_resource(reply.body, f"POST {url.path}: {self.name}")

    async def patch(self, kind: str, resource_id: str, body: dict[str, Any], *, answer: bool = True) -> dict[str, Any] | None:
        """PATCH; the resource the server answered with (200), else None (204, or a body that is not one:
        the PATCH was carried out all the same). `answer=False`: None, the answer not read into memory."""
        url = resource_url(self.base_url, kind, resource_id)
        reply = await self.transport.request("PATCH", url, body=body, keep_body=answer)
        if not answer or not reply.body.strip():
            return None
        try:
            return expect_resource(reply.body, f"PATCH {url.path}: {self.name}")
        except ProtocolError:
            return None

    async def replace(self, kind: str, resource_id: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """PUT; the resource the server answered with, or None when it answered without one."""
        url = resource_url(self.base_url, kind, resource_id)
        reply = await self.transport.request("PUT", url, body=body)
        return expect_resource(reply.body, f"PUT {url.path}: {self.name}") if reply.body.strip() else None

    async def delete(self, kind: str, resource_id: str) -> None:
        await self.transport.request("DELETE", resource_url(self.base_url, kind, resource_id))


def client_for(cfg: SideConfig, name: str, *, max_connections: int, min_concurrency: int | None = None) -> ScimClient:
    """A client for one side of the configuration (not yet opened)."""
    return ScimClient(
        cfg.url,
        auth=auth_for(cfg, name),
        timeout=cfg.timeout,
        verify_tls=cfg.verify_tls,
        ca_bundle=cfg.ca_bundle,
        max_connections=max_connections,
        name=name,
        paging=cfg.paging,
        retry=RetryPolicy(attempts=cfg.retry_attempts, timeout=cfg.retry_timeout),
        rate_limit=cfg.rate_limit,
        min_concurrency=min_concurrency,
        credentials=cfg.auth_mode,
    )


if TYPE_CHECKING:
    def _is_a_directory(client: ScimClient) -> Directory:
        """mypy proves here that ScimClient implements the Directory protocol (never runs)."""
        return client
