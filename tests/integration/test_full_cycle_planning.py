"""What a full cycle asks the state while it plans (issue 18: the daemon's first cycle is full). An object
the state has no destination object for is a create, whatever the destination listing holds: planning it
asks nothing about what the cycle wrote. That query, made for every object of a page and again for every
waiter released alone, let a chain of managers (each waiting for the one above) fall a page behind per
link, so that a fifth of a 30k-user copy waited and held its form (85 against 69 MB peak RSS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from replicator.app import replicate
from replicator.cycle import FULL
from replicator.pipeline.canonical import USER
from replicator.state.store import StateStore
from replicator.testing import MemoryScimServer
from tests.conftest import DESTINATION_TOKEN, SOURCE_TOKEN
from tests.harness import make_config


async def test_a_full_copy_asks_nothing_of_what_it_wrote_for_new_objects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[list[str]] = []
    original = StateStore.written_since

    async def written_since(self: StateStore, kind: str, source_ids: list[str], since: float) -> set[str]:
        if kind == USER:
            asked.append(list(source_ids))
        return await original(self, kind, source_ids, since)

    monkeypatch.setattr(StateStore, "written_since", written_since)
    source = MemoryScimServer(bearer_token=SOURCE_TOKEN)
    destination = MemoryScimServer(bearer_token=DESTINATION_TOKEN)
    urls = await source.start(), await destination.start()
    try:
        ids = [source.add_user({"userName": f"u{i}"})["id"] for i in range(30)]
        config = make_config(urls[0], urls[1], tmp_path / "s.db", source_token=SOURCE_TOKEN,
                             destination_token=DESTINATION_TOKEN, groups=False)
        first: Any = await replicate(config, mode=FULL, dry_run=False)
        assert first.outcome == "ok", first.summary()
        assert first.counts["created"] == 30 and len(destination.users) == 30
        assert asked == [], "the first copy asked what it wrote of objects the state did not know"

        # the spy sees the question where it is needed: recorded users, planned against the listing
        source.users[ids[0]]["title"] = "changed"
        again: Any = await replicate(config, mode=FULL, dry_run=False)
        assert again.outcome == "ok", again.summary()
        assert any(ids[0] in batch for batch in asked), asked
    finally:
        await source.stop()
        await destination.stop()
