"""`scim-replicator demo --pingone`: PingOne's "Sync users between two environments" tutorial, played on
two emulated PingOne environments (replicator.testing.pingone) on loopback.

The source's group "Provisioning Users" is the scope: its members (and the group itself) are copied to
the destination; edits follow; a user who leaves the group is disabled there; a dry run shows a change
before it is made; the end checks that the destination holds exactly what the scope says. The story's
configuration is a TOML file in a temporary folder, as a user writes one; with `keep`, the emulator (and
that folder) stay up after the story, until SIGINT (Ctrl-C) or SIGTERM, for `run --config` on them.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from replicator.app import replicate
from replicator.config import Config, load_config
from replicator.cycle import INCREMENTAL, CycleResult
from replicator.demo import serve_until_stopped
from replicator.report import report_text
from replicator.testing.pingone import Environment, PingOneEmulator, serve_pingone

PEOPLE = [("ava.patel", "Ava", "Patel"), ("ben.okafor", "Ben", "Okafor"), ("chloe.martin", "Chloe", "Martin"),
          ("dev.singh", "Dev", "Singh"), ("eva.rossi", "Eva", "Rossi"), ("finn.larsen", "Finn", "Larsen")]
IN_SCOPE = 4  # the first four are in "Provisioning Users"


def config_toml(emulator: PingOneEmulator, source: Environment, destination: Environment, state: str) -> str:
    """The story's configuration as a TOML file: both environments on the emulator (their worker apps'
    client credentials included), the state, the scope "Provisioning Users", leavers disabled."""
    lines = [f"state = {json.dumps(state)}", "concurrency = 4"]
    for name, env in (("source", source), ("destination", destination)):
        lines += ["", f"[{name}]", 'kind = "pingone"', f"pingone_environment = {json.dumps(env.id)}",
                  f"client_id = {json.dumps(env.client_id)}", f"client_secret = {json.dumps(env.client_secret)}",
                  f"api_url = {json.dumps(emulator.api_url)}", f"auth_url = {json.dumps(emulator.auth_url)}",
                  f"scim_url = {json.dumps(emulator.scim_url)}"]
    lines += ["", "[sync]", 'remove_action = "disable"', "", "[scope]", 'user_groups = ["Provisioning Users"]',
              'group_names = ["Provisioning Users"]']
    return "\n".join(lines) + "\n"


def write_config(folder: str, text: str) -> Config:
    """Write the configuration file (mode 0600: it holds client secrets) and load it as `run --config` does."""
    path = Path(folder) / "replicator.toml"
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
        handle.write(text)
    return load_config(config_file=str(path), environ={})


def kept_text(emulator: PingOneEmulator, config_file: str, state: str) -> str:
    """What `--keep` prints: the emulator's URLs, the configuration file (the client credentials are in it,
    not printed), the state, commands to try on them."""
    return "\n".join([
        f"source      P1-User-Source       Platform API {emulator.api_url}/environments/P1-User-Source",
        f"destination P1-User-Destination  Platform API {emulator.api_url}/environments/P1-User-Destination",
        f"config      {config_file} (both worker apps' client credentials; removed when the demo stops)",
        f"state       {state} (removed when the demo stops)",
        "try, in another shell:",
        f"  scim-replicator run --once --dry-run --config {config_file}",
        f"  scim-replicator status --config {config_file}",
    ])


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


async def run_pingone_demo(*, keep: bool = False) -> int:
    """The tutorial's story: 0 when the destination ends as the scope says, else 1. `keep`: then serve
    both environments until SIGINT/SIGTERM."""
    async with serve_pingone() as emulator:
        source = emulator.add_environment("P1-User-Source")
        destination = emulator.add_environment("P1-User-Destination")
        ids = _seed(source)
        with tempfile.TemporaryDirectory() as tmp:
            config = write_config(tmp, config_toml(emulator, source, destination, str(Path(tmp) / "demo-state.db")))
            code = await _story(config, source, destination, ids)
            if keep:
                stopped_by = await serve_until_stopped(kept_text(emulator, str(Path(tmp) / "replicator.toml"),
                                                                 config.state))
    if keep:
        print(f"stopped by {stopped_by}: both environments closed", flush=True)
    return code


async def _story(config: Config, source: Environment, destination: Environment, ids: dict[str, str]) -> int:
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
