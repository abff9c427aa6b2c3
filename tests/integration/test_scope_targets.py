"""Users that leave the scope are no reference targets once the users' read is complete: a group written
in the same cycle names them no more in its own write, before the removals take them off the destination."""

from __future__ import annotations

from pathlib import Path

import msgspec

from replicator.app import replicate
from replicator.config import ScopeConfig
from replicator.cycle import INCREMENTAL
from tests.harness import MemoryPair, memory_servers

TOKEN = "scope-targets-token"
USER = ["urn:ietf:params:scim:schemas:core:2.0:User"]
GROUP = ["urn:ietf:params:scim:schemas:core:2.0:Group"]


async def test_a_user_leaving_the_scope_leaves_its_groups_in_their_own_write(tmp_path: Path) -> None:
    async with memory_servers(TOKEN) as (source, destination):
        users = [source.add_user({"schemas": USER, "userName": f"u{i}", "title": "staff"}) for i in range(10)]
        source.add_group({"schemas": GROUP, "displayName": "all",
                          "members": [{"value": user["id"], "type": "User"} for user in users]})
        pair = MemoryPair(source, destination, tmp_path, TOKEN)
        config = msgspec.structs.replace(pair.config, scope=ScopeConfig(user_filter='title eq "staff"'))
        assert (await replicate(config, mode=INCREMENTAL, dry_run=False)).outcome == "ok"
        leaving = next(i for i, u in destination.users.items() if u["userName"] == "u9")
        group_id = next(iter(destination.groups))
        users[9]["title"] = "gone"  # u9 leaves the scope: deprovisioned this cycle
        newcomer = source.add_user({"schemas": USER, "userName": "u10", "title": "staff"})
        group = next(iter(source.groups.values()))
        group["members"] = [*group["members"], {"value": newcomer["id"], "type": "User"}]  # planned again
        before = len(destination.request_log)
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
        log = destination.request_log[before:]
        assert result.outcome == "ok", result.summary()
    assert leaving not in destination.users
    assert {m["value"] for m in destination.groups[group_id]["members"]} == set(destination.users)
    group_writes = [index for index, entry in enumerate(log) if entry == ("PATCH", f"/v2/Groups/{group_id}")]
    assert len(group_writes) == 1, log  # the group's own write took u9 out: no second PATCH after the DELETE
    assert group_writes[0] < log.index(("DELETE", f"/v2/Users/{leaving}")), log
