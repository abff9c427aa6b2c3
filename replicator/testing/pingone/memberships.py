"""Who is in which group in one environment: static members (``users/{id}/memberOfGroups``), dynamic
groups whose members are the users matching their ``userFilter``, external groups (``sourceType``) whose
members are never written, and nesting (``groups/{id}/memberOfGroups``: a group inside a parent).

A user's groups are DIRECT (static or dynamic) or INDIRECT (reached only through nesting). Rules (doc):
a population-bound group takes only users of that population, a user leaving a population leaves its
groups, a user cannot be in two groups of the same name, at most 250 groups nested in one group,
and no nesting cycles.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal

from replicator.testing.pingone.directory import Directory
from replicator.testing.pingone.errors import conflict, invalid_data, not_found
from replicator.testing.pingone.filters import FilterError, Node, matches, parse_filter
from replicator.testing.pingone.switches import MAX_NESTED_GROUPS

MembershipType = Literal["DIRECT", "INDIRECT"]


class Memberships:
    """Static memberships and nesting of one environment, and the memberships computed from them."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self.static: dict[str, set[str]] = {}  # user id -> ids of groups it was added to
        self.parents: dict[str, set[str]] = {}  # group id -> ids of the groups it is nested in

    def add_member(self, user_id: str, group_id: str) -> None:
        """Put a user into a static group (POST users/{id}/memberOfGroups)."""
        user, group = self.directory.user(user_id), self.directory.group(group_id)
        if group.get("userFilter") or group.get("sourceType"):
            raise invalid_data("id", "members of a dynamic or external group cannot be written")
        if "population" in group and group["population"] != user["population"]:
            raise invalid_data("id", "the group belongs to another population than the user")
        if group_id in self.static.get(user_id, set()):
            raise conflict("id", "the user is already a member of the group")
        names = {self.directory.groups[g]["name"] for g in self.direct_groups(user_id)}
        if group["name"] in names:
            raise invalid_data("id", f"the user is already in a group named {group['name']!r}")
        self.static.setdefault(user_id, set()).add(group_id)

    def remove_member(self, user_id: str, group_id: str) -> None:
        self.directory.user(user_id)
        if group_id not in self.static.get(user_id, set()):
            raise not_found("group membership")
        self.static[user_id].discard(group_id)

    def nest(self, group_id: str, parent_id: str) -> None:
        """Put ``group_id`` inside ``parent_id`` (POST groups/{id}/memberOfGroups)."""
        self.directory.group(group_id)
        self.directory.group(parent_id)
        if parent_id in self.parents.get(group_id, set()):
            raise conflict("id", "the group is already nested in that group")
        if parent_id == group_id or group_id in self.ancestors(parent_id):
            raise invalid_data("id", "nesting would make a cycle")
        if len(self.nested_in(parent_id)) >= MAX_NESTED_GROUPS:
            raise invalid_data("id", f"a group holds at most {MAX_NESTED_GROUPS} nested groups",
                               "SIZE_LIMIT_EXCEEDED")
        self.parents.setdefault(group_id, set()).add(parent_id)

    def unnest(self, group_id: str, parent_id: str) -> None:
        self.directory.group(group_id)
        if parent_id not in self.parents.get(group_id, set()):
            raise not_found("group nesting")
        self.parents[group_id].discard(parent_id)

    def nested_in(self, parent_id: str) -> set[str]:
        """The groups nested directly inside ``parent_id``."""
        return {child for child, parents in self.parents.items() if parent_id in parents}

    def ancestors(self, group_id: str) -> set[str]:
        """Every group ``group_id`` is inside, directly or through others."""
        found: set[str] = set()
        pending = list(self.parents.get(group_id, ()))
        while pending:
            parent = pending.pop()
            if parent not in found:
                found.add(parent)
                pending.extend(self.parents.get(parent, ()))
        return found

    def direct_groups(self, user_id: str) -> set[str]:
        """Static groups of the user and the dynamic groups whose filter it matches."""
        user = self.directory.users[user_id]
        dynamic = {gid for gid, group in self.directory.groups.items()
                   if group.get("userFilter") and _in_scope(user, group) and self._matches_filter(user, group)}
        return set(self.static.get(user_id, ())) | dynamic

    def groups_of(self, user_id: str) -> dict[str, MembershipType]:
        """Every group of the user, DIRECT or INDIRECT."""
        direct = self.direct_groups(user_id)
        result: dict[str, MembershipType] = dict.fromkeys(direct, "DIRECT")
        for group_id in direct:
            for ancestor in self.ancestors(group_id):
                result.setdefault(ancestor, "INDIRECT")
        return result

    def member_ids(self, group_id: str, indirect: bool = False) -> set[str]:
        """Users in the group: DIRECT ones, and with ``indirect`` also those reached through nesting."""
        member = self.member_test(group_id, indirect)
        return {uid for uid in self.directory.users if member(uid)}

    def member_test(self, group_id: str, indirect: bool) -> Callable[[str], bool]:
        """Whether a user (by id) is a DIRECT member of the group (with ``indirect``: or of a group
        nested in it, at any depth): ``groups_of(user).get(group_id)``, without computing every group."""
        groups = {group_id} | (self.descendants(group_id) if indirect else set())
        dynamic = [self.directory.groups[g] for g in groups if self.directory.groups.get(g, {}).get("userFilter")]

        def member(user_id: str) -> bool:
            if not groups.isdisjoint(self.static.get(user_id, ())):
                return True
            user = self.directory.users[user_id]
            return any(_in_scope(user, group) and self._matches_filter(user, group) for group in dynamic)
        return member

    def descendants(self, group_id: str) -> set[str]:
        """Every group inside ``group_id``, directly or through others."""
        return {child for child in self.parents if group_id in self.ancestors(child)}

    def forget(self, user_id: str | None = None, group_id: str | None = None) -> None:
        """Drop every membership of a deleted user or group (and a group's nesting both ways)."""
        if user_id is not None:
            self.static.pop(user_id, None)
        if group_id is not None:
            for groups in self.static.values():
                groups.discard(group_id)
            self.parents.pop(group_id, None)
            for parents in self.parents.values():
                parents.discard(group_id)

    def leave_population(self, user_id: str, population_id: str) -> None:
        """A user moving out of a population leaves that population's groups (doc)."""
        groups = self.directory.groups
        self.static[user_id] = {gid for gid in self.static.get(user_id, set())
                                if groups[gid].get("population", {}).get("id") != population_id}

    def _matches_filter(self, user: dict[str, object], group: dict[str, object]) -> bool:
        try:
            node = _parsed(str(group["userFilter"]))
        except FilterError:
            return False
        return matches(node, user, lambda gid: gid in self.static.get(str(user["id"]), set()))


@functools.lru_cache(maxsize=256)
def _parsed(text: str) -> Node:
    return parse_filter(text)


def _in_scope(user: dict[str, object], group: dict[str, object]) -> bool:
    return "population" not in group or group["population"] == user["population"]
