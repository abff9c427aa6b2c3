"""Reading a PingOne environment as SCIM-shaped forms (`PingOneReader`): users page by page, groups
listed whole first (a listing has no members), then their nesting, then in pages with their direct
members. Users, and groups' members and nesting, come through the SCIM API instead when `paths` (the
cycle's probe, replicator/pingone/paths.py) says it can be read whole. External groups are left out (PingOne computes their members) and counted, and so are dynamic
ones unless the other side is PingOne too: then a dynamic group is read as its definition (userFilter),
never with its users; its userFilter in the source's population ids when we are the destination
(`as_read`), so that it compares with the source's."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncGenerator
from typing import Any

from replicator.pingone.memberships import Memberships
from replicator.pingone.paths import ReadPaths
from replicator.pingone.platform import PlatformApi
from replicator.pingone.populations import Populations
from replicator.pipeline import pingone as p1
from replicator.pipeline import user_filters
from replicator.pipeline.canonical import GROUP, USER
from replicator.scim.client import ScimClient
from replicator.scim.paging import ReadReport

SCIM_PAGE = 200  # PingOne's SCIM lists stop at 200 (filter.maxResults)


class PingOneReader:
    """Users and groups of one environment, translated."""

    def __init__(self, api: PlatformApi, memberships: Memberships, populations: Populations,
                 scim: ScimClient | None = None) -> None:
        self.api = api
        self.scim = scim
        self.paths = ReadPaths()  # Platform API only, until a probe says otherwise
        self._scim_members: dict[str, list[dict[str, Any]]] = {}  # group id -> members, from SCIM /Groups
        self.memberships = memberships
        self.populations = populations
        self.skipped: Counter[str] = Counter()  # groups left out of the read, by why
        self.group_ids: set[str] = set()  # the replicable groups known (for member types and nesting)
        self.descriptions_dropped = 0  # groups read whose description a non-PingOne side cannot hold

    def forget(self) -> None:
        """A new cycle: read everything again."""
        self.skipped.clear()
        self.descriptions_dropped = 0
        self.group_ids = set()
        self._scim_members = {}
        self.memberships.forget()

    async def user_pages(self, report: ReadReport, page_size: int) -> AsyncGenerator[list[dict[str, Any]], None]:
        names = self.populations.names()
        if self.paths.users_by_scim and self.scim is not None:
            async for page in self.scim.iter_pages(USER, report, page_size=SCIM_PAGE, cursor=False):
                yield [p1.scim_read_user(user, population_names=names) for user in page]
            return
        async for page in self.api.pages("users", report, page_size=page_size):
            report.seen += len(page)
            yield [p1.user_to_scim(user, population_names=names) for user in page if user.get("id")]

    async def group_pages(self, report: ReadReport, page_size: int) -> AsyncGenerator[list[dict[str, Any]], None]:
        groups: list[dict[str, Any]] = []
        async for page in self.api.pages("groups", report):
            report.seen += len(page)
            for group in page:
                why = self.unreplicable(group)
                if why:
                    self.skipped[why] += 1
                elif group.get("id"):
                    groups.append(group)
                    self.descriptions_dropped += bool(group.get("description")) and not self.populations.replicated
        self.group_ids = {str(group["id"]) for group in groups}
        if self.paths.groups_by_scim and self.scim is not None:
            await self._read_scim_members(report)
        else:
            await self.memberships.nesting(sorted(self.group_ids))
        for start in range(0, len(groups), page_size):
            yield [await self.group_form(group) for group in groups[start : start + page_size]]

    async def group_form(self, group: dict[str, Any]) -> dict[str, Any]:
        """A Platform group with its direct members, as a SCIM-shaped form."""
        await self.know_groups()
        group_id = str(group["id"])
        # a dynamic group's users are PingOne's to compute: its definition travels, not its members
        if p1.is_dynamic(group):
            members = [{"value": gid, "type": "Group"} for gid in sorted(self.memberships.children(group_id))]
        elif group_id in self._scim_members:
            members = self._scim_members[group_id]
        else:
            members = await self.memberships.members(group_id)
        users = [m["value"] for m in members if m["type"] == "User"]
        nested = [m["value"] for m in members if m["type"] == "Group" and m["value"] in self.group_ids]
        return p1.group_to_scim(self.as_read(group), user_members=users, group_members=nested,
                                population_names=self.populations.names())

    def as_read(self, group: dict[str, Any]) -> dict[str, Any]:
        """A Platform group with the population ids its userFilter names in the source's ids, when we
        are the destination (`Populations.replicates_from`); an id the source has no population for
        stays as it is (it then differs from the source's filter, which is written again)."""
        text, back = group.get("userFilter"), self.populations.filter_ids_back()
        if not isinstance(text, str) or not text or not back:
            return group
        try:
            translation = user_filters.translated(text, {user_filters.POPULATION: back})
        except user_filters.UserFilterError:
            return group
        return {**group, "userFilter": translation.text}

    async def _read_scim_members(self, report: ReadReport) -> None:
        """Every group's direct members from SCIM /Groups, and the nesting they show; a SCIM read that
        is not complete, or misses a group the Platform listed, makes the group read incomplete."""
        assert self.scim is not None
        scim_report = ReadReport(kind=f"{self.api.name} SCIM groups")
        members: dict[str, list[dict[str, Any]]] = {}
        async for page in self.scim.iter_pages(GROUP, scim_report, page_size=SCIM_PAGE, cursor=False):
            for group in page:
                members[str(group["id"])] = [
                    {"value": str(m["value"]), "type": _member_type(m, self.group_ids)}
                    for m in group.get("members") or [] if isinstance(m, dict) and m.get("value")]
        if not scim_report.complete:
            report.problems.append(f"SCIM /Groups read incomplete: {'; '.join(scim_report.problems) or 'unfinished'}")
        if missing := self.group_ids - members.keys():
            report.problems.append(f"SCIM /Groups lacks {len(missing)} group(s) the Platform API lists")
        parents: dict[str, set[str]] = {gid: set() for gid in self.group_ids}
        for parent, entries in members.items():
            for entry in entries:
                if entry["type"] == "Group" and parent in self.group_ids:
                    parents[entry["value"]].add(parent)
        self.memberships.learn_nesting(parents)
        self._scim_members = {gid: sorted(entries, key=lambda m: (m["type"] != "User", m["value"]))
                              for gid, entries in members.items() if gid in self.group_ids}

    def unreplicable(self, group: dict[str, Any]) -> str | None:
        """Why this group is left out (dynamic ones travel as their definition when both sides are PingOne)."""
        return p1.unreplicable_group(group, definitions=self.populations.replicated)

    async def know_groups(self) -> None:
        """Outside a read of the groups (a lookup, a re-read before a write): the groups and their nesting."""
        if self.group_ids:
            return
        report = ReadReport(kind=f"{self.api.name} groups")
        async for page in self.api.pages("groups", report):
            self.group_ids.update(str(g["id"]) for g in page if g.get("id") and not self.unreplicable(g))
        await self.memberships.nesting(sorted(self.group_ids))


def _member_type(member: dict[str, Any], group_ids: set[str]) -> str:
    """A SCIM member's type as it says (User / Group), else a Group when it is one of ours."""
    said = str(member.get("type", "")).capitalize()
    if said in ("User", "Group"):
        return said
    return "Group" if str(member["value"]) in group_ids else "User"
