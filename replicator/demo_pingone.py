"""`scim-replicator demo --pingone`: PingOne's "Sync users between two environments" tutorial, played on
two emulated PingOne environments (replicator.testing.pingone) on loopback.

The source's group "Provisioning Users" is the scope: its members (and the group itself) are copied to
the destination; edits follow; a user who leaves the group is disabled there; a dry run shows a change
before it is made; the end checks that the destination holds exactly what the scope says.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from replicator.app import replicate
from replicator.config import Config, ScopeConfig, SideConfig, SyncConfig, pingone_urls
from replicator.cycle import INCREMENTAL, CycleResult
from replicator.report import report_text
from replicator.testing.pingone import Environment, PingOneEmulator, serve_pingone

PEOPLE = [("ava.patel", "Ava", "Patel"), ("ben.okafor", "Ben", "Okafor"), ("chloe.martin", "Chloe", "Martin"),
          ("dev.singh", "Dev", "Singh"), ("eva.rossi", "Eva", "Rossi"), ("finn.larsen", "Finn", "Larsen")]
IN_SCOPE = 4  # the first four are in "Provisioning Users"


def _side(emulator: PingOneEmulator, env: Environment) -> SideConfig:
    return pingone_urls(SideConfig(kind="pingone", pingone_environment=env.id, client_id=env.client_id,
                                   client_secret=env.client_secret, api_url=emulator.api_url,
                                   auth_url=emulator.auth_url, scim_url=emulator.scim_url))


def _seed(env: Environment) -> dict[str, str]:
    ids = {}
    for username, given, family in PEOPLE:
        ids[username] = env.add_user(username, email=f"{username}@example.com",
                                     name={"given": given, "family": family})["id"]
    group = env.add_group("Provisioning Users", description="users copied to P1-User-Destination")["id"]
    for username, *_ in PEOPLE[:IN_SCOPE]:
        env.add_member(group, ids[username])
    ids["Provisioning Users"] = group
    return ids


def _people(env: Environment) -> dict[str, tuple[str, bool]]:
    return {u["username"]: (u.get("name", {}).get("family", ""), u.get("enabled", True))
            for u in env.directory.users.values()}


def _say(step: str, result: CycleResult | None = None) -> None:
    print(f"\n== {step}")
    if result is not None:
        print(report_text(result).splitlines()[0])


def _expected(source: Environment, ids: dict[str, str], left: set[str]) -> dict[str, tuple[str, bool]]:
    """What the destination should hold: the group's members as they are, and those who left it, disabled."""
    members = source.member_ids(ids["Provisioning Users"])
    out: dict[str, Any] = {}
    for user in source.directory.users.values():
        if user["id"] in members:
            out[user["username"]] = (user.get("name", {}).get("family", ""), user.get("enabled", True))
        elif user["username"] in left:
            out[user["username"]] = (user.get("name", {}).get("family", ""), False)
    return out


async def run_pingone_demo() -> int:
    async with serve_pingone() as emulator:
        source = emulator.add_environment("P1-User-Source")
        destination = emulator.add_environment("P1-User-Destination")
        ids = _seed(source)
        with tempfile.TemporaryDirectory() as tmp:
            config = Config(source=_side(emulator, source), destination=_side(emulator, destination),
                            state=str(Path(tmp) / "demo-state.db"), concurrency=4,
                            sync=SyncConfig(remove_action="disable"),
                            scope=ScopeConfig(user_groups=["Provisioning Users"], group_names=["Provisioning Users"]))
            print(f"P1-User-Source      {len(source.directory.users)} users; group \"Provisioning Users\" has "
                  f"{IN_SCOPE} of them (the scope)")
            print("P1-User-Destination empty (the worker app of each holds the Identity Data Admin role)")

            _say("1. first copy: the group's members and the group (run --once)",
                 await replicate(config, mode=INCREMENTAL, dry_run=False))
            print("   destination users: " + ", ".join(sorted(_people(destination))))

            users = source.directory.users
            users[ids["ben.okafor"]]["name"]["family"] = "Okafor-Reyes"  # a name change
            source.add_member(ids["Provisioning Users"], ids["eva.rossi"])  # joins the scope
            source.memberships.remove_member(ids["dev.singh"], ids["Provisioning Users"])  # leaves it
            plan = await replicate(config, mode=INCREMENTAL, dry_run=True)
            _say("2. edits in the source: Ben's family name, Eva joins the group, Dev leaves it; the dry run says", plan)
            for change in plan.changes:
                print(f"   would {change.action} {change.kind} {change.label}")

            _say("3. second copy (run --once)", await replicate(config, mode=INCREMENTAL, dry_run=False))
            again = await replicate(config, mode=INCREMENTAL, dry_run=False)
            _say("4. nothing changed since: another cycle", again)

            expected, got = _expected(source, ids, left={"dev.singh"}), _people(destination)
            if got != expected:
                print(f"\ndestination differs from what the scope says:\n  expected {expected}\n  got      {got}")
                return 1
            writes = sum(n for method, n in again.destination_requests.items() if method != "GET")
            print(f"\ndestination equals the scope: {len(got)} users ({sum(not on for _, on in got.values())} "
                  f"disabled, having left the group), the group with {len(source.member_ids(ids['Provisioning Users']))} "
                  f"members; the last cycle wrote {writes} times")
            return 0
