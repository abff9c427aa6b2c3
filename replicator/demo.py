"""`scim-replicator demo`: two in-memory SCIM servers on loopback, sample data, a replication story.

Nothing outside this package is needed: the servers are `replicator.testing`, the state is a
temporary SQLite file, and everything stops when the demo ends; with `keep`, the servers (and that state)
stay up after the story, their URLs and bearer tokens printed, until SIGINT (Ctrl-C) or SIGTERM.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from replicator.app import replicate
from replicator.cli_parser import MIN_GROUPS, MIN_USERS
from replicator.config import Config, SideConfig, SyncConfig
from replicator.cycle import FULL, INCREMENTAL
from replicator.report import report_text
from replicator.scim.urns import ENTERPRISE_USER
from replicator.shutdown import Shutdown
from replicator.snapshot import differences, snapshot
from replicator.testing import serve
from replicator.testing.seeding import NestedGroup, seed_directory

__all__ = ["DESTINATION_TOKEN", "MIN_GROUPS", "MIN_USERS", "SOURCE_TOKEN", "run_demo", "serve_until_stopped"]

SOURCE_TOKEN, DESTINATION_TOKEN = "demo-source-token", "demo-destination-token"


def _equal(source, destination) -> list[str]:  # type: ignore[no-untyped-def]
    return differences(
        snapshot(source.users.values(), source.groups.values()),
        snapshot(destination.users.values(), destination.groups.values()),
    )


def _section(title: str) -> None:
    print(f"\n== {title}")


async def run_demo(users: int = 25, groups: int = 5, *, keep: bool = False) -> int:
    """The story on `users` sample users and `groups` groups (at least MIN_USERS and MIN_GROUPS); 0 when
    the copy ends equal and its last run wrote nothing, else 1. `keep`: then serve until SIGINT/SIGTERM."""
    if users < MIN_USERS or groups < MIN_GROUPS:
        raise ValueError(f"the demo needs at least {MIN_USERS} users and {MIN_GROUPS} groups, got {users} and {groups}")
    async with serve(bearer_token=SOURCE_TOKEN) as (source, source_url), \
            serve(bearer_token=DESTINATION_TOKEN) as (destination, destination_url):
        seed_directory(source, users, groups, nested=NestedGroup("Leadership"))
        with tempfile.TemporaryDirectory() as tmp:
            config = Config(
                source=SideConfig(url=source_url, token=SOURCE_TOKEN),
                destination=SideConfig(url=destination_url, token=DESTINATION_TOKEN),
                sync=SyncConfig(),
                state=str(Path(tmp) / "demo-state.db"),
                concurrency=8,
            )
            print(f"source      {source_url}: {len(source.users)} users, {len(source.groups)} groups")
            print(f"destination {destination_url}: empty")

            _section("1. first copy (scim-replicator run --full)")
            print(report_text(await replicate(config, mode=FULL, dry_run=False)).splitlines()[0])

            _section("2. changes in the source, shown by a dry run (run --once --dry-run)")
            people = list(source.users.values())
            people[1]["title"] = "Chief Demo Officer"
            people[2].pop("phoneNumbers", None)
            people[3]["userName"] = "renamed." + people[3]["userName"]
            people[4]["active"] = False
            gone = _managing_nobody(people, first=5)  # a deleted manager would leave references to nothing
            del source.users[gone["id"]]
            for group in source.groups.values():
                group["members"] = [m for m in group.get("members", []) if m["value"] != gone["id"]]
                if not group["members"]:
                    group.pop("members")
            plan = report_text(await replicate(config, mode=INCREMENTAL, dry_run=True))
            print(plan)

            _section("3. apply them (run --once)")
            print(report_text(await replicate(config, mode=INCREMENTAL, dry_run=False)).splitlines()[0])

            _section("4. someone edits the destination directly; run --full repairs the drift")
            victim = next(u for u in destination.users.values() if u.get("title"))
            victim["title"] = "edited on the destination"
            print(report_text(await replicate(config, mode=FULL, dry_run=False)).splitlines()[0])

            _section("5. nothing changed: a second incremental run writes nothing")
            result = await replicate(config, mode=INCREMENTAL, dry_run=False)
            print(report_text(result).splitlines()[0])
            writes = sum(n for m, n in result.destination_requests.items() if m != "GET")

            problems = _equal(source, destination)
            _section("result")
            print(f"destination {'equals' if not problems else 'DIFFERS FROM'} source: "
                  f"{len(destination.users)} users, {len(destination.groups)} groups; last run wrote {writes} times")
            for line in problems[:10]:
                print("  " + line)
            code = 0 if not problems and writes == 0 else 1
            stopped_by = await serve_until_stopped(kept_text(source_url, destination_url, config.state)) if keep else None
    if keep:
        print(f"stopped by {stopped_by}: both servers closed", flush=True)
    return code


def kept_text(source_url: str, destination_url: str, state: str) -> str:
    """What `--keep` prints: both servers' URLs and bearer tokens, the state, a command to try on them."""
    return "\n".join([
        f"source      {source_url}  bearer token {SOURCE_TOKEN}",
        f"destination {destination_url}  bearer token {DESTINATION_TOKEN}",
        f"state       {state} (removed when the demo stops)",
        "try, in another shell (the tokens from the environment, not on the command line):",
        f"  SCIMREP_SOURCE_URL={source_url} SCIMREP_SOURCE_TOKEN={SOURCE_TOKEN} \\",
        f"  SCIMREP_DESTINATION_URL={destination_url} SCIMREP_DESTINATION_TOKEN={DESTINATION_TOKEN} \\",
        f"  SCIMREP_STATE={state} scim-replicator run --once --dry-run",
    ])


async def serve_until_stopped(kept: str) -> str:
    """Say what is kept (`kept`: where to reach it), then leave it up until SIGINT or SIGTERM (its name is
    returned); the caller then stops it. Both demos' `--keep`."""
    shutdown = Shutdown(grace=0)
    shutdown.install()
    try:
        _section("the servers keep running: Ctrl-C (SIGINT) or SIGTERM stops them")
        print(kept, flush=True)
        await shutdown.stop.wait()
    finally:
        shutdown.uninstall()
    return shutdown.signal_name or "a stop request"


def _managing_nobody(users: list[dict[str, Any]], *, first: int) -> dict[str, Any]:
    """The first user from index `first` on that no user names as manager."""
    managers = {(user.get(ENTERPRISE_USER) or {}).get("manager", {}).get("value") for user in users}
    return next(user for user in users[first:] if user["id"] not in managers)
