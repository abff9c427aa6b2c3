"""PingOne requires an email on every user (the OpenAPI document's User: required email, username): a
source user without one is a recorded failure of that user, with a message that says so, never of the run."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from replicator.app import replicate
from replicator.config import Config, SideConfig
from replicator.cycle import FULL, INCREMENTAL
from replicator.testing import MemoryScimServer
from replicator.testing.pingone import Environment, serve_pingone
from tests.pingone.test_pingone_replication import side


@contextlib.asynccontextmanager
async def scim_to_pingone(tmp_path: Path) -> AsyncIterator[tuple[MemoryScimServer, Environment, Config]]:
    """An in-memory SCIM source, an emulated PingOne destination, and the config between them."""
    scim = MemoryScimServer()
    await scim.start()
    try:
        async with serve_pingone() as emulator:
            destination = emulator.add_environment("dst")
            yield scim, destination, Config(source=SideConfig(url=scim.base_url or ""),
                                            destination=side(emulator, destination), state=str(tmp_path / "s.db"))
    finally:
        await scim.stop()


async def test_a_user_without_email_fails_alone_and_says_why(tmp_path: Path) -> None:
    """SCIM -> PingOne: the user with an email arrives, the one without is one recorded failure naming
    the missing email (no request sent for it); a full cycle tries it again, with the same result."""
    async with scim_to_pingone(tmp_path) as (scim, destination, config):
        scim.add_user({"userName": "ann", "emails": [{"value": "ann@example.com", "primary": True}]})
        scim.add_user({"userName": "bob", "name": {"givenName": "Bob"}})
        for mode in (INCREMENTAL, FULL):  # a full cycle tries a failed object again at once
            result = await replicate(config, mode=mode, dry_run=False)
            assert result.outcome == "partial" and [f[1] for f in result.failures] == ["bob"], result.failures
            assert "PingOne requires email on every user" in result.failures[0][2], result.failures
            assert [u["username"] for u in destination.directory.users.values()] == ["ann"]
            posts = [p for m, p, s in destination.request_log if m == "POST" and p.endswith("/users")]
            assert len(posts) == 1  # ann's; none for bob


async def test_an_email_cleared_on_the_source_is_a_failure_not_a_patch(tmp_path: Path) -> None:
    """A replicated user whose source email is removed: the change is one recorded failure saying PingOne
    requires an email, no PATCH is sent, and the destination keeps the email it had."""
    async with scim_to_pingone(tmp_path) as (scim, destination, config):
        ann = scim.add_user({"userName": "ann", "title": "Staff",
                             "emails": [{"value": "ann@example.com", "primary": True}]})
        assert (await replicate(config, mode=INCREMENTAL, dry_run=False)).outcome == "ok"
        scim.users[ann["id"]] = {k: v for k, v in scim.users[ann["id"]].items() if k != "emails"}
        scim.users[ann["id"]]["title"] = "Lead"
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert [f[1] for f in result.failures] == ["ann"], result.failures
        assert "PingOne requires email on every user" in result.failures[0][2]
        assert not any(m == "PATCH" for m, _, _ in destination.request_log)
        assert [u["email"] for u in destination.directory.users.values()] == ["ann@example.com"]


async def test_a_user_disabled_while_its_email_is_cleared_is_still_disabled(tmp_path: Path) -> None:
    """Offboarding clears the email and disables the user in one change: the attribute change is the
    recorded failure, but the disable is written (access is removed), and the email kept."""
    async with scim_to_pingone(tmp_path) as (scim, destination, config):
        ann = scim.add_user({"userName": "ann", "emails": [{"value": "ann@example.com", "primary": True}]})
        assert (await replicate(config, mode=INCREMENTAL, dry_run=False)).outcome == "ok"
        scim.users[ann["id"]] = {k: v for k, v in scim.users[ann["id"]].items() if k != "emails"}
        scim.users[ann["id"]]["active"] = False
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert [f[1] for f in result.failures] == ["ann"], result.failures
        assert "PingOne requires email on every user" in result.failures[0][2]
        [user] = destination.directory.users.values()
        assert user["enabled"] is False and user["email"] == "ann@example.com", user
