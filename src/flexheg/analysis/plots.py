"""Figures for the analysis: stability thresholds, detection times and sweep heat maps.

Every function draws with matplotlib's Agg backend and writes ``STEM.png`` and ``STEM.svg``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flexheg.analysis.stability import p_win_threshold
from flexheg.errors import InputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from flexheg.analysis.simulation import Replication
    from flexheg.analysis.sweep import SweepCell

logger = logging.getLogger(__name__)

__all__ = [
    "detection_time_figure",
    "save_figure",
    "stability_figure",
    "stability_region_figure",
    "sweep_heatmap",
]

DEFAULT_P_WIN_LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9)


def _new_figure(width: float = 7.0, height: float = 4.8) -> Figure:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # noqa: PLC0415

    return Figure(figsize=(width, height), layout="constrained")


def save_figure(figure: Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` (150 dpi) and ``stem.svg``; return both paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    # A fixed date and no software tag make the SVG output identical from run to run.
    figure.savefig(paths[0], dpi=150)
    figure.savefig(paths[1], metadata={"Date": None, "Creator": None})
    logger.debug("wrote %s", ", ".join(str(path) for path in paths))
    return paths


def stability_figure(
    stem: Path,
    *,
    p_win_levels: Sequence[float] = DEFAULT_P_WIN_LEVELS,
    u_win_max: float = 5.0,
    u_lose: float = 0.0,
) -> list[Path]:
    """Draw, for each ``P(W|D)`` level, the ``P(doom)`` above which cooperation is stable.

    For level ``q`` the curve is ``P(doom) = 1 - 1 / (U(W) * q)`` in the base model. Any point
    (``U(W)``, ``P(doom)``) above the curve is stable when the first defector wins with
    probability at most ``q``. The dashed curve (``q = 1``) bounds the region that is stable
    whatever ``P(W|D)``.
    """
    if not p_win_levels or any(not 0.0 < level <= 1.0 for level in p_win_levels):
        raise InputError("p_win_levels must be probabilities in (0, 1]; e.g. 0.5 0.7 0.9")
    if not u_win_max > 1.0:
        raise InputError(f"u_win_max must exceed 1, got {u_win_max!r}")
    u_win = np.linspace(1.0, u_win_max, 400)
    figure = _new_figure()
    axes = figure.subplots()
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    for index, level in enumerate(sorted(p_win_levels, reverse=True)):
        curve = _p_doom_curve(u_win, level, u_lose)
        axes.plot(u_win, curve, color=colors[index % len(colors)], label=f"P(W|D) = {level:g}")
    axes.plot(u_win, _p_doom_curve(u_win, 1.0, u_lose), "k--", label="any P(W|D)")
    axes.scatter([1.5], [0.1], color="black", zorder=3)
    axes.annotate(
        "U(W) = 1.5, P(doom) = 0.1\nthreshold 0.74",
        (1.5, 0.1),
        textcoords="offset points",
        xytext=(10, 12),
        fontsize=8,
    )
    axes.set_xlim(1.0, u_win_max)
    axes.set_ylim(0.0, 1.0)
    axes.set_xlabel("U(W): value of winning the race relative to cooperation")
    axes.set_ylabel("P(doom): probability of catastrophe in a race")
    title = "Cooperation is stable above each curve"
    if u_lose:
        title += f" (losing worth {u_lose:g})"
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    return save_figure(figure, stem)


def _p_doom_curve(u_win: np.ndarray[Any, Any], level: float, u_lose: float) -> np.ndarray[Any, Any]:
    # Solve (1 - d) * (U * q + L * (1 - q)) = 1 for d, clipped to [0, 1].
    value = u_win * level + u_lose * (1.0 - level)
    curve: np.ndarray[Any, Any] = np.clip(1.0 - 1.0 / value, 0.0, 1.0)
    return curve


def stability_region_figure(stem: Path, *, u_win_max: float = 5.0, u_lose: float = 0.0) -> list[Path]:
    """Draw the ``P(W|D)`` threshold as a heat map over ``U(W)`` and ``P(doom)``."""
    if not u_win_max > 1.0:
        raise InputError(f"u_win_max must exceed 1, got {u_win_max!r}")
    u_win = np.linspace(1.0, u_win_max, 200)
    p_doom = np.linspace(0.0, 0.99, 200)
    grid = np.array([[min(p_win_threshold(u, d, u_lose=u_lose), 1.0) for u in u_win] for d in p_doom])
    figure = _new_figure()
    axes = figure.subplots()
    mesh = axes.pcolormesh(u_win, p_doom, grid, cmap="viridis", vmin=0.0, vmax=1.0, shading="auto")
    contours = axes.contour(u_win, p_doom, grid, levels=[0.5, 0.6, 0.7, 0.8, 0.9], colors="white")
    axes.clabel(contours, fmt="%.1f", fontsize=8)
    figure.colorbar(mesh, ax=axes, label="highest stable P(W|D) (1 = any)")
    axes.set_xlabel("U(W)")
    axes.set_ylabel("P(doom)")
    axes.set_title("Threshold on the first defector's chance of winning")
    return save_figure(figure, stem)


def detection_time_figure(
    stem: Path, runs: Mapping[str, Sequence[Replication]], *, horizon_months: float
) -> list[Path]:
    """Draw the share of replications detected by each month, one curve per label."""
    if not runs:
        raise InputError("no runs to plot; give at least one labelled set of replications")
    figure = _new_figure()
    axes = figure.subplots()
    for label, results in runs.items():
        times = np.sort([r.months_to_detection for r in results if r.detected])
        total = len(results)
        if total == 0:
            continue
        xs = np.concatenate(([0.0], times, [horizon_months]))
        ys = np.concatenate(([0.0], np.arange(1, times.size + 1) / total, [times.size / total]))
        axes.step(xs, ys, where="post", label=f"{label} ({times.size / total:.0%} detected)")
    axes.set_xlim(0.0, horizon_months)
    axes.set_ylim(0.0, 1.02)
    axes.set_xlabel("months from the start of the defection")
    axes.set_ylabel("share of replications detected")
    axes.set_title("Time to detection")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    return save_figure(figure, stem)


def sweep_heatmap(stem: Path, cells: Sequence[SweepCell], *, x: str, y: str, metric: str) -> list[Path]:
    """Draw ``metric`` (a key of :meth:`Summary.to_dict`) over the two swept parameters."""
    if not cells:
        raise InputError("the sweep has no cells to plot")

    xs = sorted({cell.values[x] for cell in cells})
    ys = sorted({cell.values[y] for cell in cells})
    grid = np.full((len(ys), len(xs)), math.nan)
    for cell in cells:
        value = cell.summary.to_dict().get(metric)
        if not isinstance(value, int | float):
            raise InputError(f"metric {metric!r} is not a number in the sweep summary")
        grid[ys.index(cell.values[y]), xs.index(cell.values[x])] = float(value)

    figure = _new_figure()
    axes = figure.subplots()
    image = axes.imshow(grid, origin="lower", aspect="auto", cmap="magma")
    axes.set_xticks(range(len(xs)), [f"{value:g}" for value in xs])
    axes.set_yticks(range(len(ys)), [f"{value:g}" for value in ys])
    for row in range(len(ys)):
        for column in range(len(xs)):
            axes.text(
                column,
                row,
                f"{grid[row, column]:.3g}",
                ha="center",
                va="center",
                color="white" if grid[row, column] < np.nanmean(grid) else "black",
                fontsize=8,
            )

    figure.colorbar(image, ax=axes, label=metric)
    axes.set_xlabel(x)
    axes.set_ylabel(y)
    axes.set_title(f"{metric} over {x} and {y}")
    return save_figure(figure, stem)
