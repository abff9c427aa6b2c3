"""PingOne to PingOne through the Platform API, on two emulated environments: users past a page of 200,
groups with direct members and nesting, populations by name, dynamic groups left out and noted; then a
no-change cycle that writes nothing, and a round of edits replicated."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from replicator.app import replicate
from replicator.config import Config, SideConfig, SyncConfig, pingone_urls
from replicator.cycle import FULL, INCREMENTAL
from replicator.testing.pingone import Environment, PingOneEmulator, PingOneSwitches, serve_pingone
from tests.pingone.shapes import assert_requests_documented

WRITES = ("POST", "PUT", "PATCH", "DELETE")


@dataclass
class Pair:
    emulator: PingOneEmulator
    source: Environment
    destination: Environment
    config: Config


def side(emulator: PingOneEmulator, env: Environment, **more: Any) -> SideConfig:
    return pingone_urls(SideConfig(kind="pingone", pingone_environment=env.id, client_id=env.client_id,
                                   client_secret=env.client_secret, api_url=emulator.api_url,
                                   auth_url=emulator.auth_url, scim_url=emulator.scim_url, **more))


@pytest.fixture(params=[False, True], ids=["direct-filter", "transitive-filter"])
async def pair(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pair]:
    """Two environments; the member filter answers direct members only, or nested ones too (the
    documents do not say which)."""
    async with serve_pingone(switches=PingOneSwitches(member_filter_includes_indirect=request.param),
                             record=True) as emulator:
        source, destination = emulator.add_environment("src-env"), emulator.add_environment("dst-env")
        for env in (source, destination):
            env.add_population("Employees")
        source.add_population("Contractors")
        destination.add_population("Partners")
        config = Config(source=side(emulator, source), destination=side(emulator, destination,
                                                                        populations={"Contractors": "Partners"}),
                        state=str(tmp_path / "s.db"), concurrency=8, sync=SyncConfig(max_delete_percent=100.0))
        yield Pair(emulator, source, destination, config)
        assert_requests_documented(emulator.recorded)  # every request the replicator sent, against the document


def seed(env: Environment, users: int = 230) -> dict[str, str]:
    """Users in three populations, a group with everyone, nested groups, a dynamic one."""
    ids = {}
    for i in range(users):
        population = ("Employees", "Contractors", None)[i % 3]
        ids[f"user{i:03}"] = env.add_user(f"user{i:03}", population=population, title="Manager" if i % 7 == 0 else "Staff",
                                          name={"given": f"Given{i}", "family": f"Family{i}"})["id"]
    everyone = env.add_group("Everyone")["id"]
    eng = env.add_group("Engineering", description="builds things")["id"]
    admins = env.add_group("Admins")["id"]
    env.add_group("Managers", user_filter='title eq "Manager"')
    env.add_group("AD admins", source_type="IDP", source_id="idp-1")
    for i, user_id in enumerate(ids.values()):
        env.add_member(everyone, user_id)
        if i % 5 == 0:
            env.add_member(eng, user_id)
        if i % 11 == 0:
            env.add_member(admins, user_id)
    env.nest(admins, eng)  # Admins inside Engineering
    return ids


def picture(env: Environment) -> dict[str, Any]:
    """The environment as names: users with population and title, groups with direct members and nesting."""
    users = env.directory.users
    groups = env.directory.groups
    populations = {pid: p["name"] for pid, p in env.directory.populations.items()}
    return {
        "users": {u["username"]: (populations.get(u.get("population", {}).get("id")), u.get("title"),
                                  u.get("enabled", True)) for u in users.values()},
        "groups": {g["name"]: (sorted(users[m]["username"] for m in env.member_ids(gid)),
                               sorted(groups[p]["name"] for p in env.memberships.parents.get(gid, ())))
                   for gid, g in groups.items() if not g.get("userFilter") and not g.get("sourceType")},
    }


def writes(env: Environment) -> int:
    """Writes to the environment's data (the token endpoint's POSTs are not)."""
    return sum(1 for method, path, _ in env.request_log if method in WRITES and "/as/token" not in path)


async def test_pingone_to_pingone_copies_then_writes_nothing(pair: Pair) -> None:
    """A first copy makes the destination equal (users past 200, memberships, nesting, populations by
    name and through the map, the dynamic group as its userFilter, the external group left out and
    noted); a second cycle writes nothing."""
    seed(pair.source)
    result = await replicate(pair.config, mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok", (result.summary(), result.failures[:5], result.notes)
    expected = picture(pair.source)
    expected["users"] = {name: ("Partners" if pop == "Contractors" else pop or "Default", *rest)
                         for name, (pop, *rest) in expected["users"].items()}
    got = picture(pair.destination)
    assert got["groups"] == expected["groups"]
    assert len(got["users"]) == 230
    assert got["users"] == {n: (p if p != "Default" else got["users"][n][0], *r) for n, (p, *r) in expected["users"].items()}
    managers = [g for g in pair.destination.directory.groups.values() if g["name"] == "Managers"]
    assert [g.get("userFilter") for g in managers] == ['title eq "Manager"']
    assert any("1 an external group" in note for note in result.notes), result.notes
    assert "source: PingOne Platform API (users, groups, memberships, nesting, populations by name)" in result.notes
    before = writes(pair.destination)
    again = await replicate(pair.config, mode=INCREMENTAL, dry_run=False)
    assert again.outcome == "ok" and writes(pair.destination) == before, (
        again.summary(), [r for r in pair.destination.request_log if r[0] in WRITES][-3:])
    full = await replicate(pair.config, mode=FULL, dry_run=False)
    assert full.outcome == "ok" and writes(pair.destination) == before, (full.summary(), full.failures[:5])


async def test_edits_on_the_source_are_replicated(pair: Pair) -> None:
    """Renames, a disable, a population move, a deletion, membership and nesting changes reach the
    destination in one cycle; the next writes nothing."""
    ids = seed(pair.source, users=40)
    assert (await replicate(pair.config, mode=INCREMENTAL, dry_run=False)).outcome == "ok"
    src = pair.source
    users = src.directory.users
    users[ids["user001"]]["title"] = "Director"
    users[ids["user002"]]["enabled"] = False
    src.directory.users[ids["user003"]]["population"] = {"id": src.population_id("Contractors")}
    eng = next(gid for gid, g in src.directory.groups.items() if g["name"] == "Engineering")
    admins = next(gid for gid, g in src.directory.groups.items() if g["name"] == "Admins")
    src.directory.groups[eng]["name"] = "Engineers"
    src.add_member(eng, ids["user001"])
    src.memberships.parents.get(admins, set()).discard(eng)
    result = await replicate(pair.config, mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok", (result.summary(), result.failures[:5])
    got, expected = picture(pair.destination), picture(src)
    assert got["groups"] == expected["groups"]
    assert got["users"]["user001"][1] == "Director" and got["users"]["user002"][2] is False
    assert got["users"]["user003"][0] == "Partners"
    before = writes(pair.destination)
    again = await replicate(pair.config, mode=INCREMENTAL, dry_run=False)
    assert again.outcome == "ok" and writes(pair.destination) == before, again.summary()


async def test_pingone_to_scim_and_back(tmp_path: Path) -> None:
    """PingOne -> SCIM (the in-memory server) copies users and groups with their members and nesting,
    without populations; SCIM -> PingOne copies them back into an empty environment; each then writes
    nothing on a second cycle."""
    from replicator.testing import MemoryScimServer

    async with serve_pingone(switches=PingOneSwitches(not_found_after_create=1), record=True) as emulator:
        source, back = emulator.add_environment("p1-src"), emulator.add_environment("p1-back")
        source.add_population("Employees")
        source.add_population("Contractors")
        seed(source, users=30)
        scim = MemoryScimServer()
        await scim.start()
        try:
            there = Config(source=side(emulator, source), destination=SideConfig(url=scim.base_url or ""),
                           state=str(tmp_path / "there.db"))
            first = await replicate(there, mode=INCREMENTAL, dry_run=False)
            assert first.outcome == "ok", (first.summary(), first.failures[:5])
            assert len(scim.users) == 30 and {g["displayName"] for g in scim.groups.values()} == {"Everyone", "Engineering", "Admins"}
            engineering = next(g for g in scim.groups.values() if g["displayName"] == "Engineering")
            admins = next(g for g in scim.groups.values() if g["displayName"] == "Admins")
            assert admins["id"] in {m["value"] for m in engineering["members"]}
            assert all("urn:pingidentity" not in str(u) for u in scim.users.values())
            assert (await replicate(there, mode=INCREMENTAL, dry_run=False)).destination_requests.get("POST", 0) == 0

            home = Config(source=SideConfig(url=scim.base_url or ""), destination=side(emulator, back),
                          state=str(tmp_path / "home.db"))
            copied = await replicate(home, mode=INCREMENTAL, dry_run=False)
            assert copied.outcome == "ok", (copied.summary(), copied.failures[:5])
            expected, got = picture(source), picture(back)
            assert got["groups"] == expected["groups"]
            assert set(got["users"]) == set(expected["users"])
            before = writes(back)
            again = await replicate(home, mode=INCREMENTAL, dry_run=False)
            assert again.outcome == "ok" and writes(back) == before, again.summary()
            assert_requests_documented(emulator.recorded)
        finally:
            await scim.stop()
