"""Baselines: what a minimal aiohttp client does with the same work, measured in the same run.

    python -m bench.raw post --url URL --users N --groups G --concurrency C [--plan bench]
    python -m bench.raw read --url URL [--page-size 500]

`post` sends the POSTs a first copy needs (the same user bodies; groups with their first `--chunk`
members, 100 by default, the rest as PATCH adds of as many, one after another; `--chunk 0`: every member
in the POST; member ids as in the source) from `concurrency` workers on uvloop;
`read` pages through Users and Groups with a reused msgspec decoder. Prints one JSON line:
{"seconds": ..., "requests": ...}, timed from the first request to the last answer.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import aiohttp
import msgspec

from bench.data import bench_group_plan
from replicator.pipeline.canonical import GROUP, USER, canonicalise, schemas_for
from replicator.testing.sample_data import group_plan, sample_group, sample_users

CHUNK = 100


def post_work(users: int, groups: int, plan: str, chunk: int = CHUNK) -> list[tuple[str, str, Any]]:
    work: list[tuple[str, str, Any]] = []
    for user in sample_users(users):
        body = canonicalise(user, USER)
        work.append(("POST", "Users", {"schemas": schemas_for(body, USER), **body}))
    shape = bench_group_plan(users, groups) if plan == "bench" else group_plan(users, groups)
    for name, members in shape:
        ids = [f"user-{i:08d}" for i in members]
        first = chunk or len(ids)
        body = canonicalise(sample_group(name, ids[:first]), GROUP)
        work.append(("POST", "Groups", {"schemas": schemas_for(body, GROUP), **body, "_rest": ids[first:]}))
    return work


async def post(url: str, users: int, groups: int, concurrency: int, plan: str, chunk: int = CHUNK) -> dict[str, float]:
    work = post_work(users, groups, plan, chunk)
    chunk = chunk or CHUNK
    encode = msgspec.json.encode
    queue = iter(work)
    requests = 0
    headers = {"Content-Type": "application/scim+json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker() -> None:
            nonlocal requests
            for _, endpoint, body in queue:
                rest = body.pop("_rest", [])
                async with session.post(f"{url}/{endpoint}", data=encode(body), headers=headers) as response:
                    created = msgspec.json.decode(await response.read())
                requests += 1
                for start in range(0, len(rest), chunk):
                    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                             "Operations": [{"op": "add", "path": "members",
                                             "value": [{"value": v} for v in rest[start:start + chunk]]}]}
                    async with session.patch(f"{url}/{endpoint}/{created['id']}", data=encode(patch),
                                             headers=headers) as response:
                        await response.read()
                    requests += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return {"seconds": time.perf_counter() - started, "requests": requests, "objects": len(work)}


class _Page(msgspec.Struct):
    Resources: list[dict[str, Any]] = []
    totalResults: int = 0


async def read(url: str, page_size: int) -> dict[str, float]:
    decoder = msgspec.json.Decoder(_Page)
    requests = objects = 0
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        for endpoint in ("Users", "Groups"):
            start = 1
            while True:
                params = {"startIndex": str(start), "count": str(page_size)}
                async with session.get(f"{url}/{endpoint}", params=params) as response:
                    page = decoder.decode(await response.read())
                requests += 1
                objects += len(page.Resources)
                start += len(page.Resources)
                if not page.Resources or start > page.totalResults:
                    break
    return {"seconds": time.perf_counter() - started, "requests": requests, "objects": objects}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("post", "read"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--users", type=int, default=0)
    parser.add_argument("--groups", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--chunk", type=int, default=CHUNK, help="members per request (0: all in the POST)")
    parser.add_argument("--plan", choices=("sample", "bench"), default="bench")
    args = parser.parse_args()
    import uvloop

    if args.mode == "post":
        result = uvloop.run(post(args.url, args.users, args.groups, args.concurrency, args.plan, args.chunk))
    else:
        result = uvloop.run(read(args.url, args.page_size))
    print(msgspec.json.encode(result).decode(), flush=True)


if __name__ == "__main__":
    main()
