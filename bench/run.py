"""Benchmark runner: every figure next to a baseline measured in the same run, each replicator run in a
fresh subprocess, results as JSON lines.

    python -m bench.run                      # the full table (100k users, RSS up to 1M; about 35 minutes here)
    python -m bench.run --scale quick        # the same scenarios on small data (about 2 minutes)
    python -m bench.run --only copy,latency  # some scenarios
    python -m bench.report bench/results/latest.jsonl   # table + plots

Scenarios (median of --runs runs in the report):
- copy: full copy of N users + G groups (Zipf group sizes, one with everyone) to a zero-latency
  destination at concurrency 64, against bench/raw.py posting the same requests at the same
  concurrency; then the zero-change cycle against a bare paginated read of the source; then a 1%
  change set. Requests per object for the copy and for the change set.
- latency: destination latency 20 ms, concurrency 64, users only, against the raw client.
- rate_cap: a destination capped at 100 requests/s (429 + Retry-After beyond): achieved rate, 429 share.
- bulk: the latency copy at concurrency 16 with SCIM Bulk against single requests.
- sweep: throughput against concurrency at 0 and 20 ms latency (for the plot).
- rss: peak RSS of the replicator for a copy of 100k and 1M users (no groups).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import admin, bench_server, raw, run_replicator

RESULTS = Path(__file__).resolve().parent / "results"
SCALES = {
    "full": {"users": 100_000, "groups": 1_000, "latency_users": 20_000, "cap_users": 3_000,
             "sweep_users": 10_000, "rss_users": [100_000, 1_000_000]},
    "quick": {"users": 5_000, "groups": 50, "latency_users": 2_000, "cap_users": 600,
              "sweep_users": 2_000, "rss_users": [5_000, 20_000]},
}


def writes(requests: dict[str, int]) -> int:
    return sum(n for m, n in requests.items() if m in ("POST", "PUT", "PATCH", "DELETE"))


def scenario_copy(scale: dict[str, Any], run: int) -> list[dict[str, Any]]:
    users, groups = scale["users"], scale["groups"]
    rows = []
    # the baseline first, alone on the machine (no other server alive to compete for the 2 cores)
    with bench_server() as fresh:
        baseline = raw("post", fresh, users=users, groups=groups, concurrency=64, plan="bench")
    with bench_server(users=users, groups=groups, plan="bench") as source, bench_server() as destination, \
            tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state.db"
        _, copy = run_replicator(source, destination, state, "--concurrency", "64")
        objects = copy["counts"].get("created", 0)
        requests = sum(copy["destination_requests"].values())
        rows.append({
            "scenario": "copy", "run": run, "objects": objects, "seconds": copy["seconds"],
            "objects_per_s": round(objects / copy["seconds"], 1),
            "raw_objects_per_s": round(baseline["objects"] / baseline["seconds"], 1),
            "ratio": round((objects / copy["seconds"]) / (baseline["objects"] / baseline["seconds"]), 3),
            "requests_per_object": round(requests / objects, 4), "peak_rss_mb": copy["peak_rss_mb"],
            "cpu_seconds": copy["cpu_seconds"], "latency": _latency(copy),
        })
        _, zero = run_replicator(source, destination, state, "--concurrency", "64")
        read = raw("read", source, page_size=500)
        rows.append({
            "scenario": "zero_change", "run": run, "seconds": zero["seconds"], "writes": writes(zero["destination_requests"]),
            "raw_read_seconds": round(read["seconds"], 3), "ratio": round(zero["seconds"] / read["seconds"], 3),
            "source_requests": zero["source_requests"], "peak_rss_mb": zero["peak_rss_mb"],
        })
        changed = admin(source, "mutate", {"fraction": 0.01, "seed": run})["changed"]
        _, delta = run_replicator(source, destination, state, "--concurrency", "64")
        rows.append({
            "scenario": "change_1pct", "run": run, "changed": changed, "seconds": delta["seconds"],
            "updated": delta["counts"].get("updated", 0), "destination_requests": delta["destination_requests"],
            "requests_per_object": round(sum(delta["destination_requests"].values()) / max(changed, 1), 4),
        })
    return rows


def _latency(report: dict[str, Any]) -> dict[str, float]:
    flow = report.get("destination_flow", {})
    return {k: flow[k] for k in ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms") if k in flow}


def scenario_latency(scale: dict[str, Any], run: int) -> list[dict[str, Any]]:
    users = scale["latency_users"]
    with bench_server(latency=0.02) as fresh:
        baseline = raw("post", fresh, users=users, groups=0, concurrency=64)
    with bench_server(users=users) as source, bench_server(latency=0.02) as destination, \
            tempfile.TemporaryDirectory() as tmp:
        _, copy = run_replicator(source, destination, Path(tmp) / "s.db", "--concurrency", "64",
                                 "--sync-groups", "false")
    ops = writes(copy["destination_requests"]) / copy["seconds"]
    raw_ops = baseline["requests"] / baseline["seconds"]
    return [{"scenario": "latency_20ms_c64", "run": run, "ops_per_s": round(ops, 1),
             "raw_ops_per_s": round(raw_ops, 1), "ratio": round(ops / raw_ops, 3), "latency": _latency(copy)}]


def scenario_rate_cap(scale: dict[str, Any], run: int) -> list[dict[str, Any]]:
    users = scale["cap_users"]
    with bench_server(users=users) as source, bench_server(rate_cap=100, retry_after="1") as destination, \
            tempfile.TemporaryDirectory() as tmp:
        _, copy = run_replicator(source, destination, Path(tmp) / "s.db", "--concurrency", "16",
                                 "--sync-groups", "false")
    ok = copy["counts"].get("created", 0)
    total = sum(copy["destination_requests"].values())
    limited = copy["destination_flow"].get("429", 0)
    return [{"scenario": "rate_cap_100", "run": run, "achieved_per_s": round(ok / copy["seconds"], 1),
             "share_429": round(limited / total, 4), "requests": total, "seconds": copy["seconds"],
             "final_concurrency": copy["destination_flow"].get("concurrency")}]


def scenario_bulk(scale: dict[str, Any], run: int) -> list[dict[str, Any]]:
    """The same copy at 20 ms latency, concurrency 16, with and without SCIM Bulk (maxOperations 100)."""
    users = scale["latency_users"]
    rates = {}
    for label, options, flags in (("single", {}, ("--sync-bulk", "off")), ("bulk", {"bulk": 100}, ())):
        with bench_server(users=users) as source, bench_server(latency=0.02, **options) as destination, \
                tempfile.TemporaryDirectory() as tmp:
            _, copy = run_replicator(source, destination, Path(tmp) / "s.db", "--concurrency", "16",
                                     "--sync-groups", "false", *flags)
        rates[label] = copy["counts"].get("created", 0) / copy["seconds"]
    return [{"scenario": "bulk_20ms", "run": run, "bulk_objects_per_s": round(rates["bulk"], 1),
             "single_objects_per_s": round(rates["single"], 1), "ratio": round(rates["bulk"] / rates["single"], 2)}]


def scenario_sweep(scale: dict[str, Any], run: int) -> list[dict[str, Any]]:
    rows = []
    users = scale["sweep_users"]
    for latency in (0.0, 0.02):
        for concurrency in (1, 4, 16, 64, 128):
            if latency == 0.02 and concurrency == 1:
                continue  # 20 ms x N requests one at a time says nothing new and takes long
            with bench_server(users=users) as source, bench_server(latency=latency) as destination, \
                    tempfile.TemporaryDirectory() as tmp:
                _, copy = run_replicator(source, destination, Path(tmp) / "s.db", "--concurrency", str(concurrency),
                                         "--min-concurrency", "1", "--sync-groups", "false")
            rows.append({"scenario": "sweep", "run": run, "latency_ms": latency * 1000, "concurrency": concurrency,
                         "objects_per_s": round(copy["counts"].get("created", 0) / copy["seconds"], 1),
                         "latency": _latency(copy)})
    return rows


def scenario_rss(scale: dict[str, Any], run: int) -> list[dict[str, Any]]:
    rows = []
    for users in scale["rss_users"]:
        with bench_server(users=users) as source, bench_server() as destination, tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            _, copy = run_replicator(source, destination, Path(tmp) / "s.db", "--concurrency", "64",
                                     "--sync-groups", "false")
            rows.append({"scenario": "rss", "run": run, "users": users, "peak_rss_mb": copy["peak_rss_mb"],
                         "seconds": copy["seconds"], "wall_seconds": round(time.perf_counter() - started, 1)})
    return rows


SCENARIOS = {"copy": scenario_copy, "latency": scenario_latency, "rate_cap": scenario_rate_cap,
             "bulk": scenario_bulk, "sweep": scenario_sweep, "rss": scenario_rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", help="comma-separated scenario names")
    parser.add_argument("--rss-runs", type=int, default=1, help="runs of the (slow) rss scenario")
    parser.add_argument("--rss-users", help="comma-separated user counts for the rss scenario")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.jsonl")
    args = parser.parse_args()
    scale = dict(SCALES[args.scale])
    if args.rss_users:
        scale["rss_users"] = [int(n) for n in args.rss_users.split(",")]
    names = args.only.split(",") if args.only else list(SCENARIOS)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as out:
        for name in names:
            runs = args.rss_runs if name == "rss" else args.runs
            for run in range(1, runs + 1):
                for row in SCENARIOS[name](scale, run):
                    row["scale"] = args.scale
                    line = json.dumps(row)
                    print(line, flush=True)
                    out.write(line + "\n")
                    out.flush()


if __name__ == "__main__":
    main()
