"""A dry-run predicts the run that follows it: the same actions, counted and on the same objects named
by userName/displayName, and nothing of it reaches the disk (state file, its folder, a lock file)."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from replicator.app import replicate
from replicator.config import Config, ScopeConfig, SideConfig, SyncConfig
from replicator.cycle import FULL, INCREMENTAL, CycleResult
from replicator.pipeline.canonical import GROUP, USER
from replicator.pipeline.plan import CREATE, Step
from replicator.report import MEMBERS_LISTED, planned_words, report_json, report_text
from replicator.scim.urns import ENTERPRISE_USER
from replicator.testing import MemoryScimServer
from replicator.testing.seeding import seed_directory
from tests.integration.test_cli import cli

TOKEN = "dry-run-token"
DONE = {"create": "created", "adopt": "adopted", "patch": "updated", "delete": "deleted", "disable": "disabled"}
Snapshot = dict[str, dict[str, dict[str, Any]]]


class Pair:
    """A source and a destination in-memory server and a state path in a folder not made yet."""

    def __init__(self, source: MemoryScimServer, destination: MemoryScimServer, tmp: Path) -> None:
        self.source, self.destination = source, destination
        self.state = tmp / "not-made-yet" / "state.db"

    def config(self, *, scope: ScopeConfig | None = None, **sync: Any) -> Config:
        return Config(source=SideConfig(url=self.source.base_url or "", token=TOKEN, page_size=50),
                      destination=SideConfig(url=self.destination.base_url or "", token=TOKEN),
                      sync=SyncConfig(**sync), scope=scope or ScopeConfig(), state=str(self.state))

    def snapshot(self) -> Snapshot:
        return {USER: copy.deepcopy(self.destination.users), GROUP: copy.deepcopy(self.destination.groups)}


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    source, destination = MemoryScimServer(bearer_token=TOKEN), MemoryScimServer(bearer_token=TOKEN)
    await source.start()
    await destination.start()
    yield Pair(source, destination, tmp_path)
    await source.stop()
    await destination.stop()


def label(kind: str, resource: dict[str, Any]) -> str:
    return str(resource["userName"] if kind == USER else resource["displayName"])


def without_meta(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "meta"}


def what_changed(before: Snapshot, after: Snapshot) -> set[tuple[str, str, str]]:
    """(effect, kind, name) of every destination object the run created, deleted, disabled or changed."""
    out = set()
    for kind in (USER, GROUP):
        old, new = before[kind], after[kind]
        out |= {("created", kind, label(kind, new[i])) for i in new.keys() - old.keys()}
        out |= {("deleted", kind, label(kind, old[i])) for i in old.keys() - new.keys()}
        for i in old.keys() & new.keys():
            if without_meta(old[i]) != without_meta(new[i]):
                disabled = old[i].get("active", True) and new[i].get("active", True) is False
                out.add(("disabled" if disabled else "changed", kind, label(kind, new[i])))
    return out


def predicted_effects(plan: CycleResult) -> set[tuple[str, str, str]]:
    """What the plan says the destination will see, in `what_changed`'s terms (an adoption without
    operations changes nothing there)."""
    out = set()
    for step, adopted in planned_words(plan):
        if adopted:
            if step.operations:
                out.add(("changed", step.kind, step.label))
            continue
        effect = {"create": "created", "delete": "deleted", "disable": "disabled"}.get(step.action, "changed")
        out.add((effect, step.kind, step.label))
    return out


def predicted_counts(plan: CycleResult) -> Counter[str]:
    return Counter({DONE[name.removesuffix("_planned")]: n for name, n in plan.counts.items()
                    if name.removesuffix("_planned") in DONE and name.endswith("_planned")})


def done_counts(result: CycleResult) -> Counter[str]:
    return Counter({name: n for name, n in result.counts.items() if name in DONE.values() and n})


def file_digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


async def plan_then_run(pair: Pair, config: Config, *, mode: str = INCREMENTAL) -> tuple[CycleResult, CycleResult]:
    """A dry-run, then the real run, checked against each other; returns both."""
    state_before = file_digest(pair.state)
    folder_existed = pair.state.parent.exists()
    before = pair.snapshot()
    plan = await replicate(config, mode=mode, dry_run=True)
    assert pair.snapshot() == before, "the dry-run wrote to the destination"
    assert file_digest(pair.state) == state_before, "the dry-run changed the state file"
    assert pair.state.parent.exists() == folder_existed, "the dry-run made the state's folder"
    result = await replicate(config, mode=mode, dry_run=False)
    assert predicted_counts(plan) == done_counts(result), (plan.summary(), result.summary())
    assert predicted_effects(plan) == what_changed(before, pair.snapshot())
    assert (plan.counts["removals_held"], plan.held) == (result.counts["removals_held"], result.held)
    return plan, result


async def test_the_plan_predicts_each_run_of_a_life(pair: Pair) -> None:
    """First run on a filled destination (adoptions), source changes, deletions whose users stay
    members in the source (member drops), a scope change, and drift repaired by --full: each dry-run
    predicts the counts and the objects of the run after it."""
    seed_directory(pair.destination, 20, 2)  # the same sample people, some groups: adopted
    for user in list(pair.destination.users.values())[:5]:
        user["title"] = "edited on the destination"
    ids = seed_directory(pair.source, 30, 3)[USER]
    config = pair.config()
    plan, result = await plan_then_run(pair, config)
    assert plan.counts["adopt_planned"] == result.counts["adopted"] >= 20 and result.counts["created"] >= 10
    assert not pair.state.parent.exists() or pair.state.exists()

    for user_id in ids[:3]:  # changed in the source
        pair.source.users[user_id]["title"] = "moved"
    await plan_then_run(pair, config)

    deleted = [pair.source.users.pop(user_id) for user_id in ids[3:5]]  # groups still name them
    plan, result = await plan_then_run(pair, config)
    assert result.counts["deleted"] == 2 and result.counts["updated"] >= 1, result.summary()
    drops = [step for step in plan.changes if step.reason == "a member was removed"]
    text = report_text(plan)
    assert drops and all(f"remove members {user['userName']}" in text for user in deleted), text

    scope = ScopeConfig(user_filter='title ne "moved"')  # three users leave the scope
    await plan_then_run(pair, pair.config(scope=scope))

    victim = next(iter(pair.destination.users.values()))
    victim["displayName"] = "drifted"
    _, result = await plan_then_run(pair, pair.config(scope=scope), mode=FULL)
    assert result.counts["updated"] >= 1


async def test_held_removals_are_listed_as_the_run_holds_them(pair: Pair) -> None:
    """Removals the mass-removal guard holds are listed by name in the plan, as the real run lists them."""
    ids = seed_directory(pair.source, 40, 0)[USER]
    config = pair.config()
    await replicate(config, mode=INCREMENTAL, dry_run=False)
    gone = [pair.source.users.pop(user_id)["userName"] for user_id in ids[:25]]
    plan, _ = await plan_then_run(pair, config)
    assert plan.counts["removals_held"] == 25 and {label for _, label, _ in plan.held} == set(gone)
    assert all(name in report_text(plan) for name in gone)


async def test_a_create_shows_its_body_with_references_named(pair: Pair) -> None:
    """A planned create shows its attributes (text and JSON), members and manager by userName (an
    adopted one too), a long member list as its count; ids only with show_ids."""
    seed_directory(pair.destination, 2, 0)  # adopted: they have destination ids the plan must name
    ids = seed_directory(pair.source, 30, 1, managers=True)[USER]
    plan = await replicate(pair.config(), mode=INCREMENTAL, dry_run=True)
    text = report_text(plan)
    third = pair.source.users[ids[2]]
    assert f'create  User  {third["userName"]}\n          userName = "{third["userName"]}"' in text
    assert f'displayName = "{third["displayName"]}"' in text
    boss = pair.source.users[third[ENTERPRISE_USER]["manager"]["value"]]
    assert f'"manager": "{boss["userName"]}"' in text
    assert "members = (30 members)" in text and "<new " not in text
    assert not any(dest_id in text for dest_id in pair.destination.users)
    change = next(c for c in report_json(plan)["changes"] if c["label"] == third["userName"])
    assert change["body"]["userName"] == third["userName"]
    assert change["body"][ENTERPRISE_USER]["manager"]["name"] == boss["userName"]
    shown = report_text(plan, show_ids=True)
    assert all(dest_id in shown for dest_id in pair.destination.users) and f"[source {ids[2]}]" in shown


def test_a_create_body_elides_secrets_and_long_member_lists() -> None:
    """A password is never shown (text or JSON); a member list over MEMBERS_LISTED is a count."""
    members = [{"value": f"id-{i}", "type": "User"} for i in range(MEMBERS_LISTED + 1)]
    user = Step(CREATE, USER, "s-1", "alice", desired={"userName": "alice", "password": "s3cret-value"})
    group = Step(CREATE, GROUP, "s-2", "big", desired={"displayName": "big", "members": members})
    plan = CycleResult(mode=INCREMENTAL, dry_run=True, changes=[user, group], names={"id-0": "bob"})
    text, printed = report_text(plan), report_json(plan)
    assert "s3cret-value" not in text and "s3cret-value" not in json.dumps(printed)
    assert "password = (not shown)" in text and f"members = ({MEMBERS_LISTED + 1} members)" in text
    assert printed["changes"][1]["body"]["members"] == {"count": MEMBERS_LISTED + 1}
    small = CycleResult(mode=INCREMENTAL, dry_run=True, names={"id-0": "bob"},
                        changes=[Step(CREATE, GROUP, "s-3", "small", desired={"displayName": "s", "members": members[:1]})])
    assert "members = bob" in report_text(small)
    assert report_json(small)["changes"][0]["body"]["members"] == [{"value": "id-0", "type": "User", "name": "bob"}]


async def test_a_dry_run_without_state_leaves_no_file(pair: Pair) -> None:
    """`run --dry-run` with no state file makes no state file, no folder and no lock file (it plans
    against an in-memory state); a later dry-run on a state copies it and leaves it as it was."""
    seed_directory(pair.source, 3, 0)
    urls = (pair.source.base_url or "", pair.destination.base_url or "")
    flags = ["--source-url", urls[0], "--destination-url", urls[1], "--state", str(pair.state)]
    env = {"SCIMREP_SOURCE_TOKEN": TOKEN, "SCIMREP_DESTINATION_TOKEN": TOKEN}
    code, out, err = await cli("run", "--dry-run", *flags, env=env)
    assert code == 0 and "create_planned 3" in out, err
    assert not pair.state.parent.exists()
    code, out, err = await cli("run", "--once", *flags, env=env)
    assert code == 0 and "created 3" in out, err
    seed_directory(pair.source, 1, 0, seed=11)
    listing = sorted(path.name for path in pair.state.parent.iterdir())
    state = file_digest(pair.state)
    code, out, err = await cli("run", "--dry-run", *flags, env=env)
    assert code == 0 and "create_planned 1" in out, err
    assert sorted(path.name for path in pair.state.parent.iterdir()) == listing and file_digest(pair.state) == state


@pytest.mark.parametrize("bulk", [False, True], ids=["requests", "bulk"])
async def test_an_adoption_whose_managers_are_adopted_later_or_deleted(pair: Pair, bulk: bool) -> None:
    """First run on a filled destination where user 1 (who manages 6-10, who manage 31-55) is deleted:
    6-10 keep a manager naming nothing, 31-55 wait for 6-10 and are adopted before them; the run
    PATCHes only the one manager the destination holds wrong (also as a Bulk operation), counted as
    its adoption, not as an update, either way; the dry-run predicts just that."""
    if bulk:
        pair.destination.quirks = dataclasses.replace(pair.destination.quirks, bulk_max_operations=100)
    dest_ids, source_ids = seed_directory(pair.destination, 60, 0)[USER], seed_directory(pair.source, 60, 0)[USER]
    pair.source.users.pop(source_ids[1])  # its reports still name it as their manager
    del pair.destination.users[dest_ids[1]]
    for index in range(6, 11):
        del pair.destination.users[dest_ids[index]][ENTERPRISE_USER]["manager"]
    wrong = pair.destination.users[dest_ids[40]]
    wrong[ENTERPRISE_USER]["manager"] = {"value": dest_ids[0]}  # its manager is user 7
    plan, result = await plan_then_run(pair, pair.config())
    assert result.counts["adopted"] == 59 and result.counts["references_dropped"] == 5, result.summary()
    assert result.counts["updated"] == 0 and result.counts["unchanged"] == 0, result.summary()
    manager = pair.destination.users[dest_ids[40]][ENTERPRISE_USER]["manager"]
    assert manager["value"] == dest_ids[7]
    assert pair.destination.counts().get("PATCH", 0) == (0 if bulk else 1), pair.destination.counts()
    assert [step.label for step in plan.changes if step.operations] == [wrong["userName"]]


async def test_a_group_losing_deleted_members_is_not_also_unchanged(pair: Pair) -> None:
    """After deletions the groups still naming the deleted users are updated, not also counted
    unchanged: the plan's and the run's counts each sum to the objects tracked."""
    ids = seed_directory(pair.source, 40, 3, managers=False)[USER]
    config = pair.config(allow_mass_delete=True)
    await replicate(config, mode=INCREMENTAL, dry_run=False)
    for user_id in ids[:10]:  # the source groups still name them
        pair.source.users.pop(user_id)
    plan, result = await plan_then_run(pair, config)
    assert result.counts["deleted"] == 10 and result.counts["updated"] >= 1, result.summary()
    assert plan.counts["unchanged"] + plan.counts["patch_planned"] + plan.counts["delete_planned"] == 43
    assert result.counts["unchanged"] + result.counts["updated"] + result.counts["deleted"] == 43


@pytest.mark.parametrize("bulk", [False, True], ids=["requests", "bulk"])
async def test_creates_whose_managers_are_created_later_or_deleted(pair: Pair, bulk: bool) -> None:
    """First run on an empty destination where user 1 (who manages 6-10, who manage 31-55) is deleted:
    6-10 and 31-55 are created at the end of the read without a manager, then 31-55 get theirs by
    PATCH, counted as their creates (also as Bulk operations); the dry-run's create bodies show the manager
    each ends up with."""
    if bulk:
        pair.destination.quirks = dataclasses.replace(pair.destination.quirks, bulk_max_operations=100)
    ids = seed_directory(pair.source, 60, 0)[USER]
    pair.source.users.pop(ids[1])  # its reports still name it as their manager
    plan, result = await plan_then_run(pair, pair.config())
    assert result.counts["created"] == 59 and result.counts["references_dropped"] == 5, result.summary()
    if pair.destination.quirks.bulk_max_operations:  # the PATCHes go as Bulk operations
        assert pair.destination.counts()["POST"] >= 1 and "PATCH" not in pair.destination.counts()
    else:
        assert pair.destination.counts()["PATCH"] == 25
    bodies, text = {change["label"]: change["body"] for change in report_json(plan)["changes"]}, report_text(plan)
    written = {user["userName"]: user for user in pair.destination.users.values()}
    for index in [*range(6, 11), *range(31, 56)]:
        name = pair.source.users[ids[index]]["userName"]
        boss = pair.source.users.get(ids[(index - 1) // 5], {}).get("userName")  # none for 6-10
        planned = bodies[name].get(ENTERPRISE_USER, {}).get("manager", {}).get("name")
        manager = written[name].get(ENTERPRISE_USER, {}).get("manager", {}).get("value")
        assert planned == boss == (pair.destination.users[manager]["userName"] if manager else None), name
        assert f"create  User  {name}" in text
