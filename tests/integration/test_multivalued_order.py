"""Multi-valued attributes on the wire: the primary value is sent first (a server keeping one value keeps
the primary), and a reordering in the source writes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from replicator.app import replicate
from replicator.config import Config, SideConfig
from replicator.cycle import FULL, INCREMENTAL
from replicator.testing import MemoryScimServer, Quirks
from tests.harness import writes

SCHEMA = ["urn:ietf:params:scim:schemas:core:2.0:User"]
GROUP_SCHEMA = ["urn:ietf:params:scim:schemas:core:2.0:Group"]
HOME = {"value": "ann@home.example", "type": "home", "primary": False}  # sorts before WORK
WORK = {"value": "ann@work.example", "type": "work", "primary": True}
OTHER = {"value": "ann@other.example", "type": "other"}


def config_for(source: MemoryScimServer, destination: MemoryScimServer, tmp: Path) -> Config:
    return Config(source=SideConfig(url=source.base_url or ""), destination=SideConfig(url=destination.base_url or ""),
                  state=str(tmp / "s.db"))


def copy_of(destination: MemoryScimServer, user_name: str) -> dict[str, Any]:
    return next(u for u in destination.users.values() if u["userName"] == user_name)


async def test_a_server_keeping_one_email_gets_the_primary_one(tmp_path: Path) -> None:
    """A destination that keeps only the first email sent (PingOne) holds the primary work email, not
    the home email that sorts before it, after a create and after a change of the emails."""
    source = MemoryScimServer()
    destination = MemoryScimServer(quirks=Quirks(keeps_first_value_of={"emails"}))
    await source.start()
    await destination.start()
    try:
        user = source.add_user({"schemas": SCHEMA, "userName": "ann", "emails": [HOME, WORK]})
        config = config_for(source, destination, tmp_path)
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert result.outcome == "ok" and result.counts["created"] == 1, result.summary()
        assert copy_of(destination, "ann")["emails"] == [WORK]
        source.users[user["id"]]["emails"] = [HOME, OTHER, WORK]
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert result.counts["updated"] == 1, result.summary()
        assert copy_of(destination, "ann")["emails"] == [WORK]
    finally:
        await source.stop()
        await destination.stop()


async def test_reordered_values_and_members_in_the_source_write_nothing(tmp_path: Path) -> None:
    """Emails, roles and group members reordered in the source: neither an incremental cycle nor a full
    reconcile writes anything, and the destination keeps the primary email first."""
    source, destination = MemoryScimServer(), MemoryScimServer()
    await source.start()
    await destination.start()
    try:
        ann = source.add_user({"schemas": SCHEMA, "userName": "ann", "emails": [HOME, OTHER, WORK],
                               "roles": ["b", "a", "c"]})
        bob = source.add_user({"schemas": SCHEMA, "userName": "bob"})
        group = source.add_group({"schemas": GROUP_SCHEMA, "displayName": "g",
                                  "members": [{"value": ann["id"]}, {"value": bob["id"]}]})
        config = config_for(source, destination, tmp_path)
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert result.outcome == "ok" and result.counts["created"] == 3, result.summary()
        assert copy_of(destination, "ann")["emails"] == [WORK, HOME, OTHER]
        source.users[ann["id"]]["emails"] = [OTHER, WORK, HOME]
        source.users[ann["id"]]["roles"] = ["c", "a", "b"]
        source.groups[group["id"]]["members"].reverse()
        for mode in (INCREMENTAL, FULL):
            again = await replicate(config, mode=mode, dry_run=False)
            assert again.outcome == "ok" and writes(again.destination_requests) == 0, (mode, again.summary())
        assert copy_of(destination, "ann")["emails"] == [WORK, HOME, OTHER]
    finally:
        await source.stop()
        await destination.stop()
