"""Provisioning rules end to end: the "Provisioning Users" scope, filters, scope changes, attribute mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from replicator.app import replicate
from replicator.config import Config, MappingConfig, MappingSection, ScopeConfig, SideConfig, SyncConfig
from replicator.cycle import FULL, INCREMENTAL
from replicator.pipeline.canonical import USER
from replicator.scim.urns import ENTERPRISE_USER
from replicator.testing import MemoryScimServer
from tests.harness import writes

TOKEN = "scope-token"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
CUSTOM_SOURCE = "urn:example:source:custom:1.0"
CUSTOM_DESTINATION = "urn:example:destination:custom:1.0"


class Directory:
    def __init__(self, source: MemoryScimServer, destination: MemoryScimServer, tmp: Path) -> None:
        self.source, self.destination, self.state = source, destination, tmp / "state.db"
        self.users: dict[str, str] = {}  # userName -> source id
        self.groups: dict[str, str] = {}

    def user(self, name: str, **attributes: Any) -> str:
        resource = {"schemas": [USER_SCHEMA], "userName": name, "active": True,
                    "emails": [{"type": "work", "value": f"{name}@example.com"}], **attributes}
        self.users[name] = self.source.add_user(resource)["id"]
        return self.users[name]

    def group(self, name: str, users: list[str], groups: list[str] = ()) -> str:  # type: ignore[assignment]
        members = [{"value": self.users[u], "type": "User"} for u in users]
        members += [{"value": self.groups[g], "type": "Group"} for g in groups]
        self.groups[name] = self.source.add_group({"schemas": [GROUP_SCHEMA], "displayName": name, "members": members})["id"]
        return self.groups[name]

    def set_members(self, group: str, users: list[str], groups: list[str] = ()) -> None:  # type: ignore[assignment]
        members = [{"value": self.users[u], "type": "User"} for u in users]
        members += [{"value": self.groups[g], "type": "Group"} for g in groups]
        self.source.groups[self.groups[group]]["members"] = members

    def config(self, *, scope: ScopeConfig | None = None, users: MappingConfig | None = None, **sync: Any) -> Config:
        return Config(
            source=SideConfig(url=self.source.base_url or "", token=TOKEN),
            destination=SideConfig(url=self.destination.base_url or "", token=TOKEN),
            sync=SyncConfig(**sync), scope=scope or ScopeConfig(),
            mapping=MappingSection(users=users or MappingConfig()), state=str(self.state),
        )

    def destination_users(self) -> dict[str, dict[str, Any]]:
        return {u["userName"]: u for u in self.destination.users.values()}

    def destination_members(self, group: str) -> set[str]:
        names = {u["id"]: u["userName"] for u in self.destination.users.values()}
        names.update({g["id"]: g["displayName"] for g in self.destination.groups.values()})
        found = next(g for g in self.destination.groups.values() if g["displayName"] == group)
        return {names.get(m["value"], "?") for m in found.get("members", [])}


@pytest.fixture
async def directory(tmp_path: Path) -> AsyncIterator[Directory]:
    source, destination = MemoryScimServer(bearer_token=TOKEN), MemoryScimServer(bearer_token=TOKEN)
    await source.start()
    await destination.start()
    yield Directory(source, destination, tmp_path)
    await source.stop()
    await destination.stop()


PROVISIONING = ScopeConfig(user_groups=["Provisioning Users"], group_names=["Provisioning Users", "Contractors"])


async def test_provisioning_users_group_scope(directory: Directory) -> None:
    """Only (nested) members of "Provisioning Users" replicate; joining creates, leaving deprovisions; dry-run says why."""
    d = directory
    for name in ("ann", "bob", "cat", "dan", "eve", "fay", "gus"):
        d.user(name)
    d.group("Contractors", ["gus"])
    d.group("Provisioning Users", ["ann", "bob", "cat"], groups=["Contractors"])
    d.group("Sales", ["dan", "ann"])
    config = d.config(scope=PROVISIONING)
    first = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert first.outcome == "ok", first.summary()
    assert set(d.destination_users()) == {"ann", "bob", "cat", "gus"}
    assert {g["displayName"] for g in d.destination.groups.values()} == {"Provisioning Users", "Contractors"}
    assert d.destination_members("Provisioning Users") == {"ann", "bob", "cat", "Contractors"}
    assert first.counts["out_of_scope"] == 3 + 1  # dan, eve, fay; the Sales group

    d.set_members("Provisioning Users", ["ann", "cat", "eve"], groups=["Contractors"])  # eve joins, bob leaves
    plan = await replicate(config, mode=INCREMENTAL, dry_run=True)
    changes = {(s.action, s.label): s.reason for s in plan.changes}
    assert changes[("create", "eve")] == "in scope: member of 'Provisioning Users'"
    assert changes[("delete", "bob")] == "leaves scope: not a member of 'Provisioning Users'"
    applied = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert applied.counts["created"] == 1 and applied.counts["deleted"] == 1, applied.summary()
    assert set(d.destination_users()) == {"ann", "cat", "eve", "gus"}
    assert d.destination_members("Provisioning Users") == {"ann", "cat", "eve", "Contractors"}
    again = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert writes(again.destination_requests) == 0, again.summary()


async def test_nested_membership_can_be_switched_off(directory: Directory) -> None:
    """With scope.nested=false, members of a nested group are out of scope."""
    d = directory
    for name in ("ann", "gus"):
        d.user(name)
    d.group("Contractors", ["gus"])
    d.group("Provisioning Users", ["ann"], groups=["Contractors"])
    scope = ScopeConfig(user_groups=["Provisioning Users"], nested=False)
    await replicate(d.config(scope=scope), mode=INCREMENTAL, dry_run=False)
    assert set(d.destination_users()) == {"ann"}


async def test_scope_group_names_in_another_case_name_the_source_groups(directory: Directory) -> None:
    """scope.user_groups and scope.group_names typed in another case select the groups and their members;
    a listed group the source lacks is noted once, spelled as configured."""
    d = directory
    for name in ("ann", "bob", "dan"):
        d.user(name)
    d.group("Provisioning Users", ["ann", "bob"])
    d.group("Sales", ["dan"])
    scope = ScopeConfig(user_groups=["provisioning USERS"],
                        group_names=["PROVISIONING users", "Help Desk", "help desk"])
    plan = await replicate(d.config(scope=scope), mode=INCREMENTAL, dry_run=True)
    assert {s.label: s.reason for s in plan.changes if s.kind == USER} == {
        "ann": "in scope: member of 'provisioning USERS'", "bob": "in scope: member of 'provisioning USERS'"}
    result = await replicate(d.config(scope=scope), mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok", result.summary()
    assert set(d.destination_users()) == {"ann", "bob"}
    assert {g["displayName"] for g in d.destination.groups.values()} == {"Provisioning Users"}
    assert d.destination_members("Provisioning Users") == {"ann", "bob"}
    assert [n for n in result.notes if "scope.group_names" in n] == [
        "scope.group_names names groups the source does not have: 'Help Desk'"], result.notes


async def test_a_source_group_without_a_display_name_is_named_by_no_scope_name(directory: Directory) -> None:
    """A source group without a displayName is not the group "none" of scope.user_groups: the name is
    missing from the source, so the cycle is held before any write and its member stays out."""
    d = directory
    for name in ("ann", "bob"):
        d.user(name)
    del d.source.groups[d.group("nameless", ["ann"])]["displayName"]
    d.group("Staff", ["bob"])
    result = await replicate(d.config(scope=ScopeConfig(user_groups=["none"])), mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "held", result.summary()
    assert any(n.startswith("scope.user_groups names groups the source does not have: 'none'")
               for n in result.notes), result.notes
    assert not d.destination.users


async def test_leaving_scope_disables_with_disable_action_and_respects_the_guard(directory: Directory) -> None:
    """Users leaving scope are disabled (remove_action=disable); most of them leaving at once is held."""
    d = directory
    names = [f"user{i:02d}" for i in range(20)]
    for name in names:
        d.user(name)
    d.group("Provisioning Users", names)
    config = d.config(scope=PROVISIONING, remove_action="disable")
    await replicate(config, mode=INCREMENTAL, dry_run=False)
    d.set_members("Provisioning Users", names[2:])
    small = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert small.counts["disabled"] == 2
    assert d.destination_users()["user00"]["active"] is False
    d.set_members("Provisioning Users", names[:2])
    held = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert held.outcome == "held" and held.counts["removals_held"] == 18
    assert all(d.destination_users()[n]["active"] for n in names[2:])


async def test_user_filter_scope(directory: Directory) -> None:
    """A SCIM filter with a value path decides which users replicate (evaluated client-side)."""
    d = directory
    d.user("in1")
    d.user("inactive", active=False)
    d.user("elsewhere", emails=[{"type": "work", "value": "x@other.org"}])
    d.user("home-only", emails=[{"type": "home", "value": "h@example.com"}])
    scope = ScopeConfig(user_filter='active eq true and emails[type eq "work"].value ew "@example.com"')
    result = await replicate(d.config(scope=scope), mode=INCREMENTAL, dry_run=False)
    assert set(d.destination_users()) == {"in1"}
    assert result.counts["out_of_scope"] == 3


async def test_a_user_back_in_scope_rejoins_its_unchanged_group(directory: Directory) -> None:
    """A user leaves the scope (deleted on the destination) and comes back (created under a new id)
    while its group never changes in the source: incremental cycles put it back in the group (the
    zero-change path used to skip the group until a --full)."""
    d = directory
    d.user("ann")
    d.user("bob")
    d.group("eng", ["ann", "bob"])
    config = d.config(scope=ScopeConfig(user_filter="active eq true"), allow_mass_delete=True)
    await replicate(config, mode=INCREMENTAL, dry_run=False)
    d.source.users[d.users["bob"]]["active"] = False
    left = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert left.counts["deleted"] == 1 and "bob" not in d.destination_users(), left.summary()
    await replicate(config, mode=INCREMENTAL, dry_run=False)
    d.source.users[d.users["bob"]]["active"] = True
    back = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert back.counts["created"] == 1, back.summary()
    assert d.destination_members("eng") == {"ann", "bob"}
    again = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert writes(again.destination_requests) == 0, again.summary()


async def test_bad_scope_filter_fails_before_any_request(directory: Directory) -> None:
    """A filter that does not parse is a configuration error naming the field."""
    from replicator.errors import ConfigError

    with pytest.raises(ConfigError, match=r"scope\.user_filter"):
        await replicate(directory.config(scope=ScopeConfig(user_filter='active eq true and (')),
                        mode=INCREMENTAL, dry_run=False)
    assert not directory.source.request_log


async def test_attribute_mapping_round_trip_and_remapping(directory: Directory) -> None:
    """Rename, exclude, constants and schema URN mapping shape the destination; changing a rule patches only what it touches."""
    d = directory
    for i in range(5):
        d.user(f"m{i}", title=f"Title {i}", nickName=f"nick{i}", phoneNumbers=[{"value": f"+1-{i}", "type": "work"}],
               **{CUSTOM_SOURCE: {"badge": f"B{i}"}})
    mapping = MappingConfig(
        exclude=["phoneNumbers"],
        rename={"title": f"{ENTERPRISE_USER}:department"},
        constants={f"{ENTERPRISE_USER}:organization": "Acme"},
        schema_urns={CUSTOM_SOURCE: CUSTOM_DESTINATION},
    )
    first = await replicate(d.config(users=mapping), mode=INCREMENTAL, dry_run=False)
    assert first.outcome == "ok", first.summary()
    user = d.destination_users()["m3"]
    assert user[ENTERPRISE_USER] == {"department": "Title 3", "organization": "Acme"}
    assert "title" not in user and "phoneNumbers" not in user and user[CUSTOM_DESTINATION] == {"badge": "B3"}
    assert user["nickName"] == "nick3"
    again = await replicate(d.config(users=mapping), mode=INCREMENTAL, dry_run=False)
    assert writes(again.destination_requests) == 0
    remapped = MappingConfig(exclude=["phoneNumbers", "nickName"], rename=dict(mapping.rename),
                             constants=dict(mapping.constants), schema_urns=dict(mapping.schema_urns))
    plan = await replicate(d.config(users=remapped), mode=INCREMENTAL, dry_run=True)
    assert {tuple(op["path"] for op in s.operations) for s in plan.changes} == {("nickName",)}
    assert all(op["op"] == "remove" for s in plan.changes for op in s.operations)
    await replicate(d.config(users=remapped), mode=INCREMENTAL, dry_run=False)
    assert "nickName" not in d.destination_users()["m3"]


async def test_users_disabled_on_leaving_scope_leave_their_groups_in_the_same_cycle(directory: Directory) -> None:
    """remove_action=disable: a user leaving scope is disabled and taken out of the groups an incremental cycle
    did not otherwise change, as a --full would; the --full after it then writes nothing."""
    from tests.harness import writes

    d = directory
    names = [f"user{i:02d}" for i in range(20)]
    for name in names:
        d.user(name, title="Contractor" if name in ("user01", "user02", "user03") else "Staff")
    d.group("Everyone", names)
    d.group("Team", names[:6])
    first = await replicate(d.config(remove_action="disable"), mode=INCREMENTAL, dry_run=False)
    assert first.outcome == "ok", first.summary()
    staff = d.config(scope=ScopeConfig(user_filter='not (title eq "Contractor")'), remove_action="disable")
    once = await replicate(staff, mode=INCREMENTAL, dry_run=False)
    assert once.outcome == "ok" and once.counts["disabled"] == 3, once.summary()
    assert d.destination_users()["user01"]["active"] is False
    assert d.destination_members("Everyone") == set(names) - {"user01", "user02", "user03"}
    assert d.destination_members("Team") == {"user00", "user04", "user05"}
    full = await replicate(staff, mode=FULL, dry_run=False)
    assert full.outcome == "ok" and writes(full.destination_requests) == 0, full.summary()
    again = await replicate(staff, mode=INCREMENTAL, dry_run=False)
    assert writes(again.destination_requests) == 0, again.summary()
