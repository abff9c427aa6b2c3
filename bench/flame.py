"""A flame graph PNG from py-spy's collapsed stacks (`py-spy record -f raw`), drawn with matplotlib.

    py-spy record -r 200 -f raw -o stacks.txt -- python -m replicator run --once ...
    python -m bench.flame stacks.txt bench/plots/flame_copy.png --title "copy of 20k users"

Frames under 0.4% of the samples, and below 20 levels, are left out; each box is labelled with its function where it fits.
Samples of every thread are drawn side by side (the event loop's and SQLite's thread).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

_DEEPEST = 20  # levels drawn (imports alone nest deeper than the copy's work)
_NOISE = re.compile(r"^(_run_module_as_main|_run_code|<module> \(replicator/__main__\.py\)|Thread\._bootstrap.*|Thread\.run)")


def tree_of(path: Path) -> tuple[dict[str, Any], int]:
    root: dict[str, Any] = {"n": 0, "kids": {}}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        root["n"] += n
        node = root
        for frame in stack.split(";"):
            name = re.sub(r" \((?:.*/site-packages/|.*/)?([^:()]*?)(?:\.py)?:\d+\)", r" (\1)", frame)
            if _NOISE.match(name):
                continue
            node = node["kids"].setdefault(name, {"n": 0, "kids": {}})
            node["n"] += n
    return root, root["n"]


def draw(root: dict[str, Any], total: int, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    boxes: list[tuple[float, int, float, str]] = []

    def walk(node: dict[str, Any], x: float, depth: int) -> None:
        for name, kid in sorted(node["kids"].items(), key=lambda item: -item[1]["n"]):
            width = kid["n"] / total
            if width >= 0.004 and depth < _DEEPEST:
                boxes.append((x, depth, width, name))
                walk(kid, x, depth + 1)
            x += width

    walk(root, 0.0, 0)
    depth = max(d for _, d, _, _ in boxes) + 1
    fig, ax = plt.subplots(figsize=(16, 0.22 * depth + 0.8), dpi=80)
    for x, d, width, name in boxes:
        function = name.split(" (")[0]
        hue = (hash(function.split(".")[0]) % 1000) / 1000
        ax.add_patch(plt.Rectangle((x, d), width, 0.95, color=(0.95, 0.45 + 0.45 * hue, 0.25 + 0.2 * hue), lw=0))
        if width > 0.025:
            label = f"{function} {100 * width:.0f}%"
            ax.text(x + 0.002, d + 0.45, label[: int(width * 190)], fontsize=7, va="center")
    ax.set_xlim(0, 1)
    ax.set_ylim(depth, 0)
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stacks", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    root, total = tree_of(args.stacks)
    draw(root, total, args.out, args.title or f"{total} samples")


if __name__ == "__main__":
    main()
