"""A group's definition beyond SCIM's Group (description, a dynamic group's userFilter) travels PingOne to
PingOne only; a SCIM side gets what SCIM has, and dynamic and external groups are noted as skipped."""

from __future__ import annotations

from pathlib import Path

from replicator.app import replicate
from replicator.config import Config, SideConfig, SyncConfig
from replicator.cycle import INCREMENTAL
from replicator.pipeline.canonical import GROUP
from replicator.pipeline.pingone import GROUP_EXTENSION, group_to_platform, group_to_scim, storable
from replicator.testing import MemoryScimServer
from replicator.testing.pingone import serve_pingone
from tests.pingone.test_pingone_replication import side, writes


def test_a_scim_form_of_a_group_holds_only_what_scim_groups_have() -> None:
    """Without a PingOne peer a group form has no description (SCIM's Group has none: a SCIM server
    refuses it); with one, the description and userFilter ride in the PingOneGroup extension and come
    back whole in the Platform body and in storable."""
    dynamic = {"id": "g1", "name": "Leads", "description": "team leads", "userFilter": 'title eq "Lead"'}
    assert group_to_scim(dynamic, user_members=[], group_members=[], population_names=None) == {
        "id": "g1", "displayName": "Leads"}
    form = group_to_scim(dynamic, user_members=[], group_members=[], population_names={})
    assert form[GROUP_EXTENSION] == {"description": "team leads", "userFilter": 'title eq "Lead"'}
    assert group_to_platform(form, population_id=None) == {k: v for k, v in dynamic.items() if k != "id"}
    kept, dropped = storable(GROUP, form)
    assert kept == {k: v for k, v in form.items() if k != "id"} and dropped == []


async def test_a_dynamic_group_travels_as_its_filter_between_pingone_environments(tmp_path: Path) -> None:
    """PingOne -> PingOne: a dynamic group is created with its userFilter and no member written (PingOne
    computes them), a changed filter is written once, and a cycle with no change writes nothing."""
    async with serve_pingone() as emulator:
        source, destination = emulator.add_environment("src"), emulator.add_environment("dst")
        for i in range(6):
            source.add_user(f"u{i}", title="Lead" if i % 2 else "Staff")
            destination.add_user(f"u{i}", title="Lead" if i % 2 else "Staff")
        leads = source.add_group("Leads", description="team leads", user_filter='title eq "Lead"')
        config = Config(source=side(emulator, source), destination=side(emulator, destination),
                        state=str(tmp_path / "s.db"), sync=SyncConfig(max_delete_percent=100.0))
        first = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert first.outcome == "ok", (first.summary(), first.failures[:3])
        copied = next(g for g in destination.directory.groups.values() if g["name"] == "Leads")
        assert (copied["userFilter"], copied["description"]) == ('title eq "Lead"', "team leads")
        assert not any(path.endswith("/memberOfGroups") for _, path, _ in destination.request_log)
        assert {destination.directory.users[u]["username"] for u in destination.member_ids(copied["id"])} == {
            "u1", "u3", "u5"}
        before = writes(destination)
        assert (await replicate(config, mode=INCREMENTAL, dry_run=False)).outcome == "ok"
        assert writes(destination) == before
        source.directory.groups[leads["id"]]["userFilter"] = 'title eq "Staff"'
        changed = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert changed.outcome == "ok" and copied["id"] in destination.directory.groups
        assert destination.directory.groups[copied["id"]]["userFilter"] == 'title eq "Staff"'
        assert writes(destination) == before + 1


async def test_dynamic_and_external_groups_are_skipped_and_noted_towards_scim(tmp_path: Path) -> None:
    """PingOne -> SCIM: a dynamic and an external group are not created (SCIM cannot compute members),
    the cycle says so, and the static group arrives without its description, which the notes name."""
    async with serve_pingone() as emulator:
        source = emulator.add_environment("src")
        user = source.add_user("ann")
        static = source.add_group("Staff", description="everyone on staff")
        source.add_member(static["id"], user["id"])
        source.add_group("Leads", user_filter='title eq "Lead"')
        source.add_group("AD admins", source_type="IDP", source_id="idp-1")
        scim = MemoryScimServer()
        await scim.start()
        try:
            config = Config(source=side(emulator, source), destination=SideConfig(url=scim.base_url or ""),
                            state=str(tmp_path / "s.db"))
            result = await replicate(config, mode=INCREMENTAL, dry_run=False)
        finally:
            await scim.stop()
        assert result.outcome == "ok", (result.summary(), result.failures[:3])
        assert [(g["displayName"], "description" in g) for g in scim.groups.values()] == [("Staff", False)]
        notes = " | ".join(result.notes)
        assert "1 a dynamic group" in notes and "1 an external group" in notes, notes
        assert "1 group descriptions not replicated" in notes, notes
