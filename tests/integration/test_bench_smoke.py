"""The benchmark scripts people tune with still run end to end (tiny data; nothing about speed is
asserted): bench.ab's A/B with the raw client, and bench.bigmem's zero-change cycles after one copy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str) -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=240,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_bench_ab_copies_everything_with_each_interpreter_and_reports_medians() -> None:
    """bench.ab: each round the raw client and every tree (here this one twice: as head and under
    `--python`) copy every object, and the medians name each."""
    rows = bench("bench.ab", "--users", "60", "--groups", "3", "--rounds", "1", "--python", f"again={sys.executable}")
    copies = {row["tree"]: row for row in rows if "round" in row and row["tree"] != "raw"}
    assert set(copies) == {"head", "again"}
    assert all(row["objects"] == 63 and row["outcome"] == "ok" and row["cpu_ms_per_object"] > 0
               for row in copies.values())
    assert {row["median"] for row in rows if "median" in row} == {"raw", "head", "again"}


def test_bench_bigmem_runs_zero_change_cycles_after_one_copy_of_the_users_alone() -> None:
    """bench.bigmem --zero-runs 2 --zero-without-group: one copy of the users (no group), then two
    zero-change cycles, each writing nothing and measured against its own bare read."""
    rows = bench("bench.bigmem", "--users", "80", "--runs", "1", "--only", "zero", "--zero-without-group",
                 "--zero-runs", "2")
    copies = [row for row in rows if row.get("scenario") == "users" and "median" not in row]
    zeros = [row for row in rows if row.get("scenario") == "zero" and "median" not in row]
    assert [(row["created"], row["groups"]) for row in copies] == [(80, 0)]
    assert len(zeros) == 2
    assert all(row["writes"] == 0 and row["outcome"] == "ok" and "raw_read_seconds" in row for row in zeros)
