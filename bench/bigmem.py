"""Big groups in bounded memory (issue 18, items 3 and 4): peak RSS of the replicator process for a first
copy of N users with and without one group holding every user, the zero-change cycle after it against
a bare paginated read of the same source, and a cycle after it in which the group lost one member. Every replicator run is a fresh subprocess; its peak RSS comes
from the kernel (ru_maxrss), which the load on the machine does not distort.

    python -m bench.bigmem --users 100000 --runs 3          # the 100k figures
    python -m bench.bigmem --users 1000000 --runs 1 --only group,zero
    python -m bench.bigmem --users 1000000 --runs 1 --only zero --zero-without-group --zero-runs 3
    python -m bench.bigmem --users 100000 --runs 1 --tree "$base"   # another commit's `git archive` tree
    python -m bench.bigmem --users 200000 --runs 1 --only group,change  # a later cycle changing the group

One JSON line per run on stdout, then the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.common import ROOT, admin, bench_server, raw, run_replicator


def writes(requests: dict[str, int]) -> int:
    return sum(n for m, n in requests.items() if m in ("POST", "PUT", "PATCH", "DELETE"))


def copy_and_zero(users: int, groups: int, zero: int, tree: Path = ROOT, mode: str = "--once",
                  change: bool = False) -> list[dict[str, Any]]:
    """A first copy of `users` users (+ one group of everyone when `groups`), then `zero` times the
    zero-change cycle, each followed by a bare read of the same source, then when `change` a cycle after
    the group lost its last member on the source. `mode`: the first copy's run mode (`--full` is the
    daemon's first cycle)."""
    rows = []
    label = "group" if groups else "users"
    with bench_server(users=users, groups=groups, plan="bench") as source, bench_server() as destination, \
            tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state.db"
        wall, copy = run_replicator(source, destination, state, "--concurrency", "64", tree=tree, mode=mode)
        rows.append({"scenario": label, "mode": mode.lstrip("-"), "users": users, "groups": groups, "seconds": round(wall, 1),
                     "peak_rss_mb": copy["peak_rss_mb"], "cpu_seconds": copy["cpu_seconds"],
                     "created": copy["counts"].get("created", 0), "outcome": copy.get("outcome"),
                     # what may explain an outlier: retries, lookups (GETs) and the destination's answers
                     "destination_requests": copy.get("destination_requests"),
                     "retries": (copy.get("destination_flow") or {}).get("retries", 0)})
        for _ in range(zero):
            wall, again = run_replicator(source, destination, state, "--concurrency", "64", tree=tree)
            read = raw("read", source, page_size=500)
            rows.append({"scenario": "zero", "users": users, "groups": groups, "seconds": round(wall, 2),
                         "raw_read_seconds": round(read["seconds"], 2),
                         "ratio": round(wall / read["seconds"], 3), "peak_rss_mb": again["peak_rss_mb"],
                         "writes": writes(again["destination_requests"]), "outcome": again.get("outcome")})
        if change:
            dropped = admin(source, "mutate", {"fraction": 0, "drop_members": 1})["members_dropped"]
            wall, changed = run_replicator(source, destination, state, "--concurrency", "64", tree=tree)
            rows.append({"scenario": "change", "users": users, "groups": groups, "members_dropped": dropped,
                         "seconds": round(wall, 2), "peak_rss_mb": changed["peak_rss_mb"],
                         "cpu_seconds": changed["cpu_seconds"], "writes": writes(changed["destination_requests"]),
                         "destination_requests": changed.get("destination_requests"), "outcome": changed.get("outcome")})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="users,group", help="users (no group), group (one group of everyone), "
                        "zero (the zero-change cycle after the group copy), change (a cycle after the group lost a member)")
    parser.add_argument("--zero-runs", type=int, default=1, help="zero-change cycles after each copy (each with "
                        "its own bare read)")
    parser.add_argument("--zero-without-group", action="store_true",
                        help="the zero-change cycles after a copy of the users alone")
    parser.add_argument("--full", action="store_true", help="the first copy as a full cycle (`run --full`, "
                        "as the daemon's first cycle is), not `--once`")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose replicator runs (default: this one)")
    args = parser.parse_args()
    only = set(args.only.split(","))
    mode = "--full" if args.full else "--once"
    rows: list[dict[str, Any]] = []
    for _ in range(args.runs):
        runs = []
        zero = args.zero_runs if "zero" in only else 0
        if "users" in only or (zero and args.zero_without_group):
            runs += copy_and_zero(args.users, 0, zero=zero if args.zero_without_group else 0, tree=args.tree,
                                  mode=mode)
        if "group" in only or "change" in only or (zero and not args.zero_without_group):
            runs += copy_and_zero(args.users, 1, zero=0 if args.zero_without_group else zero, tree=args.tree,
                                  mode=mode, change="change" in only)
        for row in runs:
            print(json.dumps(row), flush=True)
        rows += runs
    for scenario in ("users", "group", "zero", "change"):
        mine = [r for r in rows if r["scenario"] == scenario]
        if mine:
            summary = {key: statistics.median(r[key] for r in mine)
                       for key in ("peak_rss_mb", "seconds", "ratio", "writes") if key in mine[0]}
            print(json.dumps({"median": scenario, "runs": len(mine), **summary}), flush=True)


if __name__ == "__main__":
    main()
