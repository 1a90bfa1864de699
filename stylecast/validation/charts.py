"""The loss chart of one content image, drawn by matplotlib (a bare ``Figure`` rendered by Agg,
no pyplot state): total loss per iteration (step 0 = the content image, where the optimisation
starts), the fast network's loss as a dashed line, a marker where the iterative run first beats
it, and a log y axis when the losses span more than ``WIDE_RANGE``×."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .files import write_atomically

COLOURS = {"iterative": "#2f6db5", "fast": "#e07b1a", "marker": "#666666", "grid": "#d9d9d9"}
WIDE_RANGE = 20.0  # max ÷ min of the plotted losses above which the y axis is logarithmic
SIZE_INCHES = (6.4, 3.0)  # 640 × 300 at 100 dpi, the size the HTML report shows
DPI = 200  # the PNG is drawn at twice that, for crisp lines


def wide_range(values: Sequence[float]) -> bool:
    """Whether ``values`` are all positive and span more than ``WIDE_RANGE``×."""
    return all(v > 0 for v in values) and max(values) / min(values) > WIDE_RANGE


def loss_chart(
    history: Sequence[float], baseline: float, fast: float, beats_at: int | None, title: str
) -> Figure:
    """Total loss against iteration, from ``baseline`` (the content image) through ``history``,
    with the fast network's loss and the step ``beats_at`` where the run first reaches it."""
    series = [baseline, *history]
    figure = Figure(figsize=SIZE_INCHES, layout="constrained")
    axes = figure.add_subplot()
    axes.plot(range(len(series)), series, color=COLOURS["iterative"], lw=2, label="iterative")
    axes.axhline(fast, color=COLOURS["fast"], lw=2, ls=(0, (6, 4)), label="fast network")
    if beats_at is not None:
        axes.axvline(
            beats_at,
            color=COLOURS["marker"],
            lw=1.2,
            ls=(0, (2, 3)),
            label=f"iterative beats fast (step {beats_at})",
        )
    log_scale = wide_range([*series, fast])
    if log_scale:
        axes.set_yscale("log")
    axes.set_xlim(0, max(len(series) - 1, 1))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(True, color=COLOURS["grid"], lw=0.8)
    axes.set_axisbelow(True)
    axes.set_xlabel("iteration (0 = the content image)")
    axes.set_ylabel("total loss (log scale)" if log_scale else "total loss")
    axes.set_title(title, loc="left", fontsize=10, fontweight="bold")
    axes.legend(loc="best", fontsize=8, framealpha=0.9)
    return figure


def save_chart(figure: Figure, path: Path) -> Path:
    """Write ``figure`` as a PNG (``DPI``), atomically."""
    return write_atomically(path, lambda tmp: figure.savefig(tmp, format="png", dpi=DPI))
