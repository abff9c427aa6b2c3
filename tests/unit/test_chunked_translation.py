"""A big group's members looked up and translated a chunk at a time (`Planner._translated_in_chunks`,
issue 18: a group of a million members in bounded memory): the same desired form as translating it
whole; nothing taken when a member has no destination id yet (the group then waits whole); a target
gone between the check and the translation is written without, and reported."""

from __future__ import annotations

from typing import Any

import pytest

import replicator.cycle.planner as planner_module
from replicator.cycle.planner import Planner
from replicator.pipeline.canonical import GROUP, USER, canonicalise
from replicator.pipeline.references import TAKEN, translate


def _group(count: int) -> dict[str, Any]:
    members = [{"value": f"u{i}", "type": USER} for i in range(count)] + [{"value": "g0", "type": GROUP}, {"value": "x"}]
    return canonicalise({"id": "g", "displayName": "Everyone", "externalId": "e", "members": members}, GROUP)


class _Lookups:
    """The planner's reference lookup, faked: every user and group has a destination id but `missing`
    (and, from the `gone_after`th lookup on, `gone`); each lookup's members are kept."""

    def __init__(self, missing: frozenset[str] = frozenset(), gone: str | None = None, gone_after: int = 0) -> None:
        self.missing, self.gone, self.gone_after = missing, gone, gone_after
        self.asked: list[int] = []

    async def targets(self, kind: str, canonicals: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, str]]:
        assert kind == GROUP
        members = [m for c in canonicals for m in c["members"]]
        self.asked.append(len(members))
        absent = self.missing | ({self.gone} if self.gone and len(self.asked) > self.gone_after else set())
        ids = {m["value"]: "d-" + m["value"] for m in members if m["value"] not in absent}
        return ({k: v for k, v in ids.items() if not k.startswith("g")},
                {k: v for k, v in ids.items() if not k.startswith("u")})


def _planner(lookups: _Lookups, monkeypatch: pytest.MonkeyPatch, chunk: int) -> Planner:
    monkeypatch.setattr(planner_module, "_MEMBER_CHUNK", chunk)
    planner = Planner.__new__(Planner)  # (no cycle: only the lookup seam is used)
    monkeypatch.setattr(planner, "targets", lookups.targets)
    return planner


@pytest.mark.parametrize("chunk", [1, 3, 4, 100])
async def test_a_group_translated_in_chunks_is_the_group_translated_whole(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    lookups = _Lookups()
    canonical = _group(10)
    users, groups = await lookups.targets(GROUP, [canonical])
    whole, _ = translate(canonical, GROUP, users, groups)
    lookups.asked.clear()
    desired, unresolved, required = await _planner(lookups, monkeypatch, chunk)._translated_in_chunks(canonical)
    assert (desired, unresolved, required) == (whole, [], {})
    assert canonical["members"] is TAKEN and canonical["displayName"] == "Everyone"
    assert max(lookups.asked) <= chunk and sum(lookups.asked) == 2 * 12  # (checked, then translated, a chunk at a time)


async def test_a_member_without_a_destination_id_leaves_the_group_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    canonical = _group(10)
    before = [dict(m) for m in canonical["members"]]
    lookups = _Lookups(missing=frozenset({"u7"}))
    assert await _planner(lookups, monkeypatch, 3)._translated_in_chunks(canonical) is None
    assert canonical["members"] == before
    assert sum(lookups.asked) < 12  # (the check stops at the first chunk that does not resolve)


async def test_a_target_gone_after_the_check_is_written_without_and_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    canonical = _group(10)
    lookups = _Lookups(gone="u1", gone_after=4)  # (4 checks of 3 members; gone for the translation)
    desired, unresolved, required = await _planner(lookups, monkeypatch, 3)._translated_in_chunks(canonical)
    assert len(lookups.asked) == 8 and unresolved == ["u1"] and required == {"u1": USER}
    values = [m["value"] for m in desired["members"]]
    assert "d-u1" not in values and len(values) == 11 and "d-u2" in values
