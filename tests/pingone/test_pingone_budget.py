"""One rate budget per PingOne side: the SCIM client of the read paths and the Platform API wait on one
token bucket, and the probe's requests count in the side's requests (the cycle's summary)."""

from __future__ import annotations

import asyncio
from collections import Counter

from yarl import URL

from replicator.config import SideConfig, pingone_urls
from replicator.pingone.directory import PingOneDirectory
from replicator.testing.pingone import PingOneSwitches, serve_pingone

RATE = 40.0
EACH = 60  # requests through each API: 1.5 s if each had its own 40 req/s, 3 s sharing one budget


async def test_scim_and_platform_requests_share_one_rate_limit() -> None:
    """SCIM and Platform requests sent side by side at rate_limit 40 arrive at most 50 in any second the
    emulator counts (40 + the bucket's burst of 4 + one in flight each; two budgets would let ~80 through);
    the probe's SCIM requests are in the side's request counts."""
    switches = PingOneSwitches(scim_start_index_advances=True, scim_groups=True)
    async with serve_pingone(switches=switches) as emulator:
        env = emulator.add_environment("p1-env")
        env.add_user("ada")
        env.add_user("bob")
        cfg = pingone_urls(SideConfig(kind="pingone", pingone_environment=env.id, client_id=env.client_id,
                                      client_secret=env.client_secret, api_url=emulator.api_url,
                                      auth_url=emulator.auth_url, scim_url=emulator.scim_url, rate_limit=RATE))
        async with PingOneDirectory(cfg, name="source", max_connections=8) as directory:
            await directory.discover()
            assert directory.reader.paths.users_by_scim and directory.reader.paths.groups_by_scim
            sent = [entry for entry in env.request_log if not entry[1].endswith("/as/token")]
            assert sum(directory.requests.values()) == len(sent) == 4  # populations + the probe's three

            mark = len(env.request_log)
            users = URL(directory.scim.base_url) / "Users"

            async def through_scim() -> None:
                for _ in range(EACH):
                    await directory.scim.transport.request("GET", users, params={"count": "1"})

            async def through_platform() -> None:
                for _ in range(EACH):
                    await directory.api.call("GET", "users", params={"limit": "1"})

            await asyncio.gather(through_scim(), through_platform())
        per_second = Counter(int(stamp) for stamp in env.request_times[mark:])
        assert sum(per_second.values()) == 2 * EACH
        assert max(per_second.values()) <= 50, sorted(per_second.items())
