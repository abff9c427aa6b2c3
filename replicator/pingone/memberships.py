"""Group members in PingOne (`Memberships`): who is a DIRECT member of a group, and adding or removing
one member (a user through `users/<id>/memberOfGroups`, a nested group through
`groups/<id>/memberOfGroups`).

A group's users come from `users?filter=memberOfGroups[id eq "<group>"]`; whether that also answers
members of its nested groups is not documented, so a user who is also a member of one of the group's
child groups is asked about (`users/<id>/memberOfGroups`: DIRECT or INDIRECT). A group's child groups
come from the nesting index: every group's `memberOfGroups`, read once per cycle and kept up to date
by our own writes."""

from __future__ import annotations

import asyncio
from typing import Any

from replicator.errors import NotFoundError
from replicator.pingone.platform import PlatformApi
from replicator.scim.filters import quote
from replicator.scim.paging import ReadReport

_LOOKUPS_IN_FLIGHT = 8
_AFTER_CREATE_RETRIES = 3  # a membership of a group created a moment ago may answer 404 (eventual consistency)
_AFTER_CREATE_PAUSE = 0.5


class Memberships:
    """Reads and writes one environment's group memberships."""

    def __init__(self, api: PlatformApi) -> None:
        self.api = api
        self._parents: dict[str, set[str]] | None = None  # group id -> the groups it is directly in
        self._users_of: dict[str, set[str]] = {}  # group id -> users the member filter answers (this cycle)

    def forget(self) -> None:
        """A new cycle: read the nesting and the members again."""
        self._parents, self._users_of = None, {}

    async def nesting(self, group_ids: list[str]) -> dict[str, set[str]]:
        """Group id -> its DIRECT parent groups, for these groups (read once, then kept)."""
        if self._parents is None:
            self._parents = {}
        wanted = [gid for gid in group_ids if gid not in self._parents]
        gate = asyncio.Semaphore(_LOOKUPS_IN_FLIGHT)

        async def parents_of(gid: str) -> None:
            async with gate:
                report = ReadReport(kind="group nesting")
                found: set[str] = set()
                try:
                    # the document declares no query parameter for a group's memberOfGroups: no `limit`
                    async for page in self.api.pages(f"groups/{gid}/memberOfGroups", report,
                                                     embedded="groupMemberships", page_size=None):
                        found.update(str(entry["id"]) for entry in page
                                     if entry.get("id") and str(entry.get("type", "DIRECT")).upper() == "DIRECT")
                except NotFoundError:
                    pass  # deleted meanwhile
                assert self._parents is not None
                self._parents[gid] = found

        await asyncio.gather(*map(parents_of, wanted))
        return {gid: self._parents.get(gid, set()) for gid in group_ids}

    def learn_nesting(self, parents: dict[str, set[str]]) -> None:
        """The nesting index, as another read (SCIM /Groups) found it."""
        self._parents = {gid: set(found) for gid, found in parents.items()}

    def children(self, group_id: str) -> set[str]:
        """The groups directly in `group_id`, as the nesting index knows them."""
        return {gid for gid, parents in (self._parents or {}).items() if group_id in parents}

    async def users(self, group_id: str) -> set[str]:
        """The users the member filter answers for a group (direct, and maybe indirect ones too)."""
        if group_id not in self._users_of:
            report = ReadReport(kind="group members")
            found: set[str] = set()
            expression = f"memberOfGroups[id eq {quote(group_id)}]"
            async for page in self.api.pages("users", report, params={"filter": expression}):
                found.update(str(user["id"]) for user in page if user.get("id"))
            self._users_of[group_id] = found
        return self._users_of[group_id]

    async def direct_users(self, group_id: str) -> set[str]:
        """The group's DIRECT user members: those the filter answers, less those who are there only
        through a child group (asked for each user the filter also answers for a child group)."""
        users = await self.users(group_id)
        via_children: set[str] = set()
        for child in self.children(group_id):
            via_children |= await self.users(child)
        doubtful = users & via_children
        if not doubtful:
            return users
        gate = asyncio.Semaphore(_LOOKUPS_IN_FLIGHT)

        async def direct(user_id: str) -> bool:
            async with gate:
                report = ReadReport(kind="user memberships")
                async for page in self.api.pages(f"users/{user_id}/memberOfGroups", report,
                                                 embedded="groupMemberships"):
                    for entry in page:
                        if str(entry.get("id")) == group_id:
                            return str(entry.get("type", "DIRECT")).upper() == "DIRECT"
                return False

        verdicts = await asyncio.gather(*map(direct, sorted(doubtful)))
        indirect = {uid for uid, is_direct in zip(sorted(doubtful), verdicts, strict=True) if not is_direct}
        return users - indirect

    async def members(self, group_id: str) -> list[dict[str, Any]]:
        """The group's direct members, SCIM-shaped: users, then nested groups."""
        users = sorted(await self.direct_users(group_id))
        groups = sorted(self.children(group_id))
        return [{"value": uid, "type": "User"} for uid in users] + [{"value": gid, "type": "Group"} for gid in groups]

    async def add(self, group_id: str, member: str, *, is_group: bool) -> None:
        """Put a user (or a group) directly into a group."""
        path = f"groups/{member}/memberOfGroups" if is_group else f"users/{member}/memberOfGroups"
        for attempt in range(_AFTER_CREATE_RETRIES + 1):
            try:
                await self.api.call("POST", *path.split("/"), body={"id": group_id}, idempotent=True)
                break
            except NotFoundError:
                if attempt == _AFTER_CREATE_RETRIES:
                    raise
                await asyncio.sleep(_AFTER_CREATE_PAUSE * (attempt + 1))
        if is_group and self._parents is not None:
            self._parents.setdefault(member, set()).add(group_id)
        self._users_of.pop(group_id, None)

    async def remove(self, group_id: str, member: str, *, is_group: bool | None) -> None:
        """Take a user (or a group) out of a group; one that is not in it is fine. `is_group` None: not
        known which it is (a PatchOp path names only the id): a user, else a group."""
        for as_group in ((False, True) if is_group is None else (is_group,)):
            try:
                await self.api.call("DELETE", "groups" if as_group else "users", member, "memberOfGroups", group_id)
            except NotFoundError:
                continue
            if as_group and self._parents is not None:
                self._parents.get(member, set()).discard(group_id)
            break
        self._users_of.pop(group_id, None)
