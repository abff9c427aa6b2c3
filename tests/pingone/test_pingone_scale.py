"""Issue 15's scale check on the emulator: 2,000 users in 3 populations and 200 groups (nested, one with
every user, one dynamic) replicated PingOne -> PingOne, PingOne -> SCIM (scim2-server) and SCIM -> PingOne,
then a mutation round, then a cycle that writes nothing; the sides are compared after every step."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from replicator.app import replicate
from replicator.config import Config, SideConfig, SyncConfig
from replicator.cycle import INCREMENTAL
from replicator.pipeline.pingone import GROUP_EXTENSION
from replicator.scim.auth import StaticAuth
from replicator.scim.client import ScimClient
from replicator.snapshot import differences, snapshot
from replicator.testing.pingone import Environment, PingOneEmulator, serve_pingone
from replicator.testing.pingone.scim import POPULATION_EXTENSION, scim_user
from tests.harness import directory, scim2_server
from tests.pingone.shapes import assert_requests_documented
from tests.pingone.test_pingone_replication import side, writes

USERS, GROUPS = 2000, 200
POPULATIONS = ("Employees", "Contractors", None)  # None: the default population
TOKEN = "scale-token"
pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def scim_url() -> Iterator[str]:
    with scim2_server(TOKEN) as url:
        yield url


def seed(env: Environment) -> None:
    """Users spread over three populations; 199 static groups, one holding everyone, a chain and a tree
    of nested groups; one dynamic group."""
    rng = random.Random(15)
    users = [env.add_user(f"user{i:04}", population=POPULATIONS[i % 3], title=rng.choice(["Staff", "Lead"]),
                          name={"given": f"Given{i}", "family": f"Family{i}"})["id"] for i in range(USERS)]
    everyone = env.add_group("Everyone")["id"]
    for user_id in users:
        env.add_member(everyone, user_id)
    groups = [env.add_group(f"Team {g:03}", description=f"team {g}")["id"] for g in range(1, GROUPS - 1)]
    for g, group_id in enumerate(groups):
        for user_id in rng.sample(users, 12):
            env.add_member(group_id, user_id)
        if g % 10 and g > 0:
            env.nest(group_id, groups[g - 1 - (g - 1) % 10])  # trees of ten under every tenth team
    env.nest(groups[10], everyone)
    env.add_group("Leads", user_filter='title eq "Lead"')


def mutate(env: Environment) -> None:
    """Renames, disables, deletes, population moves, group renames, membership and nesting changes."""
    directory_ = env.directory
    users = sorted(directory_.users.values(), key=lambda u: u["username"])
    groups = {g["name"]: gid for gid, g in directory_.groups.items()}
    for user in users[0:20]:
        user["name"] = {**user.get("name", {}), "family": "Renamed"}
        user["title"] = "Director"
    for user in users[20:30]:
        user["enabled"] = False
    for user in users[30:40]:  # a population move leaves that population's groups (none here: all environment-wide)
        user["population"] = {"id": env.population_id("Contractors" if user["population"]["id"] !=
                                                      env.population_id("Contractors") else "Employees")}
    for user in users[40:50]:
        del directory_.users[user["id"]]
        env.memberships.forget(user_id=user["id"])
    for name in ("Team 001", "Team 050"):
        directory_.groups[groups[name]]["name"] = name.replace("Team", "Crew")
    for user in users[60:70]:
        env.add_member(groups["Team 099"], user["id"])
    for user_id in sorted(env.member_ids(groups["Team 098"]))[:5]:
        env.memberships.remove_member(user_id, groups["Team 098"])
    env.memberships.parents[groups["Team 012"]].clear()  # out of its tree
    env.nest(groups["Team 012"], groups["Team 150"])  # into another one


def picture(env: Environment, *, populations: bool) -> dict[str, dict[str, Any]]:
    """The environment's snapshot (replicator.snapshot), built from the emulator's own SCIM rendering:
    users with their population's name, groups with their direct members and their definition (description,
    userFilter) when `populations` (PingOne to PingOne); else SCIM's share: no population, no description,
    no dynamic group."""
    directory_ = env.directory
    names = {pid: p["name"] for pid, p in directory_.populations.items()}
    users = []
    for user in directory_.users.values():
        form = scim_user(user, names[user["population"]["id"]])
        form.pop("meta")
        form["schemas"] = form["schemas"][:1]
        extension = form.pop(POPULATION_EXTENSION)
        if populations:
            form[POPULATION_EXTENSION] = {"population": {"name": extension["population"]["name"]}}
        users.append(form)
    groups = []
    for gid, group in directory_.groups.items():
        dynamic = bool(group.get("userFilter"))
        if dynamic and not populations:
            continue  # a dynamic group has no place on a SCIM side
        users_in = [] if dynamic else sorted(env.member_ids(gid))
        form: dict[str, Any] = {"id": gid, "displayName": group["name"], "members": [
            {"value": m} for m in [*users_in, *sorted(env.memberships.nested_in(gid))]]}
        if populations and (definition := {k: group[k] for k in ("description", "userFilter") if k in group}):
            form[GROUP_EXTENSION] = definition
        groups.append(form)
    return snapshot(users, groups)


async def scim_picture(client: ScimClient) -> dict[str, dict[str, Any]]:
    pictured = await directory(client)
    for form in pictured.values():
        form.pop("schemas", None)
    return pictured


def assert_same(source: dict[str, dict[str, Any]], destination: dict[str, dict[str, Any]]) -> None:
    diff = differences(source, destination)
    assert not diff, f"{len(diff)} differences:\n" + "\n".join(diff[:10])


async def run(config: Config, what: str) -> int:
    """One cycle that must end ok; the writes it sent to the destination."""
    result = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok", (what, result.summary(), result.failures[:5])
    return sum(n for method, n in result.destination_requests.items() if method in ("POST", "PUT", "PATCH", "DELETE"))


async def three_directions(emulator: PingOneEmulator, source: Environment, scim_url: str, tmp_path: Path) -> None:
    copy, back = emulator.add_environment("p1-copy"), emulator.add_environment("p1-back")
    for env in (copy, back):
        env.add_population("Employees")
        env.add_population("Contractors")
    sync = SyncConfig(max_delete_percent=100.0)
    to_copy = Config(source=side(emulator, source), destination=side(emulator, copy), sync=sync,
                     state=str(tmp_path / "copy.db"), concurrency=8)
    to_scim = Config(source=side(emulator, source), destination=SideConfig(url=scim_url, token=TOKEN), sync=sync,
                     state=str(tmp_path / "scim.db"), concurrency=8)
    from_scim = Config(source=SideConfig(url=scim_url, token=TOKEN), destination=side(emulator, back), sync=sync,
                       state=str(tmp_path / "back.db"), concurrency=8)
    written: dict[str, int] = {}
    async with ScimClient(scim_url, auth=StaticAuth.bearer(TOKEN), name="check") as scim:
        for round_ in ("copy", "mutation", "no change"):
            if round_ == "mutation":
                mutate(source)
            counts = {}
            for what, config in (("P1->P1", to_copy), ("P1->SCIM", to_scim), ("SCIM->P1", from_scim)):
                counts[what] = await run(config, f"{round_}: {what}")
            assert_same(picture(source, populations=True), picture(copy, populations=True))
            expected = picture(source, populations=False)
            assert_same(expected, await scim_picture(scim))
            assert_same(expected, picture(back, populations=False))
            if round_ == "no change":
                assert counts == dict.fromkeys(counts, 0), counts
                assert {"copy": writes(copy), "back": writes(back)} == written
            written = {"copy": writes(copy), "back": writes(back)}


@pytest.mark.slow
async def test_two_thousand_users_three_directions_with_a_mutation_round(scim_url: str, tmp_path: Path) -> None:
    """2,000 users in 3 populations and 200 groups (nested, one with everyone, one dynamic) replicate
    PingOne->PingOne, PingOne->SCIM and SCIM->PingOne equal after a copy and after a mutation round;
    a third round writes nothing anywhere."""
    async with serve_pingone(record=True) as emulator:
        source = emulator.add_environment("p1-source")
        source.add_population("Employees")
        source.add_population("Contractors")
        seed(source)
        await three_directions(emulator, source, scim_url, tmp_path)
        assert_requests_documented(emulator.recorded)
