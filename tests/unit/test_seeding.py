"""Tests for the sample-directory seeding helper (replicator.testing.seeding)."""

from __future__ import annotations

from replicator.pipeline.canonical import ENTERPRISE_USER, GROUP, USER
from replicator.scim.client import ScimClient
from replicator.snapshot import differences, snapshot
from replicator.testing import MemoryScimServer
from replicator.testing.seeding import NestedGroup, plan_directory, seed_directory, seed_directory_over_http


async def test_seeding_in_process_and_over_http_give_the_same_directory() -> None:
    """The same arguments store the same users, managers, groups and nested group with or without HTTP."""
    in_process, over_http = MemoryScimServer(), MemoryScimServer()
    made = seed_directory(in_process, 12, 4, nested=NestedGroup("Leadership", users=2))
    try:
        async with ScimClient(await over_http.start()) as client:
            sent = await seed_directory_over_http(client, 12, 4, nested=NestedGroup("Leadership", users=2))
    finally:
        await over_http.stop()
    assert [len(made[USER]), len(made[GROUP])] == [len(sent[USER]), len(sent[GROUP])] == [12, 5]
    assert sum(ENTERPRISE_USER in u and "manager" in u[ENTERPRISE_USER] for u in over_http.users.values()) == 11
    here = snapshot(in_process.users.values(), in_process.groups.values())
    assert differences(here, snapshot(over_http.users.values(), over_http.groups.values())) == []
    assert here["Group:Leadership"]["members"] == sorted(["Group:Sales Team 1", *(
        f"User:{u['userName']}" for u in list(in_process.users.values())[:2])])


def test_the_plan_follows_its_parameters() -> None:
    """A manager tree (user i reports to (i - 1) // 5) unless managers=False; groups cut to max_members;
    the nested group only when the group it nests exists."""
    plan = plan_directory(12, 3, max_members=4, nested=NestedGroup("Nested", group=2))
    assert plan.managers == [(i, (i - 1) // 5) for i in range(1, 12)]
    assert [name for name, _ in plan.groups] == ["All Staff", "Sales Team 1", "Empty Group"]
    assert plan.groups[0][1] == [0, 1, 2, 3] and plan.groups[2][1] == []
    assert plan_directory(12, 3, managers=False).managers == []
    server = MemoryScimServer()
    seed_directory(server, 5, 2, nested=NestedGroup("Nested", group=2))  # there is no third group to nest
    assert [g["displayName"] for g in server.groups.values()] == ["All Staff", "Sales Team 1"]


def test_snapshots_compare_multivalued_attributes_as_sets() -> None:
    """Two copies holding the same emails in another order are equal; another email is a difference."""
    schema = ["urn:ietf:params:scim:schemas:core:2.0:User"]
    work, home = {"value": "ann@work.example", "type": "work"}, {"value": "ann@home.example", "type": "home"}
    source = snapshot([{"schemas": schema, "id": "1", "userName": "ann", "emails": [work, home]}], [])
    reordered = snapshot([{"schemas": schema, "id": "9", "userName": "ann", "emails": [home, work]}], [])
    other = snapshot([{"schemas": schema, "id": "9", "userName": "ann", "emails": [work, {"value": "x@y"}]}], [])
    assert differences(source, reordered) == []
    assert len(differences(source, other)) == 1
