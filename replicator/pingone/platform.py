"""PingOne's Platform API over HTTP (`PlatformApi`): one environment's `{api_url}/environments/{env}/`
resources, JSON in and out, HAL lists followed by cursor (`_links.next.href`) until it is absent.

Every request goes through `HttpTransport` (pause, rate and concurrency limits, retries, the status ->
error table), with a worker app's token from `{auth_url}/{env}/as/token`. A `next` link that leaves
the configured origin is not followed (the read is then incomplete)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Self

from yarl import URL

from replicator.errors import ProtocolError
from replicator.scim.auth import Auth
from replicator.scim.paging import ReadReport
from replicator.scim.retry import RetryPolicy
from replicator.scim.transport import HttpTransport
from replicator.scim.wire import decode_json

PAGE_LIMIT = 1000  # the Platform API's largest `limit` (users come at most 200 a page whatever it asks)


def same_origin(url: URL, base: URL) -> bool:
    return (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)


class PlatformApi:
    """One PingOne environment's Platform API. Use as an async context manager."""

    def __init__(self, api_url: str, environment: str, *, auth: Auth, name: str, timeout: float = 30.0,
                 verify_tls: bool = True, ca_bundle: str | None = None, max_connections: int = 16,
                 retry: RetryPolicy | None = None, rate_limit: float | None = None,
                 min_concurrency: int | None = None) -> None:
        self.base = URL(api_url.rstrip("/")) / "environments" / environment
        self.transport = HttpTransport(
            str(self.base), auth=auth, timeout=timeout, verify_tls=verify_tls, ca_bundle=ca_bundle,
            max_connections=max_connections, name=name, retry=retry, rate_limit=rate_limit,
            min_concurrency=min_concurrency, content_type="application/json",
        )
        self.transport.url_setting = "api_url"  # the Platform API's host (a TLS hint names it)
        self.name = name

    async def __aenter__(self) -> Self:
        await self.transport.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.transport.__aexit__(*exc)

    def url(self, *parts: str) -> URL:
        url = self.base
        for part in parts:
            url = url / part
        return url

    async def call(self, method: str, *parts: str, body: Any = None, params: dict[str, str] | None = None,
                   idempotent: bool | None = None) -> Any:
        """One request; the decoded JSON answer (None when it has no body)."""
        url = self.url(*parts)
        reply = await self.transport.request(method, url, params=params, body=body, idempotent=idempotent)
        if not reply.body.strip():
            return None
        return decode_json(reply.body, f"{method} {url.path}: {self.name}")

    async def pages(self, collection: str, report: ReadReport, *, params: dict[str, str] | None = None,
                    embedded: str | None = None, page_size: int | None = PAGE_LIMIT) -> AsyncIterator[list[dict[str, Any]]]:
        """The pages of a HAL collection (`users`, `groups`, `populations`, `groups/<id>/memberOfGroups`),
        filling `report`: finished when the last page has no `next` link. The caller counts what it
        keeps (`report.seen`); the collection's `count`, when the first page says it, is the total.
        `page_size` None: no `limit` (an operation that declares none: `groups/<id>/memberOfGroups`)."""
        url: URL | None = self.url(*collection.split("/"))
        limit = {} if page_size is None else {"limit": str(max(1, min(page_size, PAGE_LIMIT)))}
        query: dict[str, str] | None = {**limit, **(params or {})} or None
        key = embedded or collection.rsplit("/", 1)[-1]
        while url is not None:
            reply = await self.transport.request("GET", url, params=query)
            answer = decode_json(reply.body, f"GET {url.path}: {self.name}")
            if not isinstance(answer, dict):
                report.problems.append(f"page {report.pages + 1}: not a HAL collection")
                raise ProtocolError(f"GET {url.path}: {self.name} answered with something that is not a collection")
            report.pages += 1
            if report.pages == 1 and isinstance(answer.get("count"), int) and not params:
                report.total_results = answer["count"]
            items = (answer.get("_embedded") or {}).get(key, [])
            if not isinstance(items, list):
                report.problems.append(f"page {report.pages}: `_embedded.{key}` is not a list")
                items = []
            url, query = self._next(answer, report), None
            yield [item for item in items if isinstance(item, dict)]
        report.finished = True

    def _next(self, answer: dict[str, Any], report: ReadReport) -> URL | None:
        """The next page's URL, from `_links.next.href`; None at the end, or when it leaves our origin."""
        link = (answer.get("_links") or {}).get("next")
        href = link.get("href") if isinstance(link, dict) else None
        if not isinstance(href, str) or not href:
            return None
        url = URL(href)
        if not url.is_absolute():
            url = self.base.join(url)
        if not same_origin(url, self.base):
            report.problems.append(f"page {report.pages}: the next link leaves {self.base.origin()}")
            return None
        return url
