"""Shared pieces of the benchmarks: server processes, the replicator in a fresh subprocess, checks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from replicator.scim.client import ScimClient  # noqa: E402
from tests.harness import assert_replicated, count_duplicates  # noqa: E402


@contextlib.contextmanager
def bench_server(**options: Any) -> Iterator[str]:
    """bench/scim_server.py in its own process; yields its base URL."""
    command = [sys.executable, str(ROOT / "bench" / "scim_server.py")]
    for key, value in options.items():
        if value is not None:
            command += [f"--{key.replace('_', '-')}", str(value)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"bench server did not start: {line!r}")
        yield line.split()[1]
    finally:
        process.terminate()
        process.wait(timeout=10)


def admin(base_url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    root = base_url.rsplit("/v2", 1)[0]
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(root + "/_admin/" + path, data=data, method="POST" if data is not None else "GET")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def run_replicator(source: str, destination: str, state: Path, *flags: str, mode: str = "--once") -> tuple[float, dict[str, Any]]:
    """`scim-replicator run` in a fresh subprocess; returns (wall seconds, JSON report)."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "replicator", "run", mode, "--output", "json", "--log-level", "error",
         "--source-url", source, "--destination-url", destination, "--state", str(state), *flags],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )
    elapsed = time.perf_counter() - started
    if out.returncode not in (0, 1):
        raise RuntimeError(f"replicator exited {out.returncode}: {out.stderr[-2000:]}")
    return elapsed, json.loads(out.stdout)


def check_equal(source: str, destination: str) -> int:
    """Assert the destination equals the source; return the number of duplicates on the destination."""

    async def check() -> int:
        async with ScimClient(source) as s, ScimClient(destination) as d:
            await assert_replicated(s, d)
            return await count_duplicates(d)

    return asyncio.run(check())
