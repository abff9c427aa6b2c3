"""A/B of the replicator's CPU per object: this tree against another checkout (a baseline commit),
alternating in each round, on the same source, each run a fresh subprocess and a fresh destination.

    base=$(mktemp -d) && git archive BASE | tar -x -C "$base"   # the baseline's tree (same virtualenv)
    python -m bench.ab --baseline "$base" --users 20000 --groups 200 --rounds 3
    python -m bench.ab --latency 0.02 --users 5000 --groups 50   # the 20 ms copy, against raw clients
    python -m bench.ab --python py312=/path/to/venv312/bin/python    # this tree under another interpreter too

CPU is the replicator process's user + system time (its imports included), divided by the objects it
created; on a machine shared with other work it moves less than wall time does. Each round also runs
the raw client (bench/raw.py) alone, for the copy's ratio. Prints one JSON line per run, then medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import ROOT, bench_server, raw, run_replicator
from bench.run import writes


def one_copy(source: str, tree: Path, latency: float, flags: list[str], python: str) -> dict[str, Any]:
    with bench_server(latency=latency or None) as destination, tempfile.TemporaryDirectory() as tmp:
        _, copy = run_replicator(source, destination, Path(tmp) / "s.db", "--concurrency", "64", *flags, tree=tree,
                                 python=python)
    objects = copy["counts"].get("created", 0)
    return {"objects": objects, "seconds": copy["seconds"], "cpu_seconds": copy["cpu_seconds"],
            "cpu_ms_per_object": round(1000 * copy["cpu_seconds"] / max(objects, 1), 4),
            "objects_per_s": round(objects / copy["seconds"], 1),
            "writes_per_s": round(writes(copy["destination_requests"]) / copy["seconds"], 1),
            "outcome": copy.get("outcome")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, help="another checkout to run against (default: none)")
    parser.add_argument("--head", type=Path, default=ROOT, help="the checkout measured (default: this one)")
    parser.add_argument("--also", action="append", default=[], metavar="NAME=DIR",
                        help="more checkouts measured in the same rounds (repeatable)")
    parser.add_argument("--python", action="append", default=[], metavar="NAME=EXE",
                        help="the head tree run by another interpreter too, in the same rounds (repeatable; "
                             "its virtualenv must have the project installed)")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.0, help="destination latency (s)")
    parser.add_argument("--raw-chunk", type=int, default=100,
                        help="members per request of the raw client (0: a group's members all in its POST)")
    parser.add_argument("--flag", action="append", default=[], help="more replicator flags (repeatable)")
    args = parser.parse_args()
    trees = {"head": args.head.resolve(), **({"base": args.baseline.resolve()} if args.baseline else {}),
             **{name: Path(tree).resolve() for name, _, tree in (also.partition("=") for also in args.also)}}
    pythons = {name: sys.executable for name in trees}
    for name, _, exe in (other.partition("=") for other in args.python):
        trees[name], pythons[name] = trees["head"], exe
    rows: list[dict[str, Any]] = []
    with bench_server(users=args.users, groups=args.groups, plan="bench") as source:
        for round_ in range(1, args.rounds + 1):
            with bench_server(latency=args.latency or None) as fresh:
                baseline = raw("post", fresh, users=args.users, groups=args.groups, concurrency=64, plan="bench",
                               chunk=args.raw_chunk)
            raw_row = {"tree": "raw", "round": round_, "objects_per_s": round(baseline["objects"] / baseline["seconds"], 1),
                       "seconds": round(baseline["seconds"], 3), "requests": baseline["requests"]}
            print(json.dumps(raw_row), flush=True)
            rows.append(raw_row)
            for name, tree in (list(trees.items()) if round_ % 2 else list(reversed(trees.items()))):
                row = {"tree": name, "round": round_, **one_copy(source, tree, args.latency, args.flag, pythons[name])}
                row["ratio"] = round(row["objects_per_s"] / raw_row["objects_per_s"], 3)
                print(json.dumps(row), flush=True)
                rows.append(row)
    for name in ("raw", *trees):
        mine = [r for r in rows if r["tree"] == name]
        keys = ("objects_per_s", "seconds") if name == "raw" else ("cpu_ms_per_object", "cpu_seconds", "objects_per_s", "ratio")
        print(json.dumps({"median": name, "runs": len(mine),
                          **{k: statistics.median(r[k] for r in mine) for k in keys}}), flush=True)


if __name__ == "__main__":
    main()
