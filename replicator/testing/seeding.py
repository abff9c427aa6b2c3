"""The one way the demo, the tests and the benchmarks fill a SCIM server with a sample directory.

:func:`plan_directory` decides what a directory holds (pure): the sample users
(:mod:`replicator.testing.sample_data`), a manager tree (user *i* reports to user (*i* - 1) // 5), the
groups of a group shape, and optionally one group nesting another. :func:`seed_directory` stores such a
directory in an in-memory server without HTTP; :func:`seed_directory_over_http` creates it through any
SCIM client (managers then arrive by PATCH). The same arguments give the same data either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from replicator.pipeline.canonical import ENTERPRISE_USER, GROUP, USER
from replicator.testing.protocol import PATCH_OP_SCHEMA
from replicator.testing.sample_data import group_plan, manager_index, sample_group, sample_users

if TYPE_CHECKING:
    from replicator.testing.app import MemoryScimServer

# (users, groups, seed) -> [(displayName, member user indexes)], e.g. sample_data.group_plan
GroupShape = Callable[[int, int, int], list[tuple[str, list[int]]]]


@dataclass(frozen=True)
class NestedGroup:
    """One more group, named ``name``, holding the first ``users`` users and the ``group``-th group made
    (a nested membership); it is made only when that group exists."""

    name: str
    users: int = 1
    group: int = 1


@dataclass(frozen=True)
class DirectoryPlan:
    """What a sample directory holds, by position: user bodies, (user, manager) pairs, groups."""

    users: list[dict[str, Any]]
    managers: list[tuple[int, int]]  # (user index, index of that user's manager)
    groups: list[tuple[str, list[int]]]  # (displayName, member user indexes)
    nested: NestedGroup | None


class ScimWriter(Protocol):
    """What seeding over HTTP needs of a client (replicator.scim.client.ScimClient has it)."""

    async def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def patch(self, kind: str, resource_id: str, body: dict[str, Any]) -> None: ...


def plan_directory(
    users: int, groups: int, *, seed: int = 7, managers: bool = True, shape: GroupShape = group_plan,
    max_members: int | None = None, nested: NestedGroup | None = None,
) -> DirectoryPlan:
    """``users`` sample users and the ``groups`` groups of ``shape`` (each cut to its first ``max_members``
    members when given); ``managers``: the manager tree; ``nested``: one group nesting another."""
    tree = [(index, boss) for index in range(users) if (boss := manager_index(index)) is not None]
    return DirectoryPlan(
        users=sample_users(users, seed),
        managers=tree if managers else [],
        groups=[(name, members[:max_members]) for name, members in shape(users, groups, seed)],
        nested=nested,
    )


def seed_directory(
    server: MemoryScimServer, users: int, groups: int, *, seed: int = 7, managers: bool = True,
    shape: GroupShape = group_plan, max_members: int | None = None, nested: NestedGroup | None = None,
) -> dict[str, list[str]]:
    """Store a sample directory (see :func:`plan_directory`) in ``server`` without HTTP; return the ids
    made, by kind (``USER``, ``GROUP``), in order. Managers are set on the stored users in place."""
    plan = plan_directory(users, groups, seed=seed, managers=managers, shape=shape, max_members=max_members,
                          nested=nested)
    stored = [server.add_user(user) for user in plan.users]
    for index, boss in plan.managers:
        stored[index][ENTERPRISE_USER]["manager"] = {"value": stored[boss]["id"]}
    user_ids = [user["id"] for user in stored]
    group_ids = [server.add_group(sample_group(name, [user_ids[i] for i in members]))["id"]
                 for name, members in plan.groups]
    if plan.nested is not None and len(group_ids) > plan.nested.group:
        group_ids.append(server.add_group(_nested_group(plan.nested, user_ids, group_ids))["id"])
    return {USER: user_ids, GROUP: group_ids}


async def seed_directory_over_http(
    client: ScimWriter, users: int, groups: int, *, seed: int = 7, managers: bool = True,
    shape: GroupShape = group_plan, max_members: int | None = None, nested: NestedGroup | None = None,
) -> dict[str, list[str]]:
    """Create a sample directory (see :func:`plan_directory`) through ``client``, one request at a time:
    users, then their managers by PATCH, then groups; return the ids made, by kind, in order."""
    plan = plan_directory(users, groups, seed=seed, managers=managers, shape=shape, max_members=max_members,
                          nested=nested)
    user_ids = []
    for user in plan.users:
        user_ids.append((await client.create(USER, user))["id"])
    for index, boss in plan.managers:
        await client.patch(USER, user_ids[index], {"schemas": [PATCH_OP_SCHEMA], "Operations": [
            {"op": "replace", "path": f"{ENTERPRISE_USER}:manager", "value": {"value": user_ids[boss]}}]})
    group_ids = []
    for name, members in plan.groups:
        group_ids.append((await client.create(GROUP, sample_group(name, [user_ids[i] for i in members])))["id"])
    if plan.nested is not None and len(group_ids) > plan.nested.group:
        group_ids.append((await client.create(GROUP, _nested_group(plan.nested, user_ids, group_ids)))["id"])
    return {USER: user_ids, GROUP: group_ids}


def _nested_group(nested: NestedGroup, user_ids: list[str], group_ids: list[str]) -> dict[str, Any]:
    return sample_group(nested.name, user_ids[: nested.users], group_ids=[group_ids[nested.group]])
