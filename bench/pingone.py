"""PingOne to PingOne on the PingOne emulator, at a rate cap: achieved request rate, share answered 429,
requests per object and per membership for the first copy and for a 1% change set.

    python -m bench.pingone --users 10000 --groups 100 --rate-cap 100      # the issue's scale (minutes)
    python -m bench.pingone --users 1000 --groups 20                       # quick

The emulator runs in this process (its own thread and event loop), its cap per environment (PingOne gives
one IP its share per environment); the replicator in a fresh subprocess configured through SCIMREP_*
variables, each side's `rate_limit` at the cap (README: set it to your share of the licence's rate; the
replicator's bucket bursts a tenth of a second, the emulator's a whole second, so running at the cap
itself draws no 429). The achieved rate that counts is the destination's: a copy is mostly its writes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from resource import RUSAGE_CHILDREN, RUSAGE_SELF
from typing import Any

from replicator.testing.pingone import Environment, PingOneEmulator, PingOneSwitches

ROOT = Path(__file__).resolve().parent.parent


class Emulator:
    """The emulator on a background event loop."""

    def __init__(self, switches: PingOneSwitches) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.emulator = PingOneEmulator(switches)
        asyncio.run_coroutine_threadsafe(self.emulator.start(host="127.0.0.1", port=0), self.loop).result()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.emulator.stop(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)


def seed(env: Environment, users: int, groups: int, rng: random.Random) -> int:
    """Users, and groups of Zipf-like sizes (group 0 has everyone); returns the memberships made."""
    ids = [env.add_user(f"user{i:06}", name={"given": f"G{i}", "family": f"F{i}"}, title="Staff")["id"]
           for i in range(users)]
    memberships = 0
    for g in range(groups):
        group_id = env.add_group(f"group{g:04}")["id"]
        size = users if g == 0 else max(1, int(users / (g + 1) ** 1.5))
        for user_id in rng.sample(ids, size):
            env.add_member(group_id, user_id)
            memberships += 1
    return memberships


def side_env(prefix: str, emulator: PingOneEmulator, env: Environment, rate: float) -> dict[str, str]:
    return {f"{prefix}_KIND": "pingone", f"{prefix}_PINGONE_ENVIRONMENT": env.id, f"{prefix}_CLIENT_ID": env.client_id,
            f"{prefix}_CLIENT_SECRET": env.client_secret, f"{prefix}_API_URL": emulator.api_url,
            f"{prefix}_AUTH_URL": emulator.auth_url, f"{prefix}_SCIM_URL": emulator.scim_url,
            f"{prefix}_RATE_LIMIT": str(rate)}


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run(environ: dict[str, str]) -> dict[str, Any]:
    """One cycle in a subprocess: its JSON report, wall seconds, and the CPU seconds of the replicator
    (the child) and of the emulator (this process: its thread serves while the main one waits)."""
    started, emulator_cpu, replicator_cpu = time.perf_counter(), cpu_seconds(RUSAGE_SELF), cpu_seconds(RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "replicator", "run", "--once", "--output", "json", "--log-level",
                           "error"], capture_output=True, text=True, cwd=ROOT, env={**os.environ, **environ}, check=False)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"replicator exited {done.returncode}: {done.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    report["wall_seconds"] = time.perf_counter() - started
    report["emulator_cpu_seconds"] = round(cpu_seconds(RUSAGE_SELF) - emulator_cpu, 1)
    report["replicator_cpu_seconds"] = round(cpu_seconds(RUSAGE_CHILDREN) - replicator_cpu, 1)
    return report


def traffic(env: Environment, since: int) -> tuple[int, int]:
    """(requests, of which answered 429) to an environment since its log had `since` entries."""
    log = env.request_log[since:]
    return len(log), sum(1 for _, _, status in log if status == 429)


def busy_rate(env: Environment, since: int) -> float:
    """The environment's requests per second from its first to its last request since `since`
    (without the replicator's start-up and the other side's reads before the first write)."""
    stamps = env.request_times[since:]
    return round((len(stamps) - 1) / (stamps[-1] - stamps[0]), 1) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--rate-cap", type=float, default=100.0, help="the emulator's cap per environment (req/s)")
    parser.add_argument("--rate-limit", type=float, default=None, help="each side's rate_limit (default: the cap)")
    args = parser.parse_args()
    rate_limit = args.rate_limit or args.rate_cap
    rng = random.Random(7)
    emulator = Emulator(PingOneSwitches(rate_cap=args.rate_cap))
    try:
        source, destination = emulator.emulator.add_environment("src"), emulator.emulator.add_environment("dst")
        memberships = seed(source, args.users, args.groups, rng)
        with tempfile.TemporaryDirectory() as tmp:
            environ = {**side_env("SCIMREP_SOURCE", emulator.emulator, source, rate_limit),
                       **side_env("SCIMREP_DESTINATION", emulator.emulator, destination, rate_limit),
                       "SCIMREP_STATE": str(Path(tmp) / "s.db"), "SCIMREP_CONCURRENCY": "16"}
            figures: dict[str, Any] = {"users": args.users, "groups": args.groups, "memberships": memberships,
                                       "rate_cap_per_environment": args.rate_cap, "rate_limit": rate_limit}
            for phase in ("copy", "change_1pct"):
                if phase == "change_1pct":
                    for user in rng.sample(list(source.directory.users.values()), max(1, args.users // 100)):
                        user["title"] = "Changed"
                marks = (len(source.request_log), len(destination.request_log))
                report = run(environ)
                (src_requests, src_429), (dst_requests, dst_429) = traffic(source, marks[0]), traffic(destination, marks[1])
                total = src_requests + dst_requests
                methods = Counter(report["destination_requests"])
                figures[phase] = {
                    "outcome": report["outcome"], "seconds": round(report["wall_seconds"], 1),
                    "emulator_cpu_seconds": report["emulator_cpu_seconds"],
                    "replicator_cpu_seconds": report["replicator_cpu_seconds"],
                    "requests": total, "achieved_requests_per_s": round(total / report["wall_seconds"], 1),
                    "share_429": round((src_429 + dst_429) / max(1, total), 4),
                    "source_requests": src_requests, "destination_requests": dst_requests,
                    "destination_requests_per_s": round(dst_requests / report["wall_seconds"], 1),
                    "destination_busy_requests_per_s": busy_rate(destination, marks[1]),
                    "destination_share_429": round(dst_429 / max(1, dst_requests), 4),
                    "destination_writes": sum(n for m, n in methods.items() if m != "GET"),
                    "destination_requests_per_object": round(dst_requests / (args.users + args.groups), 3),
                }
                if phase == "copy":
                    figures[phase]["destination_requests_per_membership"] = round(
                        (dst_requests - args.users - args.groups) / max(1, memberships), 3)
                else:
                    figures[phase]["destination_requests_per_changed_user"] = round(
                        dst_requests / max(1, args.users // 100), 2)
            print(json.dumps(figures, indent=1))
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
