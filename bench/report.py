"""Benchmark report: the table (medians over runs, with the goals) and the plots.

    python -m bench.report bench/results/latest.jsonl [--plots DIR]

The plots go to DIR, by default bench/results/plots (git-ignored, like the results); the committed
plots in bench/plots/ change only when asked for by name: `--plots bench/plots`.
Needs the `bench` extra for the plots (pip install -e '.[bench]'); the table needs nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# where the plots go unless --plots says otherwise: beside the results, never over the committed bench/plots/
DEFAULT_PLOTS = Path(__file__).resolve().parent / "results" / "plots"


def load(path: Path) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows[row["scenario"]].append(row)
    return rows


def median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def table(rows: dict[str, list[dict[str, Any]]]) -> str:
    lines = ["| figure | median | baseline (same run) | ratio | goal | runs |", "| --- | --- | --- | --- | --- | --- |"]

    def add(figure: str, value: str, baseline: str, ratio: str, goal: str, runs: int) -> None:
        lines.append(f"| {figure} | {value} | {baseline} | {ratio} | {goal} | {runs} |")

    if copy := rows.get("copy"):
        n = int(median(copy, "objects") or 0)
        add(f"full copy, {n:,} objects, 0 ms, c=64: objects/s", f"{median(copy, 'objects_per_s'):,.0f}",
            f"raw client {median(copy, 'raw_objects_per_s'):,.0f}/s", f"{median(copy, 'ratio'):.2f}", ">= 0.8", len(copy))
        add("full copy: requests per object", f"{median(copy, 'requests_per_object'):.3f}", "", "", "<= 1.05", len(copy))
        add("full copy: peak RSS (MB)", f"{median(copy, 'peak_rss_mb'):.0f}", "", "", "", len(copy))
    if zero := rows.get("zero_change"):
        add("zero-change cycle: seconds (writes)", f"{median(zero, 'seconds'):.2f} ({int(median(zero, 'writes') or 0)})",
            f"bare paginated read {median(zero, 'raw_read_seconds'):.2f} s", f"{median(zero, 'ratio'):.2f}",
            "<= 1.2, 0 writes", len(zero))
    if delta := rows.get("change_1pct"):
        add("1% change set: requests per changed object", f"{median(delta, 'requests_per_object'):.3f}", "", "",
            "<= 1.1", len(delta))
    if latency := rows.get("latency_20ms_c64"):
        add("20 ms latency, c=64: writes/s", f"{median(latency, 'ops_per_s'):,.0f}",
            f"raw client {median(latency, 'raw_ops_per_s'):,.0f}/s", f"{median(latency, 'ratio'):.2f}", ">= 0.95",
            len(latency))
    if cap := rows.get("rate_cap_100"):
        add("destination capped at 100 req/s: achieved req/s", f"{median(cap, 'achieved_per_s'):.1f}", "", "",
            ">= 95", len(cap))
        add("destination capped at 100 req/s: share answered 429", f"{100 * (median(cap, 'share_429') or 0):.2f}%",
            "", "", "<= 1%", len(cap))
    if bulk := rows.get("bulk_20ms"):
        add("SCIM Bulk at 20 ms latency, c=16: objects/s", f"{median(bulk, 'bulk_objects_per_s'):,.0f}",
            f"single requests {median(bulk, 'single_objects_per_s'):,.0f}/s", f"{median(bulk, 'ratio'):.1f}x",
            ">= 5x", len(bulk))
    if rss := rows.get("rss"):
        by_users = defaultdict(list)
        for row in rss:
            by_users[row["users"]].append(row)
        sizes = sorted(by_users)
        for users in sizes:
            add(f"peak RSS, copy of {users:,} users (MB)", f"{median(by_users[users], 'peak_rss_mb'):.0f}", "", "",
                "<= 250 at 100k" if users == 100_000 else "", len(by_users[users]))
        if len(sizes) >= 2:
            low, high = (median(by_users[s], "peak_rss_mb") or 1 for s in (sizes[0], sizes[-1]))
            add(f"peak RSS growth {sizes[0]:,} -> {sizes[-1]:,}", f"{high / low:.2f}x", "", "", "< 3x", 1)
    return "\n".join(lines)


def plots(rows: dict[str, list[dict[str, Any]]], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    made = []
    sweep = rows.get("sweep", [])
    if sweep:
        fig, ax = plt.subplots(figsize=(6, 4))
        for latency in sorted({r["latency_ms"] for r in sweep}):
            points = defaultdict(list)
            for r in sweep:
                if r["latency_ms"] == latency:
                    points[r["concurrency"]].append(r["objects_per_s"])
            xs = sorted(points)
            ax.plot(xs, [statistics.median(points[x]) for x in xs], marker="o", label=f"{latency:.0f} ms latency")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrency")
        ax.set_ylabel("objects created per second (median)")
        made.append(_save(fig, ax, "Throughput against concurrency", folder / "throughput_vs_concurrency.png"))
        fig, ax = plt.subplots(figsize=(7, 4))
        labels, p50, p90, p99 = [], [], [], []
        for latency in sorted({r["latency_ms"] for r in sweep}):
            for concurrency in sorted({r["concurrency"] for r in sweep if r["latency_ms"] == latency}):
                chosen = [r["latency"] for r in sweep if r["latency_ms"] == latency and r["concurrency"] == concurrency]
                labels.append(f"{latency:.0f}ms c{concurrency}")
                for bucket, key in ((p50, "latency_p50_ms"), (p90, "latency_p90_ms"), (p99, "latency_p99_ms")):
                    bucket.append(statistics.median(c.get(key, 0) for c in chosen))
        xs = range(len(labels))
        ax.plot(xs, p50, marker="o", label="p50")
        ax.plot(xs, p90, marker="o", label="p90")
        ax.plot(xs, p99, marker="o", label="p99")
        ax.set_xticks(list(xs), labels, rotation=45, ha="right")
        ax.set_ylabel("destination request latency (ms)")
        ax.set_yscale("log")
        made.append(_save(fig, ax, "Request latency percentiles", folder / "latency_percentiles.png"))
    return made


def _save(fig: Any, ax: Any, title: str, path: Path) -> Path:
    """Title, grid and legend, then write the PNG and free the figure."""
    import matplotlib.pyplot as plt

    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("--plots", type=Path, default=DEFAULT_PLOTS, metavar="DIR",
                        help="folder for the PNGs (default bench/results/plots; bench/plots holds the committed ones)")
    args = parser.parse_args(argv)
    rows = load(args.results)
    print(table(rows))
    try:
        for path in plots(rows, args.plots):
            print(f"plot: {path}")
    except ImportError:
        print("(plots need matplotlib: pip install -e '.[bench]')")


if __name__ == "__main__":
    main()
