"""A benchmark SCIM server in its own process: the in-memory server on uvloop, with control routes.

    python -m bench.scim_server --port 0 [--users N --groups M] [--latency S] [--rate-429 P] ...

Prints `READY <base url>` on stdout when it serves. Control routes (not under /v2, no faults):
`POST /_admin/faults` (JSON fields of Faults), `GET /_admin/stats` (requests by method, resources held),
`POST /_admin/clear-stats`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
from collections import Counter

from aiohttp import web

from bench.data import bench_group_plan
from replicator.testing import Faults, MemoryScimServer, Quirks
from replicator.testing.seeding import NestedGroup, seed_directory


def seed(server: MemoryScimServer, users: int, groups: int, plan: str = "sample") -> None:
    if plan == "bench":
        seed_directory(server, users, groups, shape=bench_group_plan)
    else:
        seed_directory(server, users, groups, nested=NestedGroup("Nested"))


def add_control_routes(app: web.Application, server: MemoryScimServer) -> None:
    async def set_faults(request: web.Request) -> web.Response:
        fields = await request.json()
        server.faults = Faults(**fields)  # (re-seeds the faults' random stream from fields["seed"])
        return web.json_response({"faults": dataclasses.asdict(server.faults)}, dumps=_dumps)

    async def stats(request: web.Request) -> web.Response:
        counts = Counter(method for method, _ in server.request_log)
        return web.json_response({"requests": counts, "users": len(server.users), "groups": len(server.groups)})

    async def clear(request: web.Request) -> web.Response:
        server.request_log.clear()
        server.request_times.clear()
        return web.json_response({})

    async def mutate(request: web.Request) -> web.Response:
        """Change the title of a fraction of the users (a change set for incremental benchmarks), and
        with `drop_members` N, take the last N members out of every group (a changed big group)."""
        body = await request.json()
        rng = random.Random(body.get("seed", 1))
        ids = list(server.users)
        chosen = rng.sample(ids, int(len(ids) * float(body.get("fraction", 0.01))))
        for user_id in chosen:
            server.users[user_id]["title"] = f"Changed {rng.random():.6f}"
        drop, dropped = int(body.get("drop_members", 0)), 0
        for group in server.groups.values() if drop > 0 else ():
            members = group.get("members") or []
            dropped += min(len(members), drop)
            del members[max(0, len(members) - drop):]
        return web.json_response({"changed": len(chosen), "members_dropped": dropped})

    app.router.add_post("/_admin/mutate", mutate)
    app.router.add_post("/_admin/faults", set_faults)
    app.router.add_get("/_admin/stats", stats)
    app.router.add_post("/_admin/clear-stats", clear)


def _dumps(value: object) -> str:
    import json

    return json.dumps(value, default=list)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--users", type=int, default=0)
    parser.add_argument("--groups", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rate-429", type=float, default=0.0)
    parser.add_argument("--rate-503", type=float, default=0.0)
    parser.add_argument("--rate-reset", type=float, default=0.0)
    parser.add_argument("--retry-after", default="1")
    parser.add_argument("--page-cap", type=int)
    parser.add_argument("--token")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--plan", choices=("sample", "bench"), default="sample", help="group sizes")
    parser.add_argument("--rate-cap", type=float, help="requests per second before 429")
    parser.add_argument("--rate-500", type=float, default=0.0)
    parser.add_argument("--bulk", type=int, default=0, metavar="MAX_OPERATIONS",
                        help="offer SCIM Bulk with this maxOperations (default: no Bulk)")
    parser.add_argument("--patch-returns-resource", action="store_true",
                        help="answer PATCH with 200 and the resource (default: 204, like scim2-server)")
    args = parser.parse_args()
    faults = Faults(latency=args.latency, rate_429=args.rate_429, rate_503=args.rate_503, rate_reset=args.rate_reset,
                    retry_after=args.retry_after, page_cap=args.page_cap, seed=args.seed,
                    rate_cap=args.rate_cap, rate_500=args.rate_500)
    server = MemoryScimServer(bearer_token=args.token, faults=faults, quirks=Quirks(
        patch_returns_resource=args.patch_returns_resource, bulk_max_operations=args.bulk))
    seed(server, args.users, args.groups, args.plan)
    app = server.make_app()
    add_control_routes(app, server)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=1024)
    await site.start()
    print(f"READY http://127.0.0.1:{runner.addresses[0][1]}/v2", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
