"""Mapping paths into multi-valued attributes end to end on the in-memory SCIM servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from replicator.app import replicate
from replicator.config import Config, MappingConfig, MappingSection, SideConfig
from replicator.cycle import FULL, INCREMENTAL
from replicator.errors import ConfigError
from replicator.testing import MemoryScimServer
from tests.harness import writes

TOKEN = "mv-token"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"


@pytest.fixture
async def servers() -> AsyncIterator[tuple[MemoryScimServer, MemoryScimServer]]:
    source, destination = MemoryScimServer(bearer_token=TOKEN), MemoryScimServer(bearer_token=TOKEN)
    await source.start()
    await destination.start()
    yield source, destination
    await source.stop()
    await destination.stop()


def config(source: MemoryScimServer, destination: MemoryScimServer, tmp: Path, users: MappingConfig) -> Config:
    return Config(source=SideConfig(url=source.base_url or "", token=TOKEN),
                  destination=SideConfig(url=destination.base_url or "", token=TOKEN),
                  mapping=MappingSection(users=users), state=str(tmp / "state.db"))


def destination_emails(destination: MemoryScimServer) -> dict[str, list[dict[str, Any]]]:
    return {u["userName"]: u.get("emails", []) for u in destination.users.values()}


async def test_exclude_emails_type_removes_the_type_then_writes_nothing(
        servers: tuple[MemoryScimServer, MemoryScimServer], tmp_path: Path) -> None:
    """Adding exclude = ["emails.type"] strips the type from every email on the destination; the next
    incremental and --full cycles write nothing."""
    source, destination = servers
    for name in ("ann", "bob"):
        source.add_user({"schemas": [USER_SCHEMA], "userName": name, "emails": [
            {"value": f"{name}@work.example", "type": "work", "primary": True},
            {"value": f"{name}@home.example", "type": "home"}]})
    first = await replicate(config(source, destination, tmp_path, MappingConfig()), mode=INCREMENTAL, dry_run=False)
    assert first.outcome == "ok", first.summary()
    assert all(e.get("type") for emails in destination_emails(destination).values() for e in emails)

    excluding = config(source, destination, tmp_path, MappingConfig(exclude=["emails.type"]))
    applied = await replicate(excluding, mode=INCREMENTAL, dry_run=False)
    assert applied.outcome == "ok" and applied.counts["updated"] == 2, applied.summary()
    assert destination_emails(destination)["ann"] == [{"value": "ann@work.example", "primary": True},
                                                     {"value": "ann@home.example"}]
    assert not any("type" in e for emails in destination_emails(destination).values() for e in emails)

    again = await replicate(excluding, mode=INCREMENTAL, dry_run=False)
    assert writes(again.destination_requests) == 0, again.summary()
    full = await replicate(excluding, mode=FULL, dry_run=False)
    assert full.outcome == "ok" and writes(full.destination_requests) == 0, full.summary()


async def test_rename_into_a_multi_valued_attribute_fails_before_any_request(
        servers: tuple[MemoryScimServer, MemoryScimServer], tmp_path: Path) -> None:
    """rename = { "emails.type" = "title" } is a configuration error naming mapping.users.rename; nothing is read."""
    source, destination = servers
    bad = config(source, destination, tmp_path, MappingConfig(rename={"emails.type": "title"}))
    with pytest.raises(ConfigError, match=r"^mapping\.users\.rename: 'emails\.type' is inside the multi-valued"):
        await replicate(bad, mode=INCREMENTAL, dry_run=False)
    assert not source.request_log and not destination.request_log
