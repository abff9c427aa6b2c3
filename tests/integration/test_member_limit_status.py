"""`status` dates a member-count limit by when its value was learned: a limit a probe raised shows when
it was raised (not when the limit before it was learned) and says every cycle probes it; one learned
anew after that replaces it, dated then."""

from __future__ import annotations

import time
from pathlib import Path

from replicator.app import read_status, replicate
from replicator.cycle import INCREMENTAL
from replicator.pipeline.member_refusals import PROBE_AFTER
from replicator.report import status_json, status_text
from replicator.state.keeps import MEMBERS_PER_REQUEST, MEMBERS_PER_REQUEST_RAISED
from replicator.testing import MemoryScimServer, Quirks
from tests.integration.test_member_limit_probe import learn_five_long_ago, learned_limits
from tests.integration.test_partial_groups import config_for, members_by_name, started
from tests.integration.test_partial_groups import source as source  # the fixture: a memory source server


def local(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


async def limit_lines(state: str) -> list[str]:
    return [line for line in status_text(await read_status(state)).splitlines() if line.startswith("destination ")]


async def test_status_shows_when_a_probe_raised_the_limit(source: MemoryScimServer, tmp_path: Path) -> None:
    """A week after 5 was learned the destination takes 18 members in one PATCH: `status` says the limit
    was raised to 18 at that cycle, and that each cycle tries the setting again; the date 5 was learned
    is gone."""
    quirks = Quirks(max_members_per_request=5)
    destination = await started(quirks)
    try:
        state = str(tmp_path / "s.db")
        ids = await learn_five_long_ago(source, destination, state)
        [(_, learned_at)] = await learned_limits(state)
        assert await limit_lines(state) == [
            # learned 8 days ago: its week is over, so cycles send up to the setting again (status says so)
            f"destination {destination.base_url} takes at most 5 members per request (learned {local(learned_at)}): "
            f"its probe is due (since {local(learned_at + PROBE_AFTER)}): each cycle tries sync.member_chunk again "
            "(a request of that many taken forgets the limit, a 400 about the count learns it anew)"]
        quirks.max_members_per_request = 0
        [team] = source.groups.values()
        team["members"] += [{"value": i, "type": "User"} for i in ids[12:30]]
        started_at = time.time()
        result = await replicate(config_for(source, destination, tmp_path, member_chunk=20), mode=INCREMENTAL,
                                 dry_run=False)
        assert result.outcome == "ok", result.summary()
        [limit] = status_json(await read_status(state))["limits"]
        assert (limit["name"], limit["value"]) == (MEMBERS_PER_REQUEST_RAISED, 18) and limit["learned_at"] >= started_at
        assert await limit_lines(state) == [
            f"destination {destination.base_url} took 18 members in one request when its member limit was probed "
            f"(the limit raised {local(limit['learned_at'])}): each cycle tries sync.member_chunk again (a 400 "
            "about the count learns the limit anew)"]
    finally:
        await destination.stop()


async def test_a_raised_limit_refused_again_is_learned_anew_in_its_place(
        source: MemoryScimServer, tmp_path: Path) -> None:
    """The limit raised to 18, the next cycle probes again and the destination (now taking at most 10)
    refuses a PATCH of 20 and then one of 18: 10 is learned, dated then, in place of the raised one
    (`status` shows that one alone), and every member is written."""
    quirks = Quirks(max_members_per_request=5)
    destination = await started(quirks)
    try:
        state = str(tmp_path / "s.db")
        ids = await learn_five_long_ago(source, destination, state)
        quirks.max_members_per_request = 0
        [team] = source.groups.values()
        team["members"] += [{"value": i, "type": "User"} for i in ids[12:30]]
        config = config_for(source, destination, tmp_path, member_chunk=20)
        assert (await replicate(config, mode=INCREMENTAL, dry_run=False)).outcome == "ok"
        [raised] = status_json(await read_status(state))["limits"]
        assert (raised["name"], raised["value"]) == (MEMBERS_PER_REQUEST_RAISED, 18)
        quirks.max_members_per_request = 10
        team["members"] += [{"value": i, "type": "User"} for i in ids[30:50]]
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert result.outcome == "ok" and not result.failures, (result.summary(), result.failures)
        assert len(members_by_name(destination)["team"]) == 50
        [limit] = status_json(await read_status(state))["limits"]
        assert (limit["name"], limit["value"]) == (MEMBERS_PER_REQUEST, 10)
        assert limit["learned_at"] >= raised["learned_at"]
        assert await limit_lines(state) == [
            f"destination {destination.base_url} takes at most 10 members per request (learned "
            f"{local(limit['learned_at'])}): group writes carry at most 10 members each until a cycle from "
            f"{local(limit['learned_at'] + PROBE_AFTER)} tries sync.member_chunk again"]
    finally:
        await destination.stop()
