"""A PingOne environment as a `Directory` (`PingOneDirectory`), through its Platform API.

Users, groups, memberships and nesting are read and written there (PingOne's SCIM API has no Groups
and caps its lists at 200). The cycle sees SCIM-shaped forms (replicator/pipeline/pingone.py translates
both ways) and SCIM PatchOp bodies, which become Platform calls: a user's changed attributes in one
PATCH (enabled and population through their own endpoints), a group's name in a PUT, its members one
call each. Populations are named, not numbered (ids differ per environment): when both sides are
PingOne, a user's population travels by name, through `populations` (source name -> destination name).
Dynamic groups (members PingOne computes) and external ones are left out of the read, and noted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Self

import msgspec

from replicator.errors import ConflictError, NotFoundError, ProtocolError
from replicator.pingone.memberships import Memberships
from replicator.pingone.platform import PlatformApi
from replicator.pipeline import pingone as p1
from replicator.pipeline.canonical import GROUP, USER
from replicator.pipeline.patch import apply_operations
from replicator.scim.auth import auth_for
from replicator.scim.paging import ReadReport
from replicator.scim.retry import RetryPolicy
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
            cfg.api_url, cfg.pingone_environment, auth=auth_for(cfg), name=name, timeout=cfg.timeout,
            verify_tls=cfg.verify_tls, ca_bundle=cfg.ca_bundle, max_connections=max_connections,
            retry=RetryPolicy(attempts=cfg.retry_attempts, timeout=cfg.retry_timeout), rate_limit=cfg.rate_limit,
            min_concurrency=min_concurrency,
        )
        transport = self.api.transport
        self.name = name
        self.base_url = self.api.base
        self.features = ServerFeatures(patch=True, filter=True, bulk=False)
        self.requests, self.stats, self.latency = transport.requests, transport.stats, transport.latency
        self.pause, self.limit = transport.pause, transport.limit
        self.memberships = Memberships(self.api)
        self._with_populations = with_populations
        self._rename = dict(cfg.populations)  # source population name -> ours
        self._default_population = cfg.default_population
        self._population_names: dict[str, str] = {}  # id -> name
        self._default_population_id: str | None = None
        self._skipped: Counter[str] = Counter()  # groups left out of the read, by why
        self._group_ids: set[str] = set()

    async def __aenter__(self) -> Self:
        await self.api.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.api.__aexit__(*exc)

    def flow(self) -> dict[str, float]:
        return self.api.transport.flow()

    def notes(self) -> list[str]:
        """What the cycle should say about this side: groups left out of the read."""
        return [f"{self.name}: {count} {why} groups not replicated member by member (PingOne computes their members)"
                for why, count in sorted(self._skipped.items())]

    def storable(self, kind: str, form: dict[str, Any]) -> tuple[dict[str, Any], Sequence[str]]:
        return p1.storable(kind, form)

    # -- reads ----------------------------------------------------------------------------------

    async def discover(self) -> ServerFeatures:
        """Learn the populations (names and ids, the default one); a new cycle reads the nesting again."""
        report = ReadReport(kind=f"{self.name} populations")
        names: dict[str, str] = {}
        async for page in self.api.pages("populations", report):
            for population in page:
                names[str(population["id"])] = str(population.get("name", ""))
                if population.get("default"):
                    self._default_population_id = str(population["id"])
        self._population_names = names
        self._skipped.clear()
        self.memberships.forget()
        return self.features

    def _names(self) -> dict[str, str] | None:
        """Population id -> the name the other side knows it by (None: populations are not replicated)."""
        if not self._with_populations:
            return None
        ours_to_theirs = {ours: theirs for theirs, ours in self._rename.items()}
        return {pid: ours_to_theirs.get(name, name) for pid, name in self._population_names.items()}

    def _population_id(self, name: str | None) -> str | None:
        """Our population for the other side's population name: mapped, else the same name, else the
        configured default, else the environment's default population. None for no name (a user then
        lands in the default population; a group is environment-wide)."""
        if not self._with_populations or not name:
            return None
        by_name = {pname: pid for pid, pname in self._population_names.items()}
        wanted = self._rename.get(name, name)
        for candidate in (wanted, self._default_population):
            if candidate and candidate in by_name:
                return by_name[candidate]
        return self._default_population_id

    async def iter_pages(
        self, kind: str, report: ReadReport, *, page_size: int = 500, cursor: bool | None = None,
        with_raw: bool = False, read_before: Callable[[list[str]], Awaitable[set[str]]] | None = None,
        max_page_bytes: int | None = None,
    ) -> AsyncGenerator[list[Any], None]:
        """Every user (Platform pages, at most 200 users each) or every replicable group with its direct
        members, as SCIM-shaped forms (with_raw: (id, JSON bytes) pairs)."""
        pages = self._user_pages(report) if kind == USER else self._group_pages(report, page_size)
        async for forms in pages:
            ids = [form["id"] for form in forms]
            earlier = await read_before(ids) if read_before is not None else set()
            fresh = [form for form in forms if form["id"] not in earlier]
            report.duplicates += len(forms) - len(fresh)
            if fresh:
                yield [(form["id"], _encode(form)) for form in fresh] if with_raw else fresh

    async def _user_pages(self, report: ReadReport) -> AsyncGenerator[list[dict[str, Any]], None]:
        names = self._names()
        async for page in self.api.pages("users", report):
            report.seen += len(page)
            yield [p1.user_to_scim(user, population_names=names) for user in page if user.get("id")]

    async def _group_pages(self, report: ReadReport, page_size: int) -> AsyncGenerator[list[dict[str, Any]], None]:
        """All groups are listed first (a listing has no members), then their nesting, then pages of
        `page_size` groups with their members."""
        groups: list[dict[str, Any]] = []
        async for page in self.api.pages("groups", report):
            report.seen += len(page)
            for group in page:
                why = p1.unreplicable_group(group)
                if why:
                    self._skipped[why] += 1
                elif group.get("id"):
                    groups.append(group)
        self._group_ids = {str(group["id"]) for group in groups}
        await self.memberships.nesting(sorted(self._group_ids))
        for start in range(0, len(groups), page_size):
            yield [await self._group_form(group) for group in groups[start : start + page_size]]

    async def _group_form(self, group: dict[str, Any]) -> dict[str, Any]:
        members = await self.memberships.members(str(group["id"]))
        users = [m["value"] for m in members if m["type"] == "User"]
        nested = [m["value"] for m in members if m["type"] == "Group" and m["value"] in self._group_ids]
        return p1.group_to_scim(group, user_members=users, group_members=nested, population_names=self._names())

    async def get(self, kind: str, resource_id: str) -> dict[str, Any]:
        if kind == USER:
            return p1.user_to_scim(await self.api.call("GET", "users", resource_id), population_names=self._names())
        group = await self.api.call("GET", "groups", resource_id)
        await self._know_groups()
        return await self._group_form(group)

    async def _know_groups(self) -> None:
        """Outside a read of the groups (a lookup, a re-read before a write): the nesting index."""
        if self._group_ids:
            return
        report = ReadReport(kind=f"{self.name} groups")
        async for page in self.api.pages("groups", report):
            self._group_ids.update(str(g["id"]) for g in page if g.get("id") and not p1.unreplicable_group(g))
        await self.memberships.nesting(sorted(self._group_ids))

    async def find(self, kind: str, filter_expression: str) -> list[dict[str, Any]]:
        """Objects matching the cycle's match filter (`userName eq "x"`, `displayName eq "x"`)."""
        expression = p1.platform_filter(kind, filter_expression)
        if expression is None:
            raise ProtocolError(f"{self.name}: cannot search PingOne with the filter {filter_expression!r}")
        collection = "users" if kind == USER else "groups"
        answer = await self.api.call("GET", collection, params={"filter": expression, "limit": _FIND_LIMIT})
        found = [item for item in ((answer or {}).get("_embedded") or {}).get(collection, []) if isinstance(item, dict)]
        if kind == USER:
            return [p1.user_to_scim(user, population_names=self._names()) for user in found]
        await self._know_groups()
        return [await self._group_form(group) for group in found if not p1.unreplicable_group(group)]

    # -- writes ---------------------------------------------------------------------------------

    async def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """A new user (disabled after the create when the form says so), or a new group and then its
        members one by one; the answer holds the members that were added."""
        if kind == USER:
            population = self._population_id(p1.population_name(body))
            created = await self.api.call("POST", "users", body=p1.user_to_platform(body, population_id=population))
            if body.get("active") is False:
                await self.api.call("PUT", "users", created["id"], "enabled", body={"enabled": False})
                created["enabled"] = False
            return p1.user_to_scim(created, population_names=self._names())
        population = self._population_id(p1.population_name(body))
        created = await self.api.call("POST", "groups", body=p1.group_to_platform(body, population_id=population))
        group_id = str(created["id"])
        self._group_ids.add(group_id)
        added = []
        for member in body.get("members", []):
            try:
                await self._add_member(group_id, member)
                added.append(member)
            except (NotFoundError, ConflictError):
                continue  # left out of the answer: the writer adds it again, and records what fails
        form = p1.group_to_scim(created, user_members=[], group_members=[], population_names=self._names())
        return {**form, "members": added} if added else form

    async def patch(self, kind: str, resource_id: str, body: dict[str, Any]) -> None:
        """A SCIM PatchOp: members one call each; other attributes against the object as it is."""
        operations = [op for op in body.get("Operations", []) if isinstance(op, dict)]
        if kind == GROUP:
            others = []
            for op in operations:
                if not await self._member_operation(resource_id, op):
                    others.append(op)
            if others:
                current = await self.get(GROUP, resource_id)
                await self._write_group(resource_id, current, apply_operations(current, others))
            return
        current = await self.get(USER, resource_id)
        await self._write_user(resource_id, current, apply_operations(current, operations))

    async def replace(self, kind: str, resource_id: str, body: dict[str, Any]) -> dict[str, Any] | None:
        current = await self.get(kind, resource_id)
        if kind == USER:
            await self._write_user(resource_id, current, body)
        else:
            await self._write_group(resource_id, current, body)
        return await self.get(kind, resource_id)

    async def delete(self, kind: str, resource_id: str) -> None:
        await self.api.call("DELETE", "users" if kind == USER else "groups", resource_id)
        if kind == GROUP:
            self._group_ids.discard(resource_id)

    async def bulk(self, operations: list[dict[str, Any]]) -> list[BulkResult | None]:
        raise ProtocolError(f"{self.name}: PingOne has no SCIM Bulk")

    async def _write_user(self, user_id: str, current: dict[str, Any], wanted: dict[str, Any]) -> None:
        """The Platform attributes that differ in one PATCH (a cleared one sent as null); enabled and
        population through their own endpoints."""
        before = p1.user_to_platform(current, population_id=None)
        after = p1.user_to_platform(wanted, population_id=None)
        changed = {key: after.get(key) for key in sorted(set(before) | set(after))
                   if key not in ("population", "enabled") and before.get(key) != after.get(key)}
        if changed:
            await self.api.call("PATCH", "users", user_id, body=changed)
        if (current.get("active") is not False) != (wanted.get("active") is not False):
            await self.api.call("PUT", "users", user_id, "enabled", body={"enabled": wanted.get("active") is not False})
        if self._with_populations and p1.population_name(current) != p1.population_name(wanted):
            population = self._population_id(p1.population_name(wanted))
            if population:
                await self.api.call("PUT", "users", user_id, "population", body={"id": population})

    async def _write_group(self, group_id: str, current: dict[str, Any], wanted: dict[str, Any]) -> None:
        """The group's own attributes (PUT: the Platform API has no group PATCH), then member changes."""
        before = p1.group_to_platform(current, population_id=None)
        after = p1.group_to_platform(wanted, population_id=None)
        if before != after:
            population = self._population_id(p1.population_name(current))
            await self.api.call("PUT", "groups", group_id, body=p1.group_to_platform(wanted, population_id=population))
        had = {m["value"]: m for m in current.get("members", [])}
        want = {m["value"]: m for m in wanted.get("members", [])}
        for value in sorted(want.keys() - had.keys()):
            await self._add_member(group_id, want[value])
        for value in sorted(had.keys() - want.keys()):
            await self.memberships.remove(group_id, value, is_group=had[value].get("type") == "Group")

    async def _member_operation(self, group_id: str, op: dict[str, Any]) -> bool:
        """Carry out a PatchOp operation on members: add a list, remove a list or one
        `members[value eq "x"]`; False when it is not one of those (it is applied to the object)."""
        kind, path = str(op.get("op", "")).lower(), str(op.get("path", ""))
        value = op.get("value")
        values: list[dict[str, Any]] = [m for m in value if isinstance(m, dict)] if isinstance(value, list) else []
        if path == "members" and kind == "add":
            for member in values:
                await self._add_member(group_id, member)
            return True
        if path == "members" and kind == "remove" and values:
            for member in values:
                await self.memberships.remove(group_id, str(member["value"]), is_group=self._is_group(member))
            return True
        if kind == "remove" and (value := p1.member_filter_value(path)) is not None:
            await self.memberships.remove(group_id, value, is_group=True if value in self._group_ids else None)
            return True
        return False

    def _is_group(self, member: dict[str, Any]) -> bool:
        kind = member.get("type")
        return kind == "Group" if isinstance(kind, str) else str(member.get("value")) in self._group_ids

    async def _add_member(self, group_id: str, member: dict[str, Any]) -> None:
        await self.memberships.add(group_id, str(member["value"]), is_group=self._is_group(member))


def _is_a_directory(directory: PingOneDirectory) -> Directory:  # mypy proves PingOneDirectory is a Directory
    return directory
