"""Fixtures of the PingOne emulator tests: a served emulator with two environments, "src" and "dst",
and a token-holding client for each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from replicator.testing.pingone import PingOneEmulator, PingOneSwitches, serve_pingone
from tests.pingone.client import PingOneTestClient


@dataclass
class Served:
    emulator: PingOneEmulator
    switches: PingOneSwitches
    src: PingOneTestClient
    dst: PingOneTestClient


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    switches = PingOneSwitches()
    async with serve_pingone(switches=switches) as emulator, aiohttp.ClientSession() as session:
        src = PingOneTestClient(session, emulator, emulator.add_environment("src-env", client_id="src-app",
                                                                            client_secret="src-secret"))
        dst = PingOneTestClient(session, emulator, emulator.add_environment("dst-env"))
        await src.fetch_token()
        await dst.fetch_token()
        yield Served(emulator, switches, src, dst)
