"""A member-count limit learned from a destination's 400 is kept for a week, then probed: a cycle sends
the configured member chunk again, a destination that takes it has the limit forgotten, and one that
still refuses it has the limit learned anew at once, with every member written."""

from __future__ import annotations

import time
from pathlib import Path

from replicator.app import read_status, replicate
from replicator.cycle import INCREMENTAL
from replicator.pipeline.member_refusals import PROBE_AFTER
from replicator.pipeline.urls import destination_key
from replicator.report import status_json
from replicator.state import open_state
from replicator.state.keeps import MEMBERS_PER_REQUEST
from replicator.testing import MemoryScimServer, Quirks
from tests.harness import writes
from tests.integration.test_partial_groups import GROUP, USER, config_for, members_by_name, started
from tests.integration.test_partial_groups import source as source  # the fixture: a memory source server

DAY = 24 * 3600.0


async def learned_limits(state: str) -> list[tuple[int, float]]:
    return [(limit["value"], limit["learned_at"]) for limit in status_json(await read_status(state))["limits"]]


async def learn_five_long_ago(source: MemoryScimServer, destination: MemoryScimServer, state: str,
                              config_member_chunk: int = 20) -> list[str]:
    """A group of 12 written to a destination taking at most 5 members per request (the limit is
    learned), then that limit's learned time put 8 days back. Returns the source's user ids (50)."""
    ids = [source.add_user({"schemas": USER, "userName": f"u{i:02}"})["id"] for i in range(50)]
    source.add_group({"schemas": GROUP, "displayName": "team", "members": [{"value": i} for i in ids[:12]]})
    config = config_for(source, destination, Path(state).parent, member_chunk=config_member_chunk)
    first = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert first.outcome == "ok" and [value for value, _ in await learned_limits(state)] == [5], first.notes
    async with open_state(state) as store:
        await store.keeps.learn_limit(destination_key(config.destination.url), MEMBERS_PER_REQUEST, 5,
                                      learned_at=time.time() - PROBE_AFTER - DAY)
    return ids


async def test_a_learned_limit_is_kept_for_a_week_and_the_note_says_when_it_is_probed(
        source: MemoryScimServer, tmp_path: Path) -> None:
    """A limit learned a day ago is still used (8 members added in 2 PATCHes of 5 and 3), and the
    cycle's note names the limit and the day a cycle tries the setting again."""
    destination = await started(Quirks(max_members_per_request=5))
    try:
        state = str(tmp_path / "s.db")
        ids = await learn_five_long_ago(source, destination, state)
        async with open_state(state) as store:
            await store.keeps.learn_limit(destination_key(destination.base_url or ""), MEMBERS_PER_REQUEST, 5,
                                          learned_at=time.time() - DAY)
        [team] = source.groups.values()
        team["members"] += [{"value": i, "type": "User"} for i in ids[12:20]]
        result = await replicate(config_for(source, destination, tmp_path, member_chunk=20), mode=INCREMENTAL,
                                 dry_run=False)
        assert result.outcome == "ok" and result.destination_requests.get("PATCH") == 2, result.summary()
        probe_day = time.strftime("%Y-%m-%d", time.localtime(time.time() - DAY + PROBE_AFTER))
        assert any("takes at most 5 members per request (learned " in note and f"until a cycle from {probe_day}"
                   in note and "tries 20 again" in note for note in result.notes), result.notes
    finally:
        await destination.stop()


async def test_a_limit_learned_long_ago_is_probed_raised_and_forgotten_when_the_destination_takes_more(
        source: MemoryScimServer, tmp_path: Path) -> None:
    """The vendor raised the limit: a week after 5 was learned, 18 members added to the group go in one
    PATCH (the setting, 20, is tried again; not 4 requests of at most 5) and the limit is raised to 18
    (dated then, and still due); the next cycle's 20 go in one PATCH too and the limit is forgotten (the cycles say so,
    `status` lists none), and every member is there."""
    quirks = Quirks(max_members_per_request=5)
    destination = await started(quirks)
    try:
        state = str(tmp_path / "s.db")
        ids = await learn_five_long_ago(source, destination, state)
        [(_, learned_at)] = await learned_limits(state)
        [team_path] = [f"/Groups/{group['id']}" for group in destination.groups.values()]
        quirks.max_members_per_request = 0
        [team] = source.groups.values()
        team["members"] += [{"value": i, "type": "User"} for i in ids[12:30]]
        config = config_for(source, destination, tmp_path, member_chunk=20)
        started_at = time.time()
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert result.outcome == "ok" and writes(result.destination_requests) == 1, result.summary()
        assert [path for method, path in destination.request_log if method != "GET"][-1].endswith(team_path)
        assert any("took at most 5 members per request" in note and "this cycle tried 20: it took 18 in one "
                   "request (the limit is raised to that); the next cycle tries again" in note
                   for note in result.notes), result.notes
        [(value, raised_at)] = await learned_limits(state)
        assert value == 18 and raised_at >= started_at > learned_at
        team["members"] += [{"value": i, "type": "User"} for i in ids[30:50]]
        again = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert again.outcome == "ok" and writes(again.destination_requests) == 1, again.summary()
        # the raised limit is what the last probe found taken, and says so (not "at most", not "learned")
        assert any("the destination took 18 members in one request (the limit raised " in note
                   and "this cycle tried 20 and it took them: the "
                   "limit is forgotten" in note for note in again.notes), again.notes
        assert await learned_limits(state) == []
        assert len(members_by_name(destination)["team"]) == 50
    finally:
        await destination.stop()


async def test_a_probe_that_carries_no_more_than_the_limit_keeps_it(
        source: MemoryScimServer, tmp_path: Path) -> None:
    """A week after 5 was learned, a cycle adding 3 members proves nothing: the limit stays as it was
    (same learned time) and the note says the next cycle tries again."""
    destination = await started(Quirks(max_members_per_request=5))
    try:
        state = str(tmp_path / "s.db")
        ids = await learn_five_long_ago(source, destination, state)
        before = await learned_limits(state)
        [team] = source.groups.values()
        team["members"] += [{"value": i, "type": "User"} for i in ids[12:15]]
        result = await replicate(config_for(source, destination, tmp_path, member_chunk=20), mode=INCREMENTAL,
                                 dry_run=False)
        assert result.outcome == "ok" and len(members_by_name(destination)["team"]) == 15, result.summary()
        assert any("this cycle tried 20: no request carried more than 5 members; the next cycle tries again"
                   in note for note in result.notes), result.notes
        assert await learned_limits(state) == before
    finally:
        await destination.stop()


async def test_a_probe_still_refused_learns_the_limit_anew_with_every_member_written(
        source: MemoryScimServer, tmp_path: Path) -> None:
    """A week after 5 was learned the destination still takes at most 5: the probe's PATCH of 18 is
    refused once, the 18 go in requests of at most 5, the group holds all 30, and the limit is learned
    anew (learned now, so kept another week)."""
    destination = await started(Quirks(max_members_per_request=5))
    try:
        state = str(tmp_path / "s.db")
        ids = await learn_five_long_ago(source, destination, state)
        [team] = source.groups.values()
        team["members"] += [{"value": i, "type": "User"} for i in ids[12:30]]
        started_at = time.time()
        result = await replicate(config_for(source, destination, tmp_path, member_chunk=20), mode=INCREMENTAL,
                                 dry_run=False)
        assert result.outcome == "ok" and not result.failures, (result.summary(), result.failures)
        assert result.destination_requests.get("PATCH") == 1 + 4, result.summary()  # the refused one, then 5+5+5+3
        assert len(members_by_name(destination)["team"]) == 30
        assert any("takes at most 5 members per request (learned now)" in note for note in result.notes), result.notes
        [(value, learned_at)] = await learned_limits(state)
        assert value == 5 and learned_at >= started_at
    finally:
        await destination.stop()
