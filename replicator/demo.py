"""`scim-replicator demo`: two in-memory SCIM servers on loopback, sample data, a replication story.

Nothing outside this package is needed: the servers are `replicator.testing`, the state is a
temporary SQLite file, and everything stops when the demo ends.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from replicator.app import replicate
from replicator.config import Config, SideConfig, SyncConfig
from replicator.cycle import FULL, INCREMENTAL
from replicator.report import report_text
from replicator.snapshot import differences, snapshot
from replicator.testing import serve
from replicator.testing.seeding import NestedGroup, seed_directory


def _equal(source, destination) -> list[str]:  # type: ignore[no-untyped-def]
    return differences(
        snapshot(source.users.values(), source.groups.values()),
        snapshot(destination.users.values(), destination.groups.values()),
    )


def _section(title: str) -> None:
    print(f"\n== {title}")


async def run_demo(users: int = 25, groups: int = 5) -> int:
    users, groups = max(users, 8), max(groups, 2)  # the story edits users 1 to 5
    async with serve(bearer_token="demo-source-token") as (source, source_url), \
            serve(bearer_token="demo-destination-token") as (destination, destination_url):
        seed_directory(source, users, groups, nested=NestedGroup("Leadership"))
        with tempfile.TemporaryDirectory() as tmp:
            config = Config(
                source=SideConfig(url=source_url, token="demo-source-token"),
                destination=SideConfig(url=destination_url, token="demo-destination-token"),
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
            gone = people[5]
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
            return 0 if not problems and writes == 0 else 1
