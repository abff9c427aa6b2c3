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

from replicator.scim.client import ScimClient
from tests.harness import assert_replicated, count_duplicates

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def bench_server(**options: Any) -> Iterator[str]:
    """bench/scim_server.py in its own process; yields its base URL."""
    command = [sys.executable, "-m", "bench.scim_server"]
    for key, value in options.items():
        if value is not None:
            command += [f"--{key.replace('_', '-')}", str(value)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
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


def run_replicator(source: str, destination: str, state: Path, *flags: str, mode: str = "--once",
                   tree: Path = ROOT, python: str = sys.executable) -> tuple[float, dict[str, Any]]:
    """`scim-replicator run` in a fresh subprocess; returns (wall seconds, JSON report + peak_rss_mb).
    `tree`: the source tree whose replicator runs (an A/B against another commit's checkout); `python`: the
    interpreter that runs it."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [python, "-m", "replicator", "run", mode, "--output", "json", "--log-level", "error",
         "--source-url", source, "--destination-url", destination, "--state", str(state), *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tree,
    )
    out, err = process.communicate()
    elapsed = time.perf_counter() - started
    if process.returncode not in (0, 1):
        raise RuntimeError(f"replicator exited {process.returncode}: {err[-2000:]}")
    report = json.loads(out)
    report["peak_rss_mb"] = _peak_rss_mb(process.pid)
    report["cpu_seconds"] = _children_cpu.get(process.pid)
    return elapsed, report


_children_rss: dict[int, float] = {}
_children_cpu: dict[int, float] = {}


def _peak_rss_mb(pid: int) -> float | None:
    """Peak RSS of a finished child (Linux /proc is gone by then: read it from the wait status)."""
    return _children_rss.get(pid)


def _reap_with_rusage() -> None:
    """Make subprocess record each child's rusage (ru_maxrss, KiB on Linux) when it reaps it."""
    original = subprocess.Popen._try_wait  # type: ignore[attr-defined]

    def try_wait(self: subprocess.Popen[Any], wait_flags: int) -> tuple[int, int]:
        import os

        try:
            pid, status, usage = os.wait4(self.pid, wait_flags)
        except ChildProcessError:
            return original(self, wait_flags)
        if pid:
            _children_rss[pid] = round(usage.ru_maxrss / 1024, 1)
            _children_cpu[pid] = round(usage.ru_utime + usage.ru_stime, 2)
        return pid, status

    subprocess.Popen._try_wait = try_wait  # type: ignore[attr-defined]


_reap_with_rusage()


def raw(mode: str, url: str, **options: Any) -> dict[str, Any]:
    """bench/raw.py in a fresh process (the baseline measured in the same run)."""
    command = [sys.executable, "-m", "bench.raw", mode, "--url", url]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout)


def check_equal(source: str, destination: str) -> int:
    """Assert the destination equals the source; return the number of duplicates on the destination."""

    async def check() -> int:
        async with ScimClient(source) as s, ScimClient(destination) as d:
            await assert_replicated(s, d)
            return await count_duplicates(d)

    return asyncio.run(check())
