"""A group create's first POST is evidence for a probed member-count limit, as a PATCH add is: a
destination that takes a POST carrying more members than the limit learned has the limit raised to
that count, and one carrying the setting's count has it forgotten, from creates alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from replicator.app import replicate
from replicator.cycle import INCREMENTAL
from replicator.cycle.member_requests import MemberRequests
from replicator.testing import MemoryScimServer, Quirks
from tests.harness import writes
from tests.integration.test_member_limit_probe import learn_five_long_ago, learned_limits
from tests.integration.test_partial_groups import GROUP, config_for, members_by_name, started
from tests.integration.test_partial_groups import source as source  # the fixture: a memory source server


def new_group(source: MemoryScimServer, name: str, ids: list[str]) -> None:
    source.add_group({"schemas": GROUP, "displayName": name, "members": [{"value": i} for i in ids]})


async def test_a_probe_raises_and_forgets_the_limit_from_group_creates_alone(
        source: MemoryScimServer, tmp_path: Path) -> None:
    """A week after 5 was learned the vendor lifted the limit: a new group of 18 goes in one POST (no
    PATCH) and the limit is raised to 18; the next cycle's new group of 20 (the setting) goes in one
    POST too and the limit is forgotten."""
    quirks = Quirks(max_members_per_request=5)
    destination = await started(quirks)
    try:
        state = str(tmp_path / "s.db")
        ids = await learn_five_long_ago(source, destination, state)
        quirks.max_members_per_request = 0
        new_group(source, "eighteen", ids[:18])
        config = config_for(source, destination, tmp_path, member_chunk=20)
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert result.outcome == "ok" and result.destination_requests.get("POST") == 1, result.summary()
        assert writes(result.destination_requests) == 1, result.summary()
        assert any("this cycle tried 20: it took 18 in one request (the limit is raised to that)" in note
                   for note in result.notes), result.notes
        assert [value for value, _ in await learned_limits(state)] == [18]
        new_group(source, "twenty", ids[20:40])
        again = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert again.outcome == "ok" and writes(again.destination_requests) == 1, again.summary()
        assert any("this cycle tried 20 and it took them: the limit is forgotten" in note for note in again.notes), \
            again.notes
        assert await learned_limits(state) == []
        held = members_by_name(destination)
        assert (len(held["eighteen"]), len(held["twenty"])) == (18, 20)
    finally:
        await destination.stop()



async def test_members_a_create_left_out_are_no_evidence_for_the_limit(
        source: MemoryScimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A destination that takes a group's POST but keeps none of its members (RFC 7644 3.3 lets it;
    django-scim2 does): the POST is no evidence that it takes that many members in one request, only
    the PATCH adding them afterwards is."""
    taken: list[tuple[int, int]] = []  # (members counted as taken, PATCHes sent to the destination by then)
    original = MemberRequests.taken

    def spy(self: MemberRequests, members: int) -> None:
        taken.append((members, destination.counts()["PATCH"]))
        original(self, members)

    monkeypatch.setattr(MemberRequests, "taken", spy)
    destination = await started(Quirks(create_ignores_members=True))
    try:
        ids = [source.add_user({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                "userName": f"u{i}"})["id"] for i in range(18)]
        new_group(source, "eighteen", ids)
        result = await replicate(config_for(source, destination, tmp_path, member_chunk=20), mode=INCREMENTAL,
                                 dry_run=False)
        assert result.outcome == "ok", result.summary()
        assert len(members_by_name(destination)["eighteen"]) == 18
        assert [count for count, patches in taken if patches == 0 and count] == [], taken  # the POST's: none
        assert (18, 1) in taken, taken  # the PATCH that added them
    finally:
        await destination.stop()
