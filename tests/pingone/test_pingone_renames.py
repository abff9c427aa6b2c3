"""Swapped usernames between PingOne environments (issue 16, case 7): PingOne answers the first rename
409 UNIQUENESS_VIOLATION, and the swap still converges in one cycle by updates alone."""

from __future__ import annotations

from pathlib import Path

from replicator.app import replicate
from replicator.config import Config, SyncConfig
from replicator.cycle import INCREMENTAL
from replicator.testing.pingone import serve_pingone
from tests.pingone.test_pingone_replication import side


async def test_swapped_usernames_converge_in_one_cycle(tmp_path: Path) -> None:
    """ann and bob swap usernames in the source environment: one cycle, no create or delete, exit ok."""
    async with serve_pingone() as emulator:
        source, destination = emulator.add_environment("src-env"), emulator.add_environment("dst-env")
        ann, bob = source.add_user("ann")["id"], source.add_user("bob")["id"]
        config = Config(source=side(emulator, source), destination=side(emulator, destination),
                        state=str(tmp_path / "s.db"), sync=SyncConfig())
        assert (await replicate(config, mode=INCREMENTAL, dry_run=False)).outcome == "ok"
        ids = {user["username"]: user["id"] for user in destination.directory.users.values()}
        users = source.directory.users
        users[ann]["username"], users[bob]["username"] = "bob", "ann"
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert result.outcome == "ok", (result.summary(), result.failures)
        assert result.counts["created"] == 0 and result.counts["deleted"] == 0
        assert {user["id"]: user["username"] for user in destination.directory.users.values()} == {
            ids["ann"]: "bob", ids["bob"]: "ann"}
