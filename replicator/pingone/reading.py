"""Reading a PingOne environment as SCIM-shaped forms (`PingOneReader`): users page by page, groups
listed whole first (a listing has no members), then their nesting, then in pages with their direct
members. External groups are left out (PingOne computes their members) and counted, and so are dynamic
ones unless the other side is PingOne too: then a dynamic group is read as its definition (userFilter),
never with its users."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncGenerator
from typing import Any

from replicator.pingone.memberships import Memberships
from replicator.pingone.platform import PlatformApi
from replicator.pingone.populations import Populations
from replicator.pipeline import pingone as p1
from replicator.scim.paging import ReadReport


class PingOneReader:
    """Users and groups of one environment, translated."""

    def __init__(self, api: PlatformApi, memberships: Memberships, populations: Populations) -> None:
        self.api = api
        self.memberships = memberships
        self.populations = populations
        self.skipped: Counter[str] = Counter()  # groups left out of the read, by why
        self.group_ids: set[str] = set()  # the replicable groups known (for member types and nesting)

    def forget(self) -> None:
        """A new cycle: read everything again."""
        self.skipped.clear()
        self.group_ids = set()
        self.memberships.forget()

    async def user_pages(self, report: ReadReport, page_size: int) -> AsyncGenerator[list[dict[str, Any]], None]:
        names = self.populations.names()
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
        self.group_ids = {str(group["id"]) for group in groups}
        await self.memberships.nesting(sorted(self.group_ids))
        for start in range(0, len(groups), page_size):
            yield [await self.group_form(group) for group in groups[start : start + page_size]]

    async def group_form(self, group: dict[str, Any]) -> dict[str, Any]:
        """A Platform group with its direct members, as a SCIM-shaped form."""
        await self.know_groups()
        group_id = str(group["id"])
        # a dynamic group's users are PingOne's to compute: its definition travels, not its members
        members = ([{"value": gid, "type": "Group"} for gid in sorted(self.memberships.children(group_id))]
                   if p1.is_dynamic(group) else await self.memberships.members(group_id))
        users = [m["value"] for m in members if m["type"] == "User"]
        nested = [m["value"] for m in members if m["type"] == "Group" and m["value"] in self.group_ids]
        return p1.group_to_scim(group, user_members=users, group_members=nested,
                                population_names=self.populations.names())

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
