"""Stateful property test: random source edits interleaved with real cycles between two in-memory servers.

After every cycle the destination equals the source (ids translated, `replicator.snapshot`), and a
second, incremental cycle writes nothing (0 POST/PUT/PATCH/DELETE, counted by the client and by the
destination server itself). The mass-delete guard keeps its defaults: each cycle sees at most 5
removals (objects deleted, members removed, members lost with a deleted object) and never an empty
kind, so the guard must never hold anything and every cycle must end `ok`.

Hypothesis state machines are synchronous: each machine runs its servers, clients and cycles on a
private event loop that it opens in `__init__` and closes in `teardown`.
"""

from __future__ import annotations

import asyncio
import copy
import tempfile
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from replicator.app import replicate
from replicator.cycle import FULL, INCREMENTAL
from replicator.pipeline.canonical import CORE_SCHEMAS, ENTERPRISE_USER, GROUP, USER
from replicator.scim.auth import StaticAuth
from replicator.scim.client import ScimClient
from replicator.snapshot import differences
from replicator.testing import MemoryScimServer, Quirks
from tests.harness import directory, make_config, writes

T = TypeVar("T")
SOURCE_TOKEN = "stateful-src-tok"
DESTINATION_TOKEN = "stateful-dst-tok"
REMOVALS_PER_CYCLE = 5  # the guards ignore percentages for 5 removals or fewer (replicator.pipeline.plan)

# small pools, so that a name freed by a delete or a rename is soon taken again (adoption, swaps)
USER_NAMES = [f"{n}@example.com" for n in ("ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal")]
GROUP_NAMES = ["Eng", "Ops", "Sales", "Admins", "All Staff", "Ünïcode"]
TEXT = st.sampled_from(["a", "B", "Zoë", "", 'q"uote'])
EMAIL = st.fixed_dictionaries(
    {"value": st.sampled_from(["x@example.com", "y@example.org", "z@example.net"])},
    optional={"type": st.sampled_from(["work", "home"]), "primary": st.booleans()},
)
USER_FIELDS = ("title", "displayName", "active", "name.givenName", "name.familyName", "emails", "department")
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "title": TEXT, "displayName": TEXT, "name.givenName": TEXT, "name.familyName": TEXT,
    "department": TEXT, "active": st.booleans(), "emails": st.lists(EMAIL, max_size=2),
}


class ReplicationMachine(RuleBasedStateMachine):
    """The source is edited at random through its SCIM API; `cycle` replicates it and checks the copy."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = tempfile.TemporaryDirectory(prefix="scimrep-stateful-")
        self.stack = AsyncExitStack()
        self.servers: list[MemoryScimServer] = []
        self.users: dict[str, dict[str, Any]] = {}  # source id -> the body last written to the source
        self.groups: dict[str, dict[str, Any]] = {}
        self.removals_left = REMOVALS_PER_CYCLE
        # id -> userName (casefolded) or displayName as the last cycle left it on the destination. A name
        # given up on the source is not taken by another object before a cycle has given it up there too
        # (except a deleted object's name by a create): tests/stateful/test_name_takeover.py shows why
        self.replicated_names: dict[str, str] = {}

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    @initialize(bulk=st.booleans(), membership=st.sampled_from(["merge", "overwrite"]))
    def start(self, bulk: bool, membership: str) -> None:
        """Two servers (the destination with or without SCIM Bulk), checking clients, a fresh state."""
        self.servers = [MemoryScimServer(bearer_token=SOURCE_TOKEN),
                        MemoryScimServer(bearer_token=DESTINATION_TOKEN,
                                         quirks=Quirks(bulk_max_operations=10 if bulk else 0))]
        urls = [self.run(server.start()) for server in self.servers]
        self.source = self.run(self.stack.enter_async_context(
            ScimClient(urls[0], auth=StaticAuth.bearer(SOURCE_TOKEN), name="edit-source")))
        self.destination = self.run(self.stack.enter_async_context(
            ScimClient(urls[1], auth=StaticAuth.bearer(DESTINATION_TOKEN), name="check-destination")))
        self.config = make_config(urls[0], urls[1], Path(self.folder.name) / "state.db",
                                  source_token=SOURCE_TOKEN, destination_token=DESTINATION_TOKEN,
                                  concurrency=4, membership=membership)

    def teardown(self) -> None:
        try:
            self.run(self.stack.aclose())
            for server in self.servers:
                self.run(server.stop())
            self.run(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()
            self.folder.cleanup()

    # ------------------------------------------------------------------ helpers

    def _free_user_names(self, but: str | None = None) -> list[str]:
        """userNames no other user holds on the source nor, since the last cycle, on the destination
        (`but`: the user renamed; None: a create, which may take the name of a user deleted)."""
        taken = {u["userName"].casefold() for i, u in self.users.items() if i != but}
        taken |= {n for i, n in self.replicated_names.items() if i != but and (but or i in self.users or i in self._named_gone())}
        if but is not None:
            taken.discard(self.users[but]["userName"].casefold())  # its own name is always free to it
        return [n for n in USER_NAMES if n.casefold() not in taken]

    def _free_group_names(self, but: str | None = None) -> list[str]:
        taken = {g["displayName"] for i, g in self.groups.items() if i != but}
        taken |= {n for i, n in self.replicated_names.items() if i != but and (but or i in self.groups or i in self._named_gone())}
        if but is not None:
            taken.discard(self.groups[but]["displayName"])
        return [n for n in GROUP_NAMES if n not in taken]

    def _named_gone(self) -> set[str]:
        """Deleted objects the source still names (members): a create does not take their names, as the
        reference would follow the name (tests/stateful/test_machine_findings.py, a known defect)."""
        known = set(self.users) | set(self.groups)
        return {m["value"] for body in self.groups.values() for m in body.get("members", [])} - known

    def _put(self, kind: str, resource_id: str, body: dict[str, Any]) -> None:
        self.run(self.source.replace(kind, resource_id, {"schemas": _schemas(body, kind), **body}))

    def _pick(self, data: st.DataObject, pool: dict[str, dict[str, Any]]) -> str:
        """Ids are random: draws go by the model's (insertion) order, so that examples replay."""
        return data.draw(st.sampled_from(list(pool)))

    def _removal_cost(self, resource_id: str) -> int:
        """Removals that deleting this object makes: itself, and its place in every group holding it."""
        return 1 + sum(any(m["value"] == resource_id for m in g.get("members", [])) for g in self.groups.values())

    def _affordable(self, pool: dict[str, dict[str, Any]]) -> list[str]:
        return [i for i in pool if self._removal_cost(i) <= self.removals_left] if len(pool) > 1 else []

    def _spend_removal(self, cost: int = 1) -> None:
        assert cost <= self.removals_left
        self.removals_left -= cost

    # ------------------------------------------------------------------ user edits

    @precondition(lambda self: self._free_user_names())
    @rule(data=st.data())
    def create_user(self, data: st.DataObject) -> None:
        body: dict[str, Any] = {"userName": data.draw(st.sampled_from(self._free_user_names())),
                                "name": {"givenName": data.draw(TEXT), "familyName": data.draw(TEXT)},
                                "emails": data.draw(st.lists(EMAIL, max_size=2)), "active": True}
        if len(self.users) > 0 and data.draw(st.booleans()):
            body[ENTERPRISE_USER] = {"manager": {"value": self._pick(data, self.users)}}
        created = self.run(self.source.create(USER, {"schemas": _schemas(body, USER), **body}))
        self.users[created["id"]] = body

    @precondition(lambda self: self.users)
    @rule(data=st.data(), upper=st.booleans())
    def rename_user(self, data: st.DataObject, upper: bool) -> None:
        """To a free name, or its own; in upper case too (a change of case alone is a rename)."""
        user_id = self._pick(data, self.users)
        body = self.users[user_id]
        new = data.draw(st.sampled_from(self._free_user_names(but=user_id)))
        body["userName"] = new.upper() if upper else new
        self._put(USER, user_id, body)

    @precondition(lambda self: self.users)
    @rule(data=st.data(), field=st.sampled_from(USER_FIELDS), clear=st.booleans())
    def edit_user(self, data: st.DataObject, field: str, clear: bool) -> None:
        user_id = self._pick(data, self.users)
        body = self.users[user_id]
        value = None if clear else data.draw(FIELD_VALUES[field])
        if field == "department":
            container = body.setdefault(ENTERPRISE_USER, {})
        elif field.startswith("name."):
            container, field = body.setdefault("name", {}), field.removeprefix("name.")
        else:
            container = body
        if value is None:
            container.pop(field, None)
        else:
            container[field] = value
        for key in ("name", ENTERPRISE_USER):
            if body.get(key) == {}:
                del body[key]
        self._put(USER, user_id, body)

    @precondition(lambda self: self.users)
    @rule(data=st.data(), clear=st.booleans())
    def set_manager(self, data: st.DataObject, clear: bool) -> None:
        user_id = self._pick(data, self.users)
        body = self.users[user_id]
        extension = body.setdefault(ENTERPRISE_USER, {})
        if clear:
            extension.pop("manager", None)
        else:
            extension["manager"] = {"value": self._pick(data, self.users)}  # oneself included
        if not extension:
            del body[ENTERPRISE_USER]
        self._put(USER, user_id, body)

    @precondition(lambda self: self._affordable(self.users))
    @rule(data=st.data(), drop_references=st.booleans())
    def delete_user(self, data: st.DataObject, drop_references: bool) -> None:
        """`drop_references` False: the source keeps the deleted user among members (never as a manager)."""
        self._delete(USER, data.draw(st.sampled_from(self._affordable(self.users))), drop_references)

    # ------------------------------------------------------------------ group edits

    @precondition(lambda self: self._free_group_names())
    @rule(data=st.data())
    def create_group(self, data: st.DataObject) -> None:
        members = data.draw(st.lists(st.sampled_from(list(self.users)), max_size=3, unique=True)) if self.users else []
        if len(self.groups) > 0 and data.draw(st.booleans()):
            members.append(self._pick(data, self.groups))
        body: dict[str, Any] = {"displayName": data.draw(st.sampled_from(self._free_group_names()))}
        if members:
            body["members"] = [self._member(m) for m in members]
        created = self.run(self.source.create(GROUP, {"schemas": _schemas(body, GROUP), **body}))
        self.groups[created["id"]] = body

    @precondition(lambda self: self.groups)
    @rule(data=st.data())
    def rename_group(self, data: st.DataObject) -> None:
        group_id = self._pick(data, self.groups)
        self.groups[group_id]["displayName"] = data.draw(st.sampled_from(self._free_group_names(but=group_id)))
        self._put(GROUP, group_id, self.groups[group_id])

    @precondition(lambda self: self.groups)
    @rule(data=st.data())
    def add_member(self, data: st.DataObject) -> None:
        group_id = self._pick(data, self.groups)
        body = self.groups[group_id]
        present = {m["value"] for m in body.get("members", [])}
        candidates = [i for i in [*self.users, *self.groups] if i not in present and i != group_id]
        if not candidates:
            return
        body.setdefault("members", []).append(self._member(data.draw(st.sampled_from(candidates))))
        self._put(GROUP, group_id, body)

    @precondition(lambda self: self.removals_left > 0 and any(g.get("members") for g in self.groups.values()))
    @rule(data=st.data())
    def remove_member(self, data: st.DataObject) -> None:
        group_id = data.draw(st.sampled_from([g for g, body in self.groups.items() if body.get("members")]))
        body = self.groups[group_id]
        gone = data.draw(st.sampled_from([m["value"] for m in body["members"]]))
        body["members"] = [m for m in body["members"] if m["value"] != gone]
        if not body["members"]:
            del body["members"]
        self._spend_removal()
        self._put(GROUP, group_id, body)

    @precondition(lambda self: self._affordable(self.groups))
    @rule(data=st.data(), drop_references=st.booleans())
    def delete_group(self, data: st.DataObject, drop_references: bool) -> None:
        """`drop_references` False: the source keeps the deleted group among its parents' members."""
        self._delete(GROUP, data.draw(st.sampled_from(self._affordable(self.groups))), drop_references)

    def _member(self, member_id: str) -> dict[str, str]:
        return {"value": member_id, "type": USER if member_id in self.users else GROUP}

    def _delete(self, kind: str, resource_id: str, drop_references: bool) -> None:
        """Delete on the source, and with `drop_references` the references to it there too."""
        self._spend_removal(self._removal_cost(resource_id))
        (self.users if kind == USER else self.groups).pop(resource_id)
        self.run(self.source.delete(kind, resource_id))
        for group_id, body in self.groups.items():
            if drop_references and any(m["value"] == resource_id for m in body.get("members", [])):
                body["members"] = [m for m in body["members"] if m["value"] != resource_id]
                if not body["members"]:
                    del body["members"]
                self._put(GROUP, group_id, body)
        for user_id, body in self.users.items():
            extension = body.get(ENTERPRISE_USER, {})
            # a manager naming a deleted user is always dropped: left there it is never counted, as the
            # unchanged user naming it is not planned again (test_machine_findings.py, a known defect)
            if extension.get("manager", {}).get("value") == resource_id:
                del extension["manager"]
                if not extension:
                    del body[ENTERPRISE_USER]
                self._put(USER, user_id, body)

    def _dangling_references(self) -> int:
        """References the source holds to objects it no longer has (members, managers): each is one
        reference the cycle cannot write, and must count."""
        known = set(self.users) | set(self.groups)
        members = sum(len({m["value"] for m in body.get("members", [])} - known) for body in self.groups.values())
        managers = sum(body.get(ENTERPRISE_USER, {}).get("manager", {}).get("value") not in (None, *known)
                       for body in self.users.values())
        return members + managers

    # ------------------------------------------------------------------ the cycle and its checks

    @rule(mode=st.sampled_from([INCREMENTAL, INCREMENTAL, INCREMENTAL, FULL]))
    def cycle(self, mode: str) -> None:
        """One real cycle; then the copy equals the source and an incremental rerun writes nothing."""
        assert self.removals_left >= 0, "the machine made more removals than the guard ignores"
        result = self.run(replicate(self.config, mode=mode, dry_run=False))
        # a source keeping deleted objects as members or managers: references no cycle can write, counted
        # once the objects naming them are planned again (a group keeping a user deleted this cycle is:
        # by the next one)
        dangling = self._dangling_references()
        dropped = result.counts["references_dropped"]
        assert dropped <= dangling, (result.summary(), result.notes)
        assert result.outcome == ("partial" if dropped else "ok"), (result.summary(), result.failures, result.held)
        source, destination = self.run(directory(self.source)), self.run(directory(self.destination))
        diff = differences(_without_empty_extension(source), _without_empty_extension(destination))
        assert not diff, "\n".join(diff)
        before = copy.copy(self.servers[1].counts())
        again = self.run(replicate(self.config, mode=INCREMENTAL, dry_run=False))
        assert again.counts["references_dropped"] == dangling, (again.summary(), again.notes)
        assert again.outcome == ("partial" if dangling else "ok"), (again.summary(), again.failures)
        assert writes(again.destination_requests) == 0, again.summary()
        assert writes(self.servers[1].counts() - before) == 0, self.servers[1].counts() - before
        self.removals_left = REMOVALS_PER_CYCLE
        self.replicated_names = {i: u["userName"].casefold() for i, u in self.users.items()}
        self.replicated_names.update({i: g["displayName"] for i, g in self.groups.items()})


def _without_empty_extension(snapshot: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`snapshot` drops a dangling manager but keeps its extension as `{}`; a copy without it is equal."""
    return {key: {k: v for k, v in form.items() if v != {}} for key, form in snapshot.items()}


def _schemas(body: dict[str, Any], kind: str) -> list[str]:
    return [CORE_SCHEMAS[kind], *([ENTERPRISE_USER] if ENTERPRISE_USER in body else [])]


ReplicationMachine.TestCase.settings = settings(
    max_examples=50, stateful_step_count=30, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestReplicationMachine = ReplicationMachine.TestCase
TestReplicationMachine.__doc__ = "Random source edits and cycles: the copy always equals the source; reruns write nothing."
