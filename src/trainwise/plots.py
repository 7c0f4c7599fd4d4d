"""Plots of recorded training history and data, as matplotlib Figures.

Every function is a pure function of its inputs: it builds a `matplotlib.figure.Figure` directly
(never pyplot, so no global figure state and no backend switching), optionally saves it as a PNG,
and returns it. Returned figures still display inline in Jupyter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from numpy.typing import ArrayLike, NDArray

from trainwise.errors import TrainwiseError

__all__ = ["plot_curves", "plot_fit", "plot_history"]

# Bookkeeping columns of a history: not metrics, so they get no panel.
_SKIPPED_KEYS = frozenset({"lr", "epoch_seconds"})
# Above this many points markers only add clutter and drawing time.
_MAX_MARKED_POINTS = 50
# A loss that spans more than this factor is unreadable on a linear axis.
_LOG_SCALE_RATIO = 100.0
_PANEL_SIZE = (5.5, 3.8)


def plot_history(
    history: Mapping[str, Sequence[float]],
    path: str | Path | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """Plot per-epoch metrics: a loss panel first, then one panel per metric with its `val_` twin."""
    arrays = {key: _to_1d(values) for key, values in history.items()}
    if not any(len(values) for values in arrays.values()):
        return _message_figure("no epochs recorded", path, title=title)
    series = {key: values for key, values in arrays.items() if key not in _SKIPPED_KEYS}
    panels = _group_panels(series)
    if not panels:
        return _message_figure("no metrics recorded", path, title=title)

    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(_PANEL_SIZE[0] * ncols, _PANEL_SIZE[1] * nrows), layout="constrained")
    for i, (base, keys) in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        _draw_series(ax, {key: series[key] for key in keys}, log_rule=base in ("loss", "val_loss"))
        ax.set_xlabel("epoch")
        ax.set_ylabel(base)
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return fig


def plot_fit(
    x: ArrayLike,
    y: ArrayLike,
    x_curve: ArrayLike,
    y_curve: ArrayLike,
    path: str | Path | None = None,
    *,
    xlabel: str = "x",
    ylabel: str = "y",
    title: str | None = None,
) -> Figure:
    """Scatter 1-D regression data and draw the model's curve over it."""
    xs, ys = _to_1d(x), _to_1d(y)
    xc, yc = _to_1d(x_curve), _to_1d(y_curve)
    if len(xs) != len(ys):
        raise TrainwiseError(f"plot_fit: x has {len(xs)} points but y has {len(ys)}; pass matching arrays")
    if len(xc) != len(yc):
        raise TrainwiseError(f"plot_fit: x_curve has {len(xc)} points but y_curve has {len(yc)}; pass matching arrays")
    # The curve is drawn as a line, so unsorted x would zig-zag across the plot.
    order = np.argsort(xc, kind="stable")
    xc, yc = xc[order], yc[order]

    fig = Figure(figsize=_PANEL_SIZE, layout="constrained")
    ax = fig.add_subplot()
    # Shrink and fade dots for big data sets so the curve stays visible.
    size = 16.0 if len(xs) <= 500 else 4.0
    ax.scatter(xs, ys, s=size, alpha=0.6 if len(xs) <= 500 else 0.3, label="data", color="C0")
    ax.plot(xc, yc, color="C3", linewidth=2.0, label="model")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    _save(fig, path)
    return fig


def plot_curves(
    curves: Mapping[str, Sequence[float]],
    path: str | Path | None = None,
    *,
    ylabel: str = "loss",
    title: str | None = None,
) -> Figure:
    """Overlay several runs' per-epoch curves on one axes, one labelled line each."""
    series = {name: _to_1d(values) for name, values in curves.items()}
    if not any(len(values) for values in series.values()):
        return _message_figure("no epochs recorded", path, title=title)
    fig = Figure(figsize=_PANEL_SIZE, layout="constrained")
    ax = fig.add_subplot()
    _draw_series(ax, series, log_rule=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    _save(fig, path)
    return fig


def _group_panels(series: Mapping[str, NDArray[np.float64]]) -> list[tuple[str, list[str]]]:
    """Group keys into panels: (base metric, keys drawn on it), the loss panel first."""
    panels: dict[str, list[str]] = {}
    for key in series:
        base = key[4:] if key.startswith("val_") and key[4:] in series else key
        panels.setdefault(base, []).append(key)
    for keys in panels.values():
        # Training series first so it always takes the first colour and line slot.
        keys.sort(key=lambda k: k.startswith("val_"))
    first = "loss" if "loss" in panels else "val_loss" if "val_loss" in panels else None
    ordered = [(first, panels.pop(first))] if first is not None else []
    return ordered + list(panels.items())


def _draw_series(ax: Axes, series: Mapping[str, NDArray[np.float64]], *, log_rule: bool) -> None:
    """Draw labelled per-epoch lines with breaks at non-finite values; optionally pick a log y scale.

    Shared by the loss panel of `plot_history` and by `plot_curves` so both follow the same rules.
    """
    finite_parts: list[NDArray[np.float64]] = []
    breaks: list[int] = []
    for name, values in series.items():
        finite = np.isfinite(values)
        # NaN in the line data makes matplotlib break the line there; inf would stretch the axes.
        ydata = np.where(finite, values, np.nan)
        epochs = np.arange(1, len(values) + 1)
        label = name
        if not finite.all():
            first_bad = int(np.argmin(finite)) + 1
            label = f"{name} (non-finite from epoch {first_bad})"
            breaks.append(first_bad)
        marker = "o" if len(values) <= _MAX_MARKED_POINTS else None
        ax.plot(epochs, ydata, label=label, marker=marker, markersize=3, linewidth=1.5)
        finite_parts.append(values[finite])

    # Drawn after all series so the data lines keep the first slots in ax.lines.
    for epoch in sorted(set(breaks)):
        ax.axvline(epoch, color="red", linestyle=":", linewidth=1.0, alpha=0.7)

    finite_values = np.concatenate(finite_parts) if finite_parts else np.empty(0)
    if log_rule and _wants_log_scale(finite_values):
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.legend()


def _wants_log_scale(finite_values: NDArray[np.float64]) -> bool:
    """True when all values are positive and they span more than a factor of 100."""
    if finite_values.size == 0 or float(finite_values.min()) <= 0.0:
        return False
    return float(finite_values.max()) / float(finite_values.min()) > _LOG_SCALE_RATIO


def _to_1d(values: Any) -> NDArray[np.float64]:
    """Flatten a sequence, numpy array or torch tensor to a 1-D float array."""
    if hasattr(values, "detach"):
        # Duck-typed so that plotting never has to import torch.
        values = values.detach().cpu().numpy()
    try:
        return np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise TrainwiseError(f"cannot plot {type(values).__name__} values as numbers: {exc}") from exc


def _message_figure(message: str, path: str | Path | None, *, title: str | None) -> Figure:
    """A small figure that says why there is nothing to plot."""
    fig = Figure(figsize=_PANEL_SIZE, layout="constrained")
    fig.text(0.5, 0.5, message, ha="center", va="center", fontsize=12, color="0.4")
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return fig


def _save(fig: Figure, path: str | Path | None) -> None:
    """Save `fig` as a PNG at `path` (creating parent folders) when a path is given."""
    if path is None:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=110, bbox_inches="tight", format="png")
