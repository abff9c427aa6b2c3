"""Failures we must survive: 429/5xx/resets, lost answers, crashes, bad reads, mass deletions, bad input.

Every test ends by checking the destination against the source and counting duplicates.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from replicator.app import replicate
from replicator.config import Config, SideConfig, SyncConfig
from replicator.cycle import FULL, INCREMENTAL
from replicator.pipeline.canonical import GROUP, USER
from replicator.scim.auth import StaticAuth
from replicator.scim.client import ScimClient
from replicator.scim.urns import ENTERPRISE_USER
from replicator.state import open_state
from replicator.testing import Faults, MemoryScimServer
from replicator.testing.sample_data import sample_group, sample_users
from replicator.testing.seeding import NestedGroup, seed_directory
from tests.harness import assert_replicated, count_duplicates, writes

TOKEN = "reliability-token"


class Servers:
    """A source and a destination in-memory server, their URLs and checking clients."""

    def __init__(self, source: MemoryScimServer, destination: MemoryScimServer, tmp: Path) -> None:
        self.source, self.destination, self.tmp = source, destination, tmp
        self.state = tmp / "state.db"

    def config(self, *, concurrency: int = 8, retry_attempts: int = 8, **sync: Any) -> Config:
        return Config(
            source=SideConfig(url=self.source.base_url or "", token=TOKEN, retry_attempts=retry_attempts, page_size=50),
            destination=SideConfig(url=self.destination.base_url or "", token=TOKEN, retry_attempts=retry_attempts),
            sync=SyncConfig(**sync),
            state=str(self.state),
            concurrency=concurrency,
            min_concurrency=1,
        )

    async def check(self) -> None:
        """The destination equals the source and holds no duplicate."""
        self.source.faults, self.destination.faults = Faults(), Faults()
        async with ScimClient(self.source.base_url or "", auth=StaticAuth.bearer(TOKEN)) as s, \
                ScimClient(self.destination.base_url or "", auth=StaticAuth.bearer(TOKEN)) as d:
            await assert_replicated(s, d)
            assert await count_duplicates(d) == 0


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[Servers]:
    source, destination = MemoryScimServer(bearer_token=TOKEN), MemoryScimServer(bearer_token=TOKEN)
    await source.start()
    await destination.start()
    yield Servers(source, destination, tmp_path)
    await source.stop()
    await destination.stop()


def seed(server: MemoryScimServer, users: int, groups: int) -> list[str]:
    """The sample directory with managers and a "Nested" group; returns the user ids."""
    return seed_directory(server, users, groups, nested=NestedGroup("Nested"))[USER]


def delete_user(server: MemoryScimServer, user_id: str) -> None:
    """Delete a user as a tidy source does: out of every group, and no longer anyone's manager (a
    reference left dangling is counted as dropped and makes the cycle partial)."""
    del server.users[user_id]
    for group in server.groups.values():
        group["members"] = [m for m in group.get("members", []) if m["value"] != user_id]
    for user in server.users.values():
        if user.get(ENTERPRISE_USER, {}).get("manager", {}).get("value") == user_id:
            del user[ENTERPRISE_USER]["manager"]


async def test_fault_soak_converges_without_duplicates(servers: Servers) -> None:
    """20% 429 with Retry-After, 5% 503, 1% resets and slow answers on both sides: exact copy, no duplicates."""
    seed(servers.source, 150, 8)
    servers.destination.faults = Faults(rate_429=0.2, retry_after="0.05", rate_503=0.05, rate_reset=0.01,
                                        latency=0.003, seed=11)
    servers.source.faults = Faults(rate_503=0.05, retry_after="0.05", rate_reset=0.01, seed=12)
    result = await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok", result.summary()
    flow = result.destination_flow
    assert flow["429"] > 0 and flow["retries"] >= flow["429"], flow
    await servers.check()
    again = await replicate(servers.config(), mode=FULL, dry_run=False)
    assert writes(again.destination_requests) == 0, again.summary()


async def test_objects_that_faults_defeat_are_listed_failures_never_silent(servers: Servers) -> None:
    """Faults that defeat some requests' every retry (45% 429, 10% 503, 3% resets, two attempts): the
    run ends partial, every object missing on the destination is among the listed failures, and a
    --full run without faults then makes the copy exact, with no duplicate."""
    seed(servers.source, 150, 8)
    servers.destination.faults = Faults(rate_429=0.45, retry_after="0", rate_503=0.1, rate_reset=0.03, seed=21)
    result = await replicate(servers.config(retry_attempts=2), mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "partial" and result.counts["failed"] > 0, result.summary()
    servers.destination.faults = Faults()
    copied = {u["userName"] for u in servers.destination.users.values()}
    copied |= {g["displayName"] for g in servers.destination.groups.values()}
    expected = {u["userName"] for u in servers.source.users.values()} | {g["displayName"] for g in servers.source.groups.values()}
    assert expected - copied <= {label for _, label, _ in result.failures}
    full = await replicate(servers.config(), mode=FULL, dry_run=False)
    assert full.outcome == "ok", full.summary()
    await servers.check()


async def test_lost_answers_to_writes_do_not_duplicate(servers: Servers) -> None:
    """Writes carried out whose answer is lost (30%) are looked up, not posted twice."""
    seed(servers.source, 60, 4)
    servers.destination.faults = Faults(rate_reset_after_write=0.3, seed=5)
    result = await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok", result.summary()
    assert result.counts["adopted"] > 0  # some creates landed although their answers were lost
    await servers.check()


async def test_retry_after_pauses_every_worker(servers: Servers) -> None:
    """One 429 with Retry-After: 1 stops all workers for a second, not only the request that got it."""
    seed(servers.source, 30, 2)
    # discovery and the listing pass, then the third POST gets the 429 while others are in flight
    servers.destination.faults = Faults(script=[0, 0, 0, 0, 429], retry_after="1")
    result = await replicate(servers.config(concurrency=8), mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok", result.summary()
    times = servers.destination.request_times
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) >= 0.9  # nobody sent anything during the pause
    assert result.destination_flow["paused_seconds"] >= 0.9
    await servers.check()


async def test_crash_at_random_moments_then_clean_run(servers: Servers) -> None:
    """kill -9 at several random moments mid-write (with source changes in between), then a clean run: equal, no duplicates."""
    ids = seed(servers.source, 300, 6)
    servers.destination.faults = Faults(latency=0.02)
    rng = random.Random(2024)
    flags = ["--source-url", servers.source.base_url or "", "--source-token", TOKEN,
             "--destination-url", servers.destination.base_url or "", "--destination-token", TOKEN,
             "--state", str(servers.state), "--concurrency", "4", "--log-level", "error"]
    async def run_once(stderr: int) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "replicator", "run", "--once", *flags,
            stdout=asyncio.subprocess.DEVNULL, stderr=stderr, env=dict(os.environ))

    def writes_so_far() -> int:
        return sum(1 for method, _ in servers.destination.request_log if method in ("POST", "PATCH", "PUT", "DELETE"))

    for round_ in range(4):
        before = writes_so_far()
        process = await run_once(asyncio.subprocess.DEVNULL)
        kill_after = rng.randint(3, 40)  # writes of this run: each round has at least 80 to make
        deadline = asyncio.get_running_loop().time() + 60
        while writes_so_far() - before < kill_after and process.returncode is None:
            assert asyncio.get_running_loop().time() < deadline, "the run made no progress"
            await asyncio.sleep(0.005)
        assert process.returncode is None, f"round {round_}: the run ended before the kill"
        process.send_signal(signal.SIGKILL)
        assert await process.wait() == -signal.SIGKILL  # the kill landed mid-run
        # the source keeps changing between crashes: work for the next run, a change and a deletion
        for user_id in ids[100:180]:
            servers.source.users[user_id]["title"] = f"changed in round {round_}"
        delete_user(servers.source, ids[round_ + 50])
    servers.destination.faults = Faults()
    process = await run_once(asyncio.subprocess.PIPE)
    _, err = await process.communicate()
    assert process.returncode == 0, err.decode()[-2000:]
    await servers.check()


async def test_failed_or_truncated_source_read_holds_removals(servers: Servers) -> None:
    """A failing page or a lying totalResults makes the read incomplete: nothing is deleted until a good read."""
    ids = seed(servers.source, 120, 3)
    await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    for user_id in ids[:3]:
        delete_user(servers.source, user_id)
    servers.source.faults = Faults(rate_500=1.0)  # every page fails, retries included
    failed = await replicate(servers.config(retry_attempts=2), mode=INCREMENTAL, dry_run=False)
    assert failed.outcome == "partial" and failed.destination_requests.get("DELETE", 0) == 0
    servers.source.faults = Faults(truncate_total=True)
    truncated = await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    assert truncated.outcome == "partial", truncated.summary()
    assert truncated.destination_requests.get("DELETE", 0) == 0
    assert truncated.counts["removals_held"] >= 3
    assert len(servers.destination.users) == 120
    servers.source.faults = Faults()
    good = await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    assert good.counts["deleted"] == 3, good.summary()
    await servers.check()


async def test_a_full_cycle_with_an_incomplete_destination_listing_is_partial(servers: Servers) -> None:
    """--full compares every object with the destination; objects a listing left out were not compared,
    so the cycle says so (outcome partial, exit 1) instead of ok. The next good --full repairs the drift."""
    seed(servers.source, 60, 2)
    await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    drifted = next(iter(servers.destination.users.values()))
    drifted["title"] = "changed on the destination"
    servers.destination.faults = Faults(truncate_total=True)
    full = await replicate(servers.config(), mode=FULL, dry_run=False)
    assert full.outcome == "partial", full.summary()
    assert any("destination User listing incomplete" in note for note in full.notes)
    servers.destination.faults = Faults()
    again = await replicate(servers.config(), mode=FULL, dry_run=False)
    assert again.outcome == "ok" and servers.destination.users[drifted["id"]]["title"] != "changed on the destination"
    await servers.check()


async def test_an_object_missing_from_a_read_that_looked_complete_is_not_removed(servers: Servers) -> None:
    """A source that under-states totalResults (or an object sliding onto a page already read while the
    source changes) makes a read look complete without some objects: each object missing from the read
    is asked for by id before it is removed, and those still there are kept (outcome partial)."""
    ids = seed(servers.source, 110, 2)
    late = servers.source.add_group(sample_group("Late", ids[105:110]))
    await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    delete_user(servers.source, ids[0])  # really gone
    late["members"].append({"value": ids[1], "type": "User"})  # the group changes in the capped cycle
    servers.source.faults = Faults(total_cap=100)  # the read stops after 100 of the 109
    capped = await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    assert capped.outcome == "partial" and capped.counts["deleted"] == 1, capped.summary()
    assert capped.counts["removals_held"] == 9 and any("still in the source" in n for n in capped.notes)
    assert len(servers.destination.users) == 109
    # the users the read missed are still members of the group it re-planned (their access stays)
    (copy,) = [g for g in servers.destination.groups.values() if g["displayName"] == "Late"]
    assert len(copy["members"]) == 6
    servers.source.faults = Faults()
    await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    await servers.check()


async def test_an_object_sliding_onto_a_page_already_read_is_not_removed(
        servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between two pages the source deletes an object of page 1 and adds one: totalResults stays, no id
    repeats, and the first object of page 2 slides onto page 1, unread. It is not removed."""
    ids = seed(servers.source, 120, 2)
    await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    listing = servers.source._list

    def changing_during_the_read(query, kind):  # type: ignore[no-untyped-def]
        answer = listing(query, kind)
        if kind.name == USER and query.get("startIndex") == "1":
            delete_user(servers.source, ids[0])
            servers.source.add_user({**sample_users(121)[120]})
        return answer

    monkeypatch.setattr(servers.source, "_list", changing_during_the_read)
    result = await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    monkeypatch.undo()
    slid = servers.source.users[ids[50]]  # page size 50: the first of page 2 moved onto page 1
    # (the deleted one was read on page 1 before it went: the next cycle removes it)
    assert result.counts["deleted"] == 0 and result.counts["removals_held"] == 1, result.summary()
    assert any(u["userName"] == slid["userName"] for u in servers.destination.users.values())
    after = await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    assert after.counts["deleted"] == 1, after.summary()
    await servers.check()


async def test_a_member_re_created_on_the_destination_rejoins_its_unchanged_group(servers: Servers) -> None:
    """A user deleted on the destination, then changed in the source: its PATCH answers 404 and it is
    re-created under a new id; its groups, unchanged in the source, get the new id in the same cycle,
    and the users it manages (already planned in that cycle) in the next one."""
    seed(servers.source, 20, 2)
    await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    member = next(m["value"] for g in servers.source.groups.values() for m in g.get("members", [])
                  if m["value"] in servers.source.users)
    name = servers.source.users[member]["userName"]
    old = next(u["id"] for u in servers.destination.users.values() if u["userName"] == name)
    del servers.destination.users[old]
    for group in servers.destination.groups.values():  # as servers do: a deleted user leaves its groups
        group["members"] = [m for m in group.get("members", []) if m["value"] != old]
    servers.source.users[member]["title"] = "changed"
    result = await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    assert result.counts["recreated"] == 1, result.summary()
    new = next(u["id"] for u in servers.destination.users.values() if u["userName"] == name)
    groups = [g for g in servers.source.groups.values() if any(m["value"] == member for m in g.get("members", []))]
    for group in groups:
        (copy,) = [g for g in servers.destination.groups.values() if g["displayName"] == group["displayName"]]
        assert new in {m["value"] for m in copy["members"]}
    await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    await servers.check()


async def test_a_disabled_user_is_no_member_target(servers: Servers) -> None:
    """With remove_action = disable, a user gone from a source that keeps it among group members is
    disabled, and a group re-planned later does not keep it as a member (it is no reference target)."""
    ids = seed(servers.source, 20, 2)
    config = servers.config(remove_action="disable")
    await replicate(config, mode=INCREMENTAL, dry_run=False)
    group = next(g for g in servers.source.groups.values() if len(g.get("members", [])) >= 3)
    gone = group["members"][0]["value"]
    name = servers.source.users[gone]["userName"]
    del servers.source.users[gone]  # the source keeps it among the group's members
    await replicate(config, mode=INCREMENTAL, dry_run=False)
    group["displayName"] += " renamed"  # re-planned
    await replicate(config, mode=INCREMENTAL, dry_run=False)
    disabled = next(u for u in servers.destination.users.values() if u["userName"] == name)
    assert disabled["active"] is False
    (copy,) = [g for g in servers.destination.groups.values() if g["displayName"] == group["displayName"]]
    assert disabled["id"] not in {m["value"] for m in copy["members"]}
    assert ids


async def test_mass_deletion_is_held_until_allowed(servers: Servers) -> None:
    """Removing most users is held (exit outcome 'held'); an empty source is held; --allow-mass-delete proceeds."""
    ids = seed(servers.source, 40, 3)
    await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    for user_id in ids[:25]:
        delete_user(servers.source, user_id)
    held = await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    assert held.outcome == "held" and held.destination_requests.get("DELETE", 0) == 0
    assert held.counts["removals_held"] == 25 and len(servers.destination.users) == 40
    allowed = await replicate(servers.config(allow_mass_delete=True), mode=INCREMENTAL, dry_run=False)
    assert allowed.counts["deleted"] == 25 and allowed.outcome == "ok"
    await servers.check()
    servers.source.users.clear()
    servers.source.groups.clear()
    empty = await replicate(servers.config(max_delete_count=1000, max_delete_percent=100), mode=INCREMENTAL,
                            dry_run=False)
    assert empty.outcome == "held" and len(servers.destination.users) == 15
    assert any("no objects" in note for note in empty.notes)


async def test_disable_remove_action_deactivates_instead_of_deleting(servers: Servers) -> None:
    """With remove_action=disable a vanished user is PATCHed active=false once, and re-enabled if it returns."""
    ids = seed(servers.source, 10, 2)
    await replicate(servers.config(remove_action="disable"), mode=INCREMENTAL, dry_run=False)
    gone = servers.source.users[ids[3]]
    delete_user(servers.source, ids[3])
    result = await replicate(servers.config(remove_action="disable"), mode=INCREMENTAL, dry_run=False)
    assert result.counts["disabled"] == 1 and result.destination_requests.get("DELETE", 0) == 0
    twin = next(u for u in servers.destination.users.values() if u["userName"] == gone["userName"])
    assert twin["active"] is False
    again = await replicate(servers.config(remove_action="disable"), mode=INCREMENTAL, dry_run=False)
    assert writes(again.destination_requests) == 0
    servers.source.add_user({k: v for k, v in gone.items() if k not in ("id", "meta")})
    back = await replicate(servers.config(remove_action="disable"), mode=INCREMENTAL, dry_run=False)
    assert back.outcome == "ok" and back.counts["adopted"] == 1  # it came back under a new source id
    twin = next(u for u in servers.destination.users.values() if u["userName"] == gone["userName"])
    assert twin["active"] is True
    await servers.check()
    async with open_state(servers.state) as store:
        assert len(await store.forms.owners(USER, twin["id"])) == 1


async def test_bad_input_is_recorded_and_skipped(servers: Servers) -> None:
    """No userName, a duplicate userName, an oversized user and a 400 from the destination fail alone; the rest replicates."""
    seed(servers.source, 20, 2)
    schema = ["urn:ietf:params:scim:schemas:core:2.0:User"]
    servers.source.users["no-name"] = {"schemas": schema, "id": "no-name", "displayName": "nameless"}
    servers.source.users["dup"] = {"schemas": schema, "id": "dup",
                                   "userName": next(iter(servers.source.users.values()))["userName"].upper()}
    servers.source.add_user({"schemas": schema, "userName": "huge@example.com", "title": "x" * 20_000})
    servers.source.add_user({"schemas": schema, "userName": "refused@example.com", "title": "REFUSE-ME"})
    servers.destination.faults = Faults(refuse_values={"REFUSE-ME"})
    config = servers.config(max_resource_bytes=10_000)
    result = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "partial"
    reasons = {label: reason for _, label, reason in result.failures}
    assert "has no usable userName" in reasons["no-name"]  # no userName: labelled by its source id
    assert any("duplicate userName" in r for r in reasons.values())
    assert "oversized" in reasons["huge@example.com"]
    assert "400" in reasons["refused@example.com"] and "invalidValue" in reasons["refused@example.com"]
    assert len(servers.destination.users) == 20
    async with open_state(servers.state) as store:
        failures = {f.source_id: (f.error, f.attempts) for f in await store.failures()}
    assert set(failures) >= {"no-name", "dup"} and len(failures) == 4
    # a later cycle retries them only after a growing delay
    later = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert later.counts["backing_off"] >= 1
    assert writes(later.destination_requests) == 0


async def refused_update(servers: Servers) -> tuple[dict[str, Any], Any]:
    """Replicate a small directory, then change one user's title to a value the destination refuses:
    (that source user, the result of the cycle whose update failed)."""
    seed(servers.source, 10, 2)
    await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    user = next(iter(servers.source.users.values()))
    user["title"] = "REFUSE-ME"
    servers.destination.faults = Faults(refuse_values={"REFUSE-ME"})
    return user, await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)


async def test_a_failed_update_of_a_replicated_object_backs_off_too(servers: Servers) -> None:
    """An update the destination refuses, of an object already there (it keeps its destination id and
    status), waits for its growing delay like a failed create, instead of being sent every cycle."""
    _, failed = await refused_update(servers)
    assert failed.outcome == "partial" and failed.destination_requests.get("PATCH") == 1, failed.summary()
    later = await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    assert later.counts["backing_off"] == 1 and writes(later.destination_requests) == 0, later.summary()
    assert later.outcome == "partial"  # not everything is replicated: exit 1, not 0
    servers.destination.faults = Faults()
    full = await replicate(servers.config(), mode=FULL, dry_run=False)  # --full tries everything at once
    assert full.outcome == "ok" and full.counts["updated"] == 1, full.summary()
    await servers.check()


async def test_a_failed_object_whose_source_changed_is_tried_again_at_once(servers: Servers) -> None:
    """The delay after a failure is for the same source data: once the bad value is fixed in the
    source, the next incremental cycle writes the object instead of waiting up to an hour."""
    user, failed = await refused_update(servers)
    assert failed.counts["failed"] == 1, failed.summary()
    user["title"] = "fixed in the source"
    fixed = await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    assert fixed.outcome == "ok" and fixed.counts["updated"] == 1 and not fixed.counts["backing_off"], fixed.summary()
    await servers.check()


HOSTILE = [
    'quote"inside@example.com',
    "back\\slash@example.com",
    'or") or (userName pr@example.com',
    "emoji-😀-user@example.com",
    "עברית-rtl@example.com",
    "long-" + "ü" * 2000 + "@example.com",
]


async def test_hostile_strings_replicate_and_adopt(pair) -> None:  # type: ignore[no-untyped-def]
    """Quotes, backslashes, filter syntax, emoji, RTL and 4 KB values in userName/displayName replicate and adopt."""
    from tests.conftest import DESTINATION_TOKEN, SOURCE_TOKEN
    from tests.harness import make_config, patch_body, read_all

    schema = ["urn:ietf:params:scim:schemas:core:2.0:User"]
    config = make_config(pair.source_url, pair.destination_url, pair.state,
                         source_token=SOURCE_TOKEN, destination_token=DESTINATION_TOKEN)
    # state that is not empty, so existing destination objects are found by filter lookups
    await pair.source.create(USER, {"schemas": schema, "userName": "first@example.com"})
    await replicate(config, mode=INCREMENTAL, dry_run=False)
    ids = []
    for index, name in enumerate(HOSTILE):
        ids.append((await pair.source.create(USER, {"schemas": schema, "userName": name,
                                                    "displayName": name[::-1]}))["id"])
        if index % 2 == 0:  # half of them already exist on the destination: adopt, do not duplicate
            await pair.destination.create(USER, {"schemas": schema, "userName": name})
    await pair.source.create(GROUP, {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                     "displayName": 'grp "x" \\ ) or ( 😀 ' + "ש" * 1000,
                                     "members": [{"value": i} for i in ids]})
    result = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok", result.summary()
    assert result.counts["adopted"] == 3 and result.counts["created"] == 4
    await assert_replicated(pair.source, pair.destination)
    assert await count_duplicates(pair.destination) == 0
    # membership removal of a hostile id goes through members[value eq "..."]
    group = (await read_all(pair.source, GROUP))[0]
    await pair.source.patch(GROUP, group["id"], patch_body([{"op": "remove", "path": f'members[value eq "{ids[0]}"]'}]))
    again = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert again.outcome == "ok" and again.counts["updated"] == 1
    await assert_replicated(pair.source, pair.destination)


async def test_a_new_object_taking_the_key_of_an_unchanged_one_is_refused(servers: Servers) -> None:
    """An unchanged user read earlier keeps its userName (it takes the zero-change path and claims
    nothing); a new source user with the same userName in other letters fails as a duplicate."""
    seed(servers.source, 5, 2)
    config = servers.config(groups=False)
    await replicate(config, mode=INCREMENTAL, dry_run=False)
    first = next(iter(servers.source.users.values()))
    schema = ["urn:ietf:params:scim:schemas:core:2.0:User"]
    servers.source.users["twin"] = {"schemas": schema, "id": "twin", "userName": first["userName"].upper()}
    result = await replicate(config, mode=INCREMENTAL, dry_run=False)
    reasons = {label: reason for _, label, reason in result.failures}
    assert reasons == {first["userName"].upper(): f"duplicate userName in the source (also source id {first['id']})"}
    assert result.counts["unchanged"] == 5 and writes(result.destination_requests) == 0
    assert len(servers.destination.users) == 5


async def test_two_users_swapping_user_names_are_no_duplicates(servers: Servers) -> None:
    """Keys last written are not held against objects that changed them this cycle: two users that
    swap userNames are both planned (none is refused as a duplicate)."""
    seed(servers.source, 4, 2)
    config = servers.config(groups=False)
    await replicate(config, mode=INCREMENTAL, dry_run=False)
    a, b = list(servers.source.users.values())[:2]
    a["userName"], b["userName"] = b["userName"], a["userName"]
    result = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert not any("duplicate" in reason for _, _, reason in result.failures)


async def test_the_report_lists_a_bounded_number_of_failures(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the listing limit failures are counted, not kept in memory; a note says where they all are."""
    from replicator.cycle import recorder as cycle

    monkeypatch.setattr(cycle, "_FAILURES_LISTED", 3)
    schema = ["urn:ietf:params:scim:schemas:core:2.0:User"]
    for index in range(5):
        servers.source.users[f"nameless{index}"] = {"schemas": schema, "id": f"nameless{index}"}
    result = await replicate(servers.config(groups=False), mode=INCREMENTAL, dry_run=False)
    assert result.counts["failed"] == 5 and len(result.failures) == 3
    assert any("only the first 3 failures" in note for note in result.notes)
    async with open_state(servers.state) as store:
        assert len(await store.failures()) == 5


async def test_a_group_back_under_a_new_id_takes_over_what_we_wrote(servers: Servers) -> None:
    """A source group deleted and made again under a new id with the same name adopts its destination
    object, and the members we had written there for the old one are ours to remove (merge mode keeps
    only members someone else added on the destination)."""
    schema = ["urn:ietf:params:scim:schemas:core:2.0:Group"]
    user_schema = ["urn:ietf:params:scim:schemas:core:2.0:User"]
    alice = servers.source.add_user({"schemas": user_schema, "userName": "alice"})
    bob = servers.source.add_user({"schemas": user_schema, "userName": "bob"})
    old = servers.source.add_group({"schemas": schema, "displayName": "Eng",
                                    "members": [{"value": alice["id"], "type": "User"}]})
    config = servers.config()
    await replicate(config, mode=INCREMENTAL, dry_run=False)
    del servers.source.groups[old["id"]]
    servers.source.groups["again"] = {"schemas": schema, "id": "again", "displayName": "Eng",
                                      "members": [{"value": bob["id"], "type": "User"}]}
    result = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok" and result.counts["adopted"] == 1, result.failures
    await servers.check()
    async with open_state(servers.state) as store:
        (group,) = servers.destination.groups.values()
        assert await store.forms.owners(GROUP, group["id"]) == ["again"]


async def test_a_member_written_a_cycle_late_joins_its_unchanged_group(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    """A group written without a member that failed is planned again by the next incremental cycle
    (not skipped as unchanged source bytes), so the member joins it once the member replicates."""
    from replicator.cycle import recorder as cycle

    monkeypatch.setattr(cycle, "failure_backoff", lambda attempts: -1.0)  # retry failures at once
    user_schema = ["urn:ietf:params:scim:schemas:core:2.0:User"]
    late = servers.source.add_user({"schemas": user_schema, "userName": "late", "title": "REFUSE-ME"})
    fine = servers.source.add_user({"schemas": user_schema, "userName": "fine"})
    servers.source.add_group({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Eng",
                              "members": [{"value": late["id"], "type": "User"}, {"value": fine["id"], "type": "User"}]})
    servers.destination.faults = Faults(refuse_values={"REFUSE-ME"})
    config = servers.config()
    first = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert first.counts["failed"] == 1
    (group,) = servers.destination.groups.values()
    assert len(group["members"]) == 1
    servers.destination.faults = Faults()
    second = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert second.counts["created"] == 1 and second.counts["updated"] == 1, second.summary()
    await servers.check()
    third = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert writes(third.destination_requests) == 0 and third.counts["unchanged"] == 3


async def replicate_losing_results(config: Config, lost: set[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """One cycle whose results for these source ids never reach the state, as if a crash lost them
    after their creates reached the destination."""
    from replicator.state.store import StateStore

    record_success = StateStore.record_success

    async def losing(self: StateStore, kind: str, source_id: str, **fields: Any) -> None:
        if source_id not in lost:
            await record_success(self, kind, source_id, **fields)

    monkeypatch.setattr(StateStore, "record_success", losing)
    await replicate(config, mode=INCREMENTAL, dry_run=False)
    monkeypatch.undo()


@pytest.mark.parametrize("first_run", [True, False], ids=["first run (listed)", "later run (looked up)"])
async def test_an_object_created_before_a_crash_and_then_dropped_by_the_source_is_removed(
        servers: Servers, monkeypatch: pytest.MonkeyPatch, first_run: bool) -> None:
    """A crash loses the results of creates that reached the destination, and the source drops those
    objects before the next cycle: the note committed before each create (per page when a listing
    proved them absent, else right before the POST) lets that cycle find them on the destination
    and remove them (nothing else records them as ours)."""
    ids = seed(servers.source, 30, 2)
    lost = set(ids[10:13])
    if not first_run:  # the state knows the others: the next cycle does not list the destination
        for user_id in lost:
            delete_user(servers.source, user_id)
        await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
        lost = {servers.source.add_user(user)["id"] for user in sample_users(33)[30:]}
    await replicate_losing_results(servers.config(), lost, monkeypatch)
    assert len(servers.destination.users) == 30
    for user_id in lost:
        delete_user(servers.source, user_id)
    for user in servers.source.users.values():  # nor do they manage anyone any more
        if user.get(ENTERPRISE_USER, {}).get("manager", {}).get("value") in lost:
            del user[ENTERPRISE_USER]["manager"]
    async with open_state(servers.state) as store:
        noted = await store.count(USER)
    plan = await replicate(servers.config(), mode=INCREMENTAL, dry_run=True)
    assert plan.counts["delete_planned"] == 3, plan.summary()
    async with open_state(servers.state) as store:
        assert await store.count(USER) == noted  # a dry run changes no state
    result = await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    assert result.counts["deleted"] == 3, result.summary()
    await servers.check()
    again = await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    assert writes(again.destination_requests) == 0 and again.destination_requests.get("GET", 0) <= 1


async def test_members_of_a_group_created_before_a_crash_stay_ours_to_remove(
        servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash loses the result of a group's create, and the source then drops a member: the next
    cycle adopts the group under its note, and in merge mode the members on it are the ones we added,
    so the dropped one is removed (not kept as someone else's member, which left access in place)."""
    seed(servers.source, 20, 2)
    group = next(g for g in servers.source.groups.values() if len(g.get("members", [])) >= 2)
    await replicate_losing_results(servers.config(), {group["id"]}, monkeypatch)
    dropped = group["members"].pop()
    result = await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    assert result.counts["adopted"] == 1, result.summary()
    (copy,) = [g for g in servers.destination.groups.values() if g["displayName"] == group["displayName"]]
    name = servers.source.users[dropped["value"]]["userName"]
    dropped_copy = next(u["id"] for u in servers.destination.users.values() if u["userName"] == name)
    assert dropped_copy not in {m["value"] for m in copy["members"]}
    await servers.check()


async def test_a_noted_create_is_disabled_with_what_it_holds(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    """With remove_action = disable, an object whose create result was lost is disabled, not
    replaced by a bare {active: false} (nothing of it was recorded; it is read first), also on a
    destination without PATCH, where disabling is a PUT of the whole object."""
    ids = seed(servers.source, 5, 2)
    await replicate_losing_results(servers.config(groups=False), {ids[4]}, monkeypatch)
    name = servers.source.users[ids[4]]["userName"]
    delete_user(servers.source, ids[4])
    servers.destination.quirks.patch_supported = False
    result = await replicate(servers.config(groups=False, remove_action="disable"), mode=INCREMENTAL, dry_run=False)
    assert result.counts["disabled"] == 1, result.summary()
    (kept,) = [user for user in servers.destination.users.values() if user["userName"] == name]
    assert kept["active"] is False and kept["name"] and kept["emails"]


async def test_a_group_whose_member_patch_fails_after_its_post_stays_ours(
        servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large group is created, then a PATCH adding its other members is refused: the group is
    recorded with what it holds (so it is ours, and the next cycle adds the rest) instead of lost."""
    from replicator.errors import BadRequestError

    ids = [servers.source.add_user(user)["id"] for user in sample_users(30)]
    servers.source.add_group(sample_group("Big", ids))

    async def refused(*args: Any, **kwargs: Any) -> None:
        raise BadRequestError("PATCH answered 400: refused", status=400)

    from replicator.cycle import recorder as cycle

    monkeypatch.setattr(cycle, "failure_backoff", lambda attempts: -1.0)  # retry failures at once
    with monkeypatch.context() as patched:
        patched.setattr(ScimClient, "patch", refused)
        first = await replicate(servers.config(member_chunk=10), mode=INCREMENTAL, dry_run=False)
    assert first.counts["failed"] == 1, first.summary()
    (group,) = servers.destination.groups.values()
    async with open_state(servers.state) as store:
        (row,) = [row async for row in store.iter_rows(GROUP)]
    assert row.dest_id == group["id"]
    second = await replicate(servers.config(member_chunk=10), mode=INCREMENTAL, dry_run=False)
    assert second.outcome == "ok" and second.counts["created"] == 0, second.summary()
    await servers.check()


async def test_removals_held_by_the_guard_and_an_incomplete_read_are_counted_once(servers: Servers) -> None:
    """Users held by the guard, then a group read that fails: each held removal is counted once, none is made."""
    ids = seed(servers.source, 40, 3)
    await replicate(servers.config(), mode=INCREMENTAL, dry_run=False)
    for user_id in ids[:30]:
        delete_user(servers.source, user_id)
    failing = servers.source._list_requests["Group"] + 1  # (the server counts list requests per kind)
    servers.source.faults = Faults(fail_list_page=failing)  # the next Groups page fails; users are read first
    result = await replicate(servers.config(retry_attempts=1), mode=INCREMENTAL, dry_run=False)
    assert servers.source._list_requests["Group"] >= failing  # the fault was reached
    assert result.reads["source Group"].complete is False
    # the 30 users the guard held, and the 4 groups the failed read did not see (once each)
    assert result.counts["removals_held"] == 30 + 4, result.summary()
    assert len(servers.destination.users) == 40
