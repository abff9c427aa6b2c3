"""bench/report.py writes its plots where it is told, by default into the git-ignored bench/results/plots,
never over the committed bench/plots/ unless that folder is named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import report

ROOT = Path(__file__).resolve().parents[2]
SWEEP = '{"scenario": "sweep", "latency_ms": 0, "concurrency": 4, "objects_per_s": 100.0, "latency": {}}\n'


@pytest.fixture
def plotted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    """The folders `main` hands to `plots` (stubbed: the bench extra's matplotlib is not needed)."""
    folders: list[Path] = []

    def plots(rows: dict[str, list[dict[str, Any]]], folder: Path) -> list[Path]:
        assert "sweep" in rows
        folders.append(folder)
        return []

    monkeypatch.setattr(report, "plots", plots)
    (tmp_path / "results.jsonl").write_text(SWEEP)
    return folders


def test_plots_default_to_the_ignored_results_folder(plotted: list[Path], tmp_path: Path) -> None:
    """Without --plots the PNGs go to bench/results/plots, a folder .gitignore keeps out of commits."""
    report.main([str(tmp_path / "results.jsonl")])
    assert plotted == [ROOT / "bench" / "results" / "plots"]
    assert "bench/results/" in (ROOT / ".gitignore").read_text().splitlines()


def test_plots_go_where_plots_says(plotted: list[Path], tmp_path: Path) -> None:
    """--plots DIR is the folder used, the committed bench/plots included when named."""
    report.main([str(tmp_path / "results.jsonl"), "--plots", str(tmp_path / "mine")])
    report.main([str(tmp_path / "results.jsonl"), "--plots", "bench/plots"])
    assert plotted == [tmp_path / "mine", Path("bench/plots")]
