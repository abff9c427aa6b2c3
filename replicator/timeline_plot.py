"""Drawing a run's timeline (`status --plot run.png`): three panels over the run's seconds, writes a
second, calls in flight (and the adaptive limit on them) and 429 answers, with the time paused by
Retry-After shaded across all three.

matplotlib is optional (the `plot` extra) and imported only when a picture is drawn, so that importing
the command line stays cheap; without it `draw_timeline` raises `PlottingUnavailable`, whose message
says what to install. The figures come from `replicator.timeline.series` (pure, tested on its own).
"""

from __future__ import annotations

from replicator.timeline import Series, pause_spans

PLOT_EXTRA = "pip install 'scim-replicator[plot]'"
_PAUSE_COLOUR = "#f2b134"


class PlottingUnavailable(Exception):
    """matplotlib is not installed."""


def draw_timeline(drawn: Series, target: str, *, title: str) -> None:
    """Write the picture of `drawn` to the file `target` (PNG, or the format its suffix names).
    OSError when the file cannot be written."""
    try:
        from matplotlib.figure import Figure  # (optional: see the module's docstring)
    except ImportError as exc:
        raise PlottingUnavailable(f"drawing a timeline needs matplotlib, which is not installed: {PLOT_EXTRA}") from exc
    figure = Figure(figsize=(9, 6), dpi=100, layout="constrained")
    writes, flying, refused = figure.subplots(3, 1, sharex=True)
    figure.suptitle(title)
    starts = [drawn.start, *drawn.seconds[:-1]]
    widths = [end - start for start, end in zip(starts, drawn.seconds, strict=True)]
    ends = [drawn.start, *drawn.seconds]  # each value drawn over the interval that ends at it
    writes.step(ends, drawn.writes_per_second[:1] + drawn.writes_per_second, where="pre", color="#1f77b4")
    writes.set_ylabel("writes / s")
    flying.step(ends, drawn.in_flight[:1] + drawn.in_flight, where="pre", color="#2ca02c", label="in flight")
    flying.step(ends, drawn.limit[:1] + drawn.limit, where="pre", color="#7f7f7f", linestyle="--",
                label="allowed (adaptive concurrency)")
    flying.set_ylabel("calls")
    flying.legend(loc="upper right", fontsize="small")
    refused.bar(starts, drawn.rate_limited, width=widths, align="edge", color="#d62728")
    refused.set_ylabel("429 answers")
    refused.set_xlabel("seconds since the run began")
    for axes in (writes, flying, refused):
        axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3)
        for start, end in pause_spans(drawn):
            axes.axvspan(start, end, color=_PAUSE_COLOUR, alpha=0.3, linewidth=0)
    if pause_spans(drawn):
        writes.plot([], [], color=_PAUSE_COLOUR, alpha=0.5, linewidth=8, label="paused (Retry-After)")
        writes.legend(loc="upper right", fontsize="small")
    refused.set_xlim(drawn.start, drawn.seconds[-1] if drawn.seconds else drawn.start + 1)
    figure.savefig(target)
