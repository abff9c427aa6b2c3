"""Fault soak: 2,000 users / 100 groups with 20% 429 (Retry-After), 5% 503, 1% resets and 5 ms latency
on the destination, against the same copy without faults, each in a fresh replicator process. The
destination must end equal to the source with no duplicate; when a run lists failed objects (a request
whose every retry met a fault), a --full run without faults must finish them.

    python -m bench.fault_soak --users 2000 --groups 100 --runs 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from bench.common import admin, bench_server, check_equal, run_replicator

FAULTS = {"rate_429": 0.2, "retry_after": "1", "rate_503": 0.05, "rate_reset": 0.01, "latency": 0.005}


def one(users: int, groups: int, faults: dict[str, object], seed: int) -> dict[str, object]:
    with bench_server(users=users, groups=groups) as source, bench_server() as destination, \
            tempfile.TemporaryDirectory() as tmp:
        admin(destination, "faults", {**faults, "seed": seed} if faults else {"latency": 0.005})
        seconds, report = run_replicator(source, destination, Path(tmp) / "s.db", "--concurrency", "32")
        admin(destination, "faults", {})
        failed = report["counts"].get("failed", 0)
        if report["outcome"] != "ok":
            # an object whose every retry met a fault (about 0.25^8 per request here) is a listed
            # failure, not a silent loss: a --full cycle without faults must finish it
            print(json.dumps({"failures": report.get("failures", [])[:10]}), flush=True)
            run_replicator(source, destination, Path(tmp) / "s.db", "--concurrency", "32", mode="--full")
        duplicates = check_equal(source, destination)  # raises when the destination differs
        flow = report["destination_flow"]
        return {
            "faults": bool(faults), "seconds": round(seconds, 2), "outcome": report["outcome"],
            "failed": failed, "rerun": report["outcome"] != "ok",
            "equal": True, "duplicates": duplicates, "retries": flow.get("retries", 0),
            "429s": flow.get("429", 0), "503s": flow.get("503", 0), "paused_s": flow.get("paused_seconds"),
            "final_concurrency": flow.get("concurrency"), "requests": report["destination_requests"],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--retry-after", default="1")
    args = parser.parse_args()
    faults = {**FAULTS, "retry_after": args.retry_after}
    rows = []
    for run in range(args.runs):
        for with_faults in (False, True):
            row = one(args.users, args.groups, faults if with_faults else {}, seed=run + 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    clean = [r["seconds"] for r in rows if not r["faults"]]
    faulty = [r["seconds"] for r in rows if r["faults"]]
    print(json.dumps({
        "median_seconds_without_faults": statistics.median(clean),
        "median_seconds_with_faults": statistics.median(faulty),
        "ratio": round(statistics.median(faulty) / statistics.median(clean), 2),
        "median_retries": statistics.median(r["retries"] for r in rows if r["faults"]),
        "median_429s": statistics.median(r["429s"] for r in rows if r["faults"]),
        "duplicates": sum(r["duplicates"] for r in rows),
        "all_equal": all(r["equal"] for r in rows),
    }))


if __name__ == "__main__":
    main()
