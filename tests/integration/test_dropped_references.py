"""Every dropped reference is counted and named: a member (or manager) that names nothing the source has
is not written, and the cycle says so (a count, examples, outcome partial), while a member the scope
keeps out is the scope's doing and no drop."""

from __future__ import annotations

from pathlib import Path

from replicator.app import replicate
from replicator.config import Config, ScopeConfig, SideConfig
from replicator.cycle import INCREMENTAL
from replicator.testing import MemoryScimServer

USER = ["urn:ietf:params:scim:schemas:core:2.0:User"]
GROUP = ["urn:ietf:params:scim:schemas:core:2.0:Group"]
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


async def test_members_that_name_nothing_are_counted_named_and_make_the_cycle_partial(tmp_path: Path) -> None:
    """A group whose members name a user by something that is not an id: the real member is written,
    the two that name nothing are counted and named in a note, and the outcome is partial; the
    destination group holds exactly the real member."""
    source, destination = MemoryScimServer(), MemoryScimServer()
    await source.start()
    await destination.start()
    try:
        ann = source.add_user({"schemas": USER, "userName": "ann"})
        source.add_user({"schemas": USER, "userName": "bob", "title": "outsider"})
        source.add_group({"schemas": GROUP, "displayName": "staff",
                          "members": [{"value": ann["id"]}, {"value": "ann@example.com"}, {"value": "uid=cat"}]})
        config = Config(source=SideConfig(url=source.base_url or ""), destination=SideConfig(url=destination.base_url or ""),
                        state=str(tmp_path / "s.db"))
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert result.counts["references_dropped"] == 2, result.summary()
        assert result.outcome == "partial"
        note = next(n for n in result.notes if "references name objects the source does not have" in n)
        assert "Group staff" in note and "'ann@example.com'" in note and "'uid=cat'" in note
        group = next(iter(destination.groups.values()))
        assert [m["value"] for m in group["members"]] == [u["id"] for u in destination.users.values() if u["userName"] == "ann"]
    finally:
        await source.stop()
        await destination.stop()


async def test_a_member_the_scope_keeps_out_is_no_dropped_reference(tmp_path: Path) -> None:
    """A member read but out of scope is left out on purpose: not counted, and the cycle is ok."""
    source, destination = MemoryScimServer(), MemoryScimServer()
    await source.start()
    await destination.start()
    try:
        ann = source.add_user({"schemas": USER, "userName": "ann", "title": "staff"})
        bob = source.add_user({"schemas": USER, "userName": "bob", "title": "contractor"})
        source.add_group({"schemas": GROUP, "displayName": "staff", "members": [{"value": ann["id"]}, {"value": bob["id"]}]})
        config = Config(source=SideConfig(url=source.base_url or ""), destination=SideConfig(url=destination.base_url or ""),
                        state=str(tmp_path / "s.db"), scope=ScopeConfig(user_filter='title eq "staff"'))
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert result.counts["references_dropped"] == 0 and result.outcome == "ok", (result.summary(), result.notes)
        group = next(iter(destination.groups.values()))
        assert len(group["members"]) == 1
    finally:
        await source.stop()
        await destination.stop()


async def test_references_whose_type_lies_are_counted_and_named(tmp_path: Path) -> None:
    """A member typed User that names a group, one typed Group that names a user, and a manager that
    names a group: none is written, each is counted and named with what it really names (partial)."""
    source, destination = MemoryScimServer(), MemoryScimServer()
    await source.start()
    await destination.start()
    try:
        ann = source.add_user({"schemas": USER, "userName": "ann"})
        inner = source.add_group({"schemas": GROUP, "displayName": "inner", "members": [{"value": ann["id"]}]})
        source.add_group({"schemas": GROUP, "displayName": "outer",
                          "members": [{"value": inner["id"], "type": "User"}, {"value": ann["id"], "type": "Group"}]})
        source.add_user({"schemas": [*USER, ENTERPRISE], "userName": "bob",
                         ENTERPRISE: {"manager": {"value": inner["id"]}}})
        config = Config(source=SideConfig(url=source.base_url or ""), destination=SideConfig(url=destination.base_url or ""),
                        state=str(tmp_path / "s.db"))
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert result.counts["references_dropped"] == 3, (result.summary(), result.notes)
        assert result.outcome == "partial"
        note = next(n for n in result.notes if "name an object of another kind" in n)
        assert "Group outer" in note and "User bob" in note and "typed User, names a Group" in note, note
        assert "typed Group, names a User" in note and "a manager must be a User, names a Group" in note, note
        outer = next(g for g in destination.groups.values() if g["displayName"] == "outer")
        assert not outer.get("members")
    finally:
        await source.stop()
        await destination.stop()
