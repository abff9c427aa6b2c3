"""First copy and second run between two scim2-server processes (the core issue's acceptance figure).

    python -m bench.scim2_pair --users 1000 --groups 50 --runs 3

Seeds the source over HTTP, then runs `scim-replicator run --once` in a fresh subprocess (first copy)
and again (second run), and prints wall time, requests per object and the second run's requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from replicator.scim.client import ScimClient
from tests.harness import assert_replicated, scim2_server, seed


def run_cli(source: str, destination: str, state: Path, *extra: str) -> tuple[float, dict]:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "replicator", "run", "--once", "--output", "json", "--log-level", "warning",
         "--source-url", source, "--destination-url", destination, "--state", str(state), *extra],
        capture_output=True, text=True, check=False,
    )
    elapsed = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"replicator exited {out.returncode}: {out.stderr[-2000:]}")
    return elapsed, json.loads(out.stdout)


async def seed_and_check(url: str, users: int, groups: int) -> None:
    async with ScimClient(url, max_connections=16) as client:
        await seed(client, users, groups)


async def check(source: str, destination: str) -> None:
    async with ScimClient(source) as s, ScimClient(destination) as d:
        await assert_replicated(s, d)


async def raw_copy(source: str, destination: str, concurrency: int) -> float:
    """Baseline: a minimal aiohttp client POSTing the same users and groups (ids untranslated) at the
    same concurrency, timed from its first to its last request; the source read is not included."""
    import aiohttp

    from replicator.pipeline.canonical import GROUP, USER, canonicalise, schemas_for
    from tests.harness import read_all

    async with ScimClient(source) as client:
        bodies = [(k, canonicalise(r, k)) for k in (USER, GROUP) for r in await read_all(client, k)]
    queue: asyncio.Queue = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        async def worker() -> None:
            while not queue.empty():
                kind, body = queue.get_nowait()
                body = {"schemas": schemas_for(body, kind), **body}
                async with session.post(f"{destination}/{kind}s", json=body) as response:
                    await response.read()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--bulk", choices=("auto", "off"), default="auto",
                        help="scim2-server offers SCIM Bulk; 'off' measures single requests")
    args = parser.parse_args()
    rows = []
    for run in range(args.runs):
        with scim2_server() as source, scim2_server() as destination, tempfile.TemporaryDirectory() as tmp:
            asyncio.run(seed_and_check(source, args.users, args.groups))
            state = Path(tmp) / "state.db"
            flags = ("--concurrency", str(args.concurrency), "--sync-bulk", args.bulk)
            first_s, first = run_cli(source, destination, state, *flags)
            second_s, second = run_cli(source, destination, state, *flags)
            asyncio.run(check(source, destination))
        with scim2_server() as source, scim2_server() as destination:
            asyncio.run(seed_and_check(source, args.users, args.groups))
            baseline_s = asyncio.run(raw_copy(source, destination, args.concurrency))
            objects = sum(first["counts"].get(k, 0) for k in ("created", "adopted"))
            requests = sum(first["destination_requests"].values())
            rows.append({
                "run": run + 1,
                "objects": objects,
                "first_copy_s": round(first_s, 2),
                "first_copy_cycle_s": first["seconds"],
                "requests_per_object": round(requests / objects, 3),
                "destination_requests": first["destination_requests"],
                "raw_client_posts_s": round(baseline_s, 2),
                "cycle_over_raw": round(first["seconds"] / baseline_s, 2),
                "second_run_s": round(second_s, 2),
                "second_run_requests": {"source": second["source_requests"], "destination": second["destination_requests"]},
            })
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({
        "median_first_copy_s": statistics.median(r["first_copy_s"] for r in rows),
        "median_first_copy_cycle_s": statistics.median(r["first_copy_cycle_s"] for r in rows),
        "median_requests_per_object": statistics.median(r["requests_per_object"] for r in rows),
        "median_second_run_s": statistics.median(r["second_run_s"] for r in rows),
        "median_raw_client_posts_s": statistics.median(r["raw_client_posts_s"] for r in rows),
        "median_cycle_over_raw": statistics.median(r["cycle_over_raw"] for r in rows),
    }))


if __name__ == "__main__":
    main()
