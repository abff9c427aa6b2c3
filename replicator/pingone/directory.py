"""A PingOne environment as a `Directory` (`PingOneDirectory`), through its Platform API.

Users, groups, memberships and nesting are read and written there (PingOne's SCIM API has no Groups
and caps its lists at 200). The cycle sees SCIM-shaped forms (replicator/pipeline/pingone.py translates
both ways) and SCIM PatchOp bodies, which become Platform calls: a user's changed attributes in one
PATCH (enabled and population through their own endpoints), a group's name in a PUT, its members one
call each. Populations are named, not numbered (ids differ per environment): when both sides are
PingOne, a user's population travels by name, through `populations` (source name -> destination name),
and so do the population ids a dynamic group's userFilter names (the destination's `populations`
`replicates_from` the source's: writing.py sends the filter in its ids, reading.py reads it in the source's).
Dynamic groups (members PingOne computes) and external ones are left out of the read, and noted.
The SCIM client of the read paths shares the Platform transport's budget (`one_budget`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Self

import msgspec
from yarl import URL

from replicator.errors import ProtocolError
from replicator.pingone.memberships import Memberships
from replicator.pingone.paths import probe_paths
from replicator.pingone.platform import PlatformApi
from replicator.pingone.populations import Populations
from replicator.pingone.reading import PingOneReader
from replicator.pingone.writing import PingOneWriter
from replicator.pipeline import pingone as p1
from replicator.pipeline.canonical import GROUP, USER
from replicator.pipeline.patch import apply_operations
from replicator.scim.auth import auth_for
from replicator.scim.client import ScimClient
from replicator.scim.paging import ReadReport
from replicator.scim.retry import RetryPolicy
from replicator.scim.transport import HttpTransport
from replicator.scim.wire import BulkResult, ServerFeatures

if TYPE_CHECKING:
    from replicator.config import SideConfig
    from replicator.directory import Directory

_encode = msgspec.json.encode
_FIND_LIMIT = "10"


class PingOneDirectory:
    """One PingOne environment. Use as an async context manager."""

    def __init__(self, cfg: SideConfig, *, name: str, max_connections: int, min_concurrency: int | None = None,
                 with_populations: bool = False) -> None:
        assert cfg.api_url and cfg.pingone_environment, "apply_presets derives api_url for a PingOne side"
        self.api = PlatformApi(
            cfg.api_url, cfg.pingone_environment, auth=auth_for(cfg, name), name=name, timeout=cfg.timeout,
            verify_tls=cfg.verify_tls, ca_bundle=cfg.ca_bundle, max_connections=max_connections,
            retry=RetryPolicy(attempts=cfg.retry_attempts, timeout=cfg.retry_timeout), rate_limit=cfg.rate_limit,
            min_concurrency=min_concurrency,
        )
        assert cfg.url, "apply_presets derives the SCIM url for a PingOne side"
        self.scim = ScimClient(cfg.url, auth=auth_for(cfg, name), name=f"{name} SCIM", timeout=cfg.timeout,
                               verify_tls=cfg.verify_tls, ca_bundle=cfg.ca_bundle, max_connections=max_connections,
                               paging="index", retry=RetryPolicy(attempts=cfg.retry_attempts, timeout=cfg.retry_timeout),
                               rate_limit=cfg.rate_limit)
        transport = self.api.transport
        one_budget(self.scim, transport)
        self.name = name
        self.base_url = self.api.base
        self.features = ServerFeatures(patch=True, filter=True, bulk=False)
        self.requests, self.stats, self.latency = transport.requests, transport.stats, transport.latency
        self.pause, self.limit = transport.pause, transport.limit
        self.populations = Populations(replicated=with_populations, rename=cfg.populations,
                                       default=cfg.default_population)
        self.reader = PingOneReader(self.api, Memberships(self.api), self.populations, self.scim)
        self.writer = PingOneWriter(self.api, self.reader)

    async def __aenter__(self) -> Self:
        await self.api.__aenter__()
        await self.scim.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.scim.__aexit__(*exc)
        await self.api.__aexit__(*exc)

    def flow(self) -> dict[str, float]:
        return self.api.transport.flow()

    def notes(self) -> list[str]:
        """What the cycle should say about this side: the API and read paths it went through, groups
        left out of the read, group descriptions a SCIM side cannot hold."""
        paths = f"{self.name}: PingOne Platform API (users, groups, memberships, nesting" + (
            ", populations by name)" if self.populations.replicated else ")")
        notes = [paths, f"{self.name}: read paths: {self.reader.paths.words()}"]
        notes += [f"{self.name}: {count} {why} groups not replicated member by member (PingOne computes their "
                  "members)" for why, count in sorted(self.reader.skipped.items())]
        if dropped := self.reader.descriptions_dropped:
            notes.append(f"{self.name}: {dropped} group descriptions not replicated (a SCIM Group has none)")
        return notes

    def storable(self, kind: str, form: dict[str, Any]) -> tuple[dict[str, Any], Sequence[str]]:
        return p1.storable(kind, form)

    # -- reads ----------------------------------------------------------------------------------

    async def discover(self) -> ServerFeatures:
        """Learn the populations and which read paths the environment offers (a probe of its SCIM API);
        a new cycle reads groups, nesting and members again."""
        await self.populations.learn(self.api)
        self.reader.forget()
        self.reader.paths = await probe_paths(self.scim.transport, URL(self.scim.base_url))
        return self.features

    async def iter_pages(
        self, kind: str, report: ReadReport, *, page_size: int = 500, cursor: bool | None = None,
        with_raw: bool = False, read_before: Callable[[list[str]], Awaitable[set[str]]] | None = None,
        max_page_bytes: int | None = None,
    ) -> AsyncGenerator[list[Any], None]:
        """Every user (Platform pages, at most 200 users each) or every replicable group with its direct
        members, as SCIM-shaped forms (with_raw: (id, JSON bytes) pairs)."""
        pages = self.reader.user_pages(report, page_size) if kind == USER else self.reader.group_pages(report, page_size)
        async for forms in pages:
            ids = [form["id"] for form in forms]
            earlier = await read_before(ids) if read_before is not None else set()
            fresh = [form for form in forms if form["id"] not in earlier]
            report.duplicates += len(forms) - len(fresh)
            if fresh:
                yield [(form["id"], _encode(form)) for form in fresh] if with_raw else fresh

    async def get(self, kind: str, resource_id: str) -> dict[str, Any]:
        if kind == USER:
            return p1.user_to_scim(await self.api.call("GET", "users", resource_id),
                                   population_names=self.populations.names())
        return await self.reader.group_form(await self.api.call("GET", "groups", resource_id))

    async def find(self, kind: str, filter_expression: str) -> list[dict[str, Any]]:
        """Objects matching the cycle's match filter (`userName eq "x"`, `displayName eq "x"`)."""
        expression = p1.platform_filter(kind, filter_expression)
        if expression is None:
            raise ProtocolError(f"{self.name}: cannot search PingOne with the filter {filter_expression!r}")
        collection = "users" if kind == USER else "groups"
        answer = await self.api.call("GET", collection, params={"filter": expression, "limit": _FIND_LIMIT})
        found = [item for item in ((answer or {}).get("_embedded") or {}).get(collection, []) if isinstance(item, dict)]
        if kind == USER:
            return [p1.user_to_scim(user, population_names=self.populations.names()) for user in found]
        return [await self.reader.group_form(group) for group in found if not self.reader.unreplicable(group)]

    # -- writes ---------------------------------------------------------------------------------

    async def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        return await (self.writer.create_user(body) if kind == USER else self.writer.create_group(body))

    async def patch(self, kind: str, resource_id: str, body: dict[str, Any], *, answer: bool = True) -> None:
        """A SCIM PatchOp: members one call each; other attributes against the object as it is."""
        operations = [op for op in body.get("Operations", []) if isinstance(op, dict)]
        if kind == GROUP:
            others = [op for op in operations if not await self.writer.member_operation(resource_id, op)]
            if others:
                current = await self.get(GROUP, resource_id)
                await self.writer.write_group(resource_id, current, apply_operations(current, others))
            return
        current = await self.get(USER, resource_id)
        await self.writer.write_user(resource_id, current, apply_operations(current, operations))

    async def replace(self, kind: str, resource_id: str, body: dict[str, Any]) -> dict[str, Any] | None:
        current = await self.get(kind, resource_id)
        if kind == USER:
            await self.writer.write_user(resource_id, current, body)
        else:
            await self.writer.write_group(resource_id, current, body)
        return await self.get(kind, resource_id)

    async def delete(self, kind: str, resource_id: str) -> None:
        await self.api.call("DELETE", "users" if kind == USER else "groups", resource_id)
        if kind == GROUP:
            self.reader.group_ids.discard(resource_id)

    async def bulk(self, operations: list[dict[str, Any]]) -> list[BulkResult | None]:
        raise ProtocolError(f"{self.name}: PingOne has no SCIM Bulk")


def one_budget(scim: ScimClient, platform: HttpTransport) -> None:
    """One budget per side (PingOne limits an environment, whichever of its APIs is asked): the SCIM
    client's requests wait on the Platform transport's pause, token bucket (`rate_limit`) and concurrency
    limit, and count in its requests, stats and latency, which the cycle's summary reports. Without a
    `rate_limit` each transport learns its own rate from its 429s (the pause is still shared)."""
    scim.transport.share_budget(platform)
    scim.pause, scim.limit = platform.pause, platform.limit  # the client's own views of its transport's
    scim.requests, scim.stats, scim.latency = platform.requests, platform.stats, platform.latency


def _is_a_directory(directory: PingOneDirectory) -> Directory:  # mypy proves PingOneDirectory is a Directory
    return directory
