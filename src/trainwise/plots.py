"""Plots of recorded training history and data, as matplotlib Figures.

Every function is a pure function of its inputs: it builds a `matplotlib.figure.Figure` directly
(never pyplot, so no global figure state and no backend switching), optionally saves it as a PNG,
and returns it. The figures are `InlineFigure`s: in Jupyter they show as a PNG by themselves, with no
`%matplotlib inline`, and only once (IPython calls `_repr_png_` once per displayed value).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from numpy.typing import ArrayLike, NDArray

from trainwise.errors import TrainwiseError

__all__ = [
    "InlineFigure",
    "plot_compare",
    "plot_confusion",
    "plot_fit",
    "plot_history",
    "plot_image_grid",
    "plot_lr_find",
]

# Bookkeeping columns of a history: not metrics, so they get no panel.
_SKIPPED_KEYS = frozenset({"lr", "epoch_seconds"})
# Above this many points markers only add clutter and drawing time.
_MAX_MARKED_POINTS = 50
# A loss that spans more than this factor is unreadable on a linear axis.
_LOG_SCALE_RATIO = 100.0
_PANEL_SIZE = (5.5, 3.8)
_PNG_DPI = 110


class InlineFigure(Figure):
    """A matplotlib Figure that displays itself in Jupyter as a PNG (the same image `_save` writes).

    It belongs to no pyplot figure manager, so the inline backend never shows it a second time at the end
    of the cell; when that backend has registered its own PNG formatter for Figure, IPython uses that one
    instead of `_repr_png_`, still once.
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, dpi=_PNG_DPI, bbox_inches="tight", format="png")
        return buffer.getvalue()


def plot_history(
    history: Mapping[str, Sequence[float]],
    path: str | Path | None = None,
    *,
    title: str | None = None,
    validations: Mapping[str, Sequence[float]] | None = None,
) -> Figure:
    """Plot per-epoch metrics: a loss panel first, then one panel per metric with its `val_` twin.

    Args:
        history: each logged key's values per epoch (FitResult.history, a run's metrics.csv).
        path: also save the figure there as a PNG.
        title: the figure's title.
        validations: fit(val_every_steps=N)'s validations (FitResult.validations, validations.csv): the val_
            curves are drawn from these, at their (fractional) epochs.
    """
    arrays = {key: _to_1d(values) for key, values in history.items()}
    at: dict[str, NDArray[np.float64]] = {}
    if validations and "epoch" in validations:
        for key, values in validations.items():
            if key.startswith("val_") and key in arrays:
                arrays[key], at[key] = _to_1d(values), _to_1d(validations["epoch"])
    if not any(len(values) for values in arrays.values()):
        return _message_figure("no epochs recorded", path, title=title)
    series = {key: values for key, values in arrays.items() if key not in _SKIPPED_KEYS}
    panels = _group_panels(series)
    if not panels:
        return _message_figure("no metrics recorded", path, title=title)

    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    fig = InlineFigure(figsize=(_PANEL_SIZE[0] * ncols, _PANEL_SIZE[1] * nrows), layout="constrained")
    for i, (base, keys) in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        _draw_series(ax, {key: series[key] for key in keys}, log_rule=base in ("loss", "val_loss"), at=at)
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

    fig = InlineFigure(figsize=_PANEL_SIZE, layout="constrained")
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


def plot_lr_find(
    lrs: Sequence[float],
    losses: Sequence[float],
    smoothed: Sequence[float],
    suggestion: float,
    path: str | Path | None = None,
    *,
    min_lr: float | None = None,
    title: str | None = "LR finder",
) -> Figure:
    """Loss against learning rate (log x axis): the raw sweep, its smoothed curve and the suggestion."""
    x, raw, smooth = _to_1d(lrs), _to_1d(losses), _to_1d(smoothed)
    if not np.isfinite(raw).any():
        return _message_figure("no finite loss in the sweep", path, title=title)
    fig = InlineFigure(figsize=_PANEL_SIZE, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(x, np.where(np.isfinite(raw), raw, np.nan), color="0.7", linewidth=1, label="loss")
    ax.plot(x, smooth, color="C0", linewidth=2, label="smoothed")
    if min_lr is not None:
        ax.axvline(min_lr, color="0.5", linestyle=":", linewidth=1, label=f"lowest loss at {min_lr:.2g}")
    ax.axvline(suggestion, color="C3", linestyle="--", linewidth=1.5, label=f"suggested lr {suggestion:.2g}")
    ax.set_xscale("log")
    finite = smooth[np.isfinite(smooth)]
    if _wants_log_scale(finite):
        ax.set_yscale("log")
    if finite.size:  # the divergence at the end would squash the interesting part: cut it off
        low, high = float(finite.min()), min(float(finite.max()), 1.3 * float(finite[0]))
        linear = ax.get_yscale() == "linear"
        ax.set_ylim(bottom=low - 0.05 * (high - low) if linear else low / 1.2, top=high + 0.05 * (high - low))
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    ax.legend()
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


def _validated_now_and_then(name: str, values: NDArray[np.float64]) -> bool:
    """A validation series with NaN only between finite values (fit(val_every=N) validates every N epochs
    and the last), not a run whose validation turned non-finite."""
    if not name.startswith("val_") or not np.isfinite(values[-1]) or np.isinf(values).any():
        return False
    return bool(np.isnan(values).any())


def _draw_series(
    ax: Axes,
    series: Mapping[str, NDArray[np.float64]],
    *,
    log_rule: bool,
    at: Mapping[str, NDArray[np.float64]] | None = None,
) -> None:
    """Draw labelled per-epoch lines with breaks at non-finite values; optionally pick a log y scale.
    A series named in `at` is drawn at those epochs (validations within epochs), the others at 1, 2, ...

    Shared by the loss panel of `plot_history` and by `plot_compare` so both follow the same rules.
    """
    finite_parts: list[NDArray[np.float64]] = []
    breaks: list[int] = []
    for name, values in series.items():
        finite = np.isfinite(values)
        # NaN in the line data makes matplotlib break the line there; inf would stretch the axes.
        ydata = np.where(finite, values, np.nan)
        epochs = at[name] if at and name in at else np.arange(1, len(values) + 1)
        label = name
        if _validated_now_and_then(name, values):  # fit(val_every=N): NaN between validations, joined over
            epochs, ydata, values, finite = epochs[finite], values[finite], values[finite], finite[finite]
        if not finite.all():
            first_bad = epochs[int(np.argmin(finite))]
            label = f"{name} (non-finite from epoch {first_bad:g})"
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
    fig = InlineFigure(figsize=_PANEL_SIZE, layout="constrained")
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
    fig.savefig(target, dpi=_PNG_DPI, bbox_inches="tight", format="png")


# The default colour cycle has ten colours; further runs of a comparison repeat them with these dashes.
_COMPARE_LINE_STYLES: tuple[Literal["-", "--", ":", "-."], ...] = ("-", "--", ":", "-.")
# Past this many curves the legend would cover them: it moves to the right of the axes.
_COMPARE_LEGEND_INSIDE = 6


def plot_compare(
    curves: Mapping[str, Sequence[float]],
    path: str | Path | None = None,
    *,
    title: str | None = None,
    ylabel: str = "loss",
) -> Figure:
    """Overlay the loss curves of compared runs, one line per label (e.g. "optim.name=adam, optim.lr=0.01").

    Same rules as the loss panel of `plot_history`: a log y axis when the losses span orders of magnitude,
    breaks where a run turned non-finite. Beyond ten runs line styles keep the repeated colours apart.
    """
    series = {label: _to_1d(values) for label, values in curves.items()}
    if not any(len(values) for values in series.values()):
        return _message_figure("no epochs recorded", path, title=title)
    outside = len(series) > _COMPARE_LEGEND_INSIDE
    width = _PANEL_SIZE[0] * (1.7 if outside else 1.2)
    fig = InlineFigure(figsize=(width, _PANEL_SIZE[1] * 1.2), layout="constrained")
    ax = fig.add_subplot()
    _draw_series(ax, series, log_rule=True)
    for i, line in enumerate(ax.lines[: len(series)]):
        line.set_linestyle(_COMPARE_LINE_STYLES[(i // 10) % len(_COMPARE_LINE_STYLES)])
    _fit_to_stable_runs(ax, list(series.values()))
    if outside:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    _save(fig, path)
    return fig


def _fit_to_stable_runs(ax: Axes, series: Sequence[NDArray[np.float64]]) -> None:
    """Fit the y axis to the runs that stayed finite (and every run's start) when some runs diverged.

    A diverged run's last finite losses (1e30 and up) would squash the other curves into a flat line;
    this way its curve leaves through the top, and its label already says where it turned non-finite.
    """
    diverged = [not bool(np.isfinite(values).all()) for values in series]
    if not any(diverged) or all(diverged):
        return
    parts = [values for values, bad in zip(series, diverged, strict=True) if not bad]
    parts += [values[:1] for values in series]
    visible = np.concatenate(parts)
    visible = visible[np.isfinite(visible)]
    low, high = float(visible.min()), float(visible.max())
    if _wants_log_scale(visible):
        ax.set_yscale("log")
        ax.set_ylim(low / 1.5, high * 1.5)
        return
    ax.set_yscale("linear")
    pad = 0.05 * (high - low) or 0.05 * abs(high) or 1.0
    ax.set_ylim(low - pad, high + pad)


# Past this many classes the per-cell counts would be too small to read: colour only.
_CONFUSION_MAX_ANNOTATED = 20
_GRID_COLUMNS = 4


def plot_confusion(
    matrix: ArrayLike,
    class_names: Sequence[str],
    path: str | Path | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """A confusion matrix: rows are the true classes, columns the predicted ones, each cell its count.

    Cells are coloured by their share of the row, so a rare class's errors show as clearly as a common one's.
    """
    counts = np.asarray(matrix, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise TrainwiseError(f"plot_confusion: the matrix must be square, got shape {counts.shape}")
    n = counts.shape[0]
    if len(class_names) != n:
        raise TrainwiseError(f"plot_confusion: {n} classes but {len(class_names)} class names; pass one per class")
    if n == 0:
        return _message_figure("no classes", path, title=title)
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    side = min(3.0 + 0.45 * n, 12.0)
    fig = InlineFigure(figsize=(side + 1.0, side), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="share of the true class")
    ax.set_xticks(range(n), [str(name) for name in class_names], rotation=45, ha="right")
    ax.set_yticks(range(n), [str(name) for name in class_names])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= _CONFUSION_MAX_ANNOTATED:
        for i in range(n):
            for j in range(n):
                colour = "white" if shares[i, j] > 0.5 else "black"
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=8, color=colour)
    if title:
        ax.set_title(title)
    _save(fig, path)
    return fig


def plot_image_grid(
    images: ArrayLike,
    titles: Sequence[str],
    path: str | Path | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """Images in a grid of up to four columns, each with its title (e.g. "true shirt / predicted coat").

    images: (K, H, W), (K, 1, H, W) or (K, 3, H, W) (channels first, as torch stores them), any value range.
    """
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    pixels = np.asarray(images, dtype=np.float64)
    if len(pixels) != len(titles):
        raise TrainwiseError(f"plot_image_grid: {len(pixels)} images but {len(titles)} titles; pass one per image")
    if len(pixels) == 0:
        return _message_figure("no images", path, title=title)
    if pixels.ndim == 4:
        if pixels.shape[1] not in (1, 3):
            raise TrainwiseError(f"plot_image_grid: images of {pixels.shape[1]} channels; pass 1 or 3")
        pixels = pixels.transpose(0, 2, 3, 1)
    elif pixels.ndim != 3:
        raise TrainwiseError(f"plot_image_grid: expected (K, H, W) or (K, C, H, W) images, got shape {pixels.shape}")
    ncols = min(len(pixels), _GRID_COLUMNS)
    nrows = math.ceil(len(pixels) / ncols)
    fig = InlineFigure(figsize=(2.2 * ncols, 2.4 * nrows), layout="constrained")
    for i, (image, text) in enumerate(zip(pixels, titles, strict=True)):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        if image.ndim == 3 and image.shape[2] == 3:
            # imshow wants RGB floats in [0, 1]: stretch each image to that range
            low, high = float(image.min()), float(image.max())
            ax.imshow((image - low) / (high - low) if high > low else np.zeros_like(image))
        else:
            ax.imshow(image.reshape(image.shape[0], image.shape[1]), cmap="gray")
        ax.set_title(str(text), fontsize=8)
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return fig
