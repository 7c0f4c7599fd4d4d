"""Tests for trainwise.plots: figures are checked by their numbers, not by eye."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from numpy.typing import NDArray

from trainwise.errors import TrainwiseError
from trainwise.plots import (
    InlineFigure,
    plot_compare,
    plot_confusion,
    plot_fit,
    plot_history,
    plot_image_grid,
    plot_lr_find,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _legend_texts(ax: Axes) -> list[str]:
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


def _x(line: Line2D) -> NDArray[np.float64]:
    return np.asarray(line.get_xdata(), dtype=np.float64)


def _y(line: Line2D) -> NDArray[np.float64]:
    return np.asarray(line.get_ydata(), dtype=np.float64)


def _assert_png(path: Path) -> None:
    assert path.exists()
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 1000


def test_history_panels_and_data() -> None:
    history = {
        "loss": [1.0, 0.5, 0.25],
        "val_loss": [1.1, 0.6, 0.4],
        "accuracy": [0.5, 0.7, 0.9],
        "val_accuracy": [0.4, 0.6, 0.8],
        "mae": [3.0, 2.0, 1.0],
        "lr": [0.1, 0.1, 0.01],
        "epoch_seconds": [1.0, 1.1, 0.9],
    }
    fig = plot_history(history, title="run")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3  # loss, accuracy, mae; lr and epoch_seconds skipped

    loss_ax, acc_ax, mae_ax = fig.axes
    assert loss_ax.get_ylabel() == "loss"
    assert loss_ax.get_xlabel() == "epoch"
    assert [line.get_label() for line in loss_ax.lines] == ["loss", "val_loss"]
    np.testing.assert_allclose(_x(loss_ax.lines[0]), [1, 2, 3])
    np.testing.assert_allclose(_y(loss_ax.lines[0]), [1.0, 0.5, 0.25])
    np.testing.assert_allclose(_y(loss_ax.lines[1]), [1.1, 0.6, 0.4])
    assert acc_ax.get_ylabel() == "accuracy"
    assert _legend_texts(acc_ax) == ["accuracy", "val_accuracy"]
    assert mae_ax.get_ylabel() == "mae"
    assert len(mae_ax.lines) == 1
    assert loss_ax.get_yscale() == "linear"  # ratio 4.4 < 100


def test_orphan_val_metric_gets_its_own_panel() -> None:
    fig = plot_history({"loss": [1.0, 0.9], "val_accuracy": [0.3, 0.6]})
    assert len(fig.axes) == 2
    assert fig.axes[1].get_ylabel() == "val_accuracy"
    np.testing.assert_allclose(_y(fig.axes[1].lines[0]), [0.3, 0.6])


def test_loss_panel_comes_first() -> None:
    fig = plot_history({"accuracy": [0.1, 0.2], "val_loss": [2.0, 1.0], "loss": [3.0, 1.5]})
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "accuracy"]
    assert [line.get_label() for line in fig.axes[0].lines] == ["loss", "val_loss"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1000.0, 10.0, 5.0], "log"),  # all > 0, ratio 200
        ([100.0, 1.0], "linear"),  # ratio exactly 100 is not > 100
        ([1000.0, 0.0, 5.0], "linear"),  # a zero rules log out
        ([1000.0, -1.0, 5.0], "linear"),
        ([1000.0, float("nan"), 1.0], "log"),  # non-finite values are ignored by the rule
        ([float("nan"), float("nan")], "linear"),
    ],
)
def test_loss_log_scale_rule(values: list[float], expected: str) -> None:
    fig = plot_history({"loss": values})
    assert fig.axes[0].get_yscale() == expected


def test_log_rule_counts_val_loss_too() -> None:
    fig = plot_history({"loss": [5.0, 4.0], "val_loss": [1000.0, 2.0]})
    assert fig.axes[0].get_yscale() == "log"


def test_log_rule_only_on_loss_panel() -> None:
    fig = plot_history({"loss": [1.0, 0.9], "mae": [1000.0, 1.0]})
    assert [ax.get_yscale() for ax in fig.axes] == ["linear", "linear"]


def test_non_finite_values_break_the_line_and_are_noted() -> None:
    history = {"loss": [2.0, 1.0, float("nan"), float("inf"), 0.5], "val_loss": [2.0, 1.5, 1.2, 1.1, 1.0]}
    fig = plot_history(history)
    ax = fig.axes[0]
    ydata = _y(ax.lines[0])
    finite = np.isfinite(ydata)
    assert finite.tolist() == [True, True, False, False, True]
    np.testing.assert_allclose(ydata[finite], [2.0, 1.0, 0.5])
    assert not np.isinf(ydata).any()  # inf must not stretch the axes
    labels = _legend_texts(ax)
    assert "non-finite from epoch 3" in labels[0]
    assert labels[1] == "val_loss"
    # The marker line at the first non-finite epoch comes after the data lines.
    np.testing.assert_allclose(_x(ax.lines[2]), [3, 3])


def test_non_finite_noted_on_other_panels() -> None:
    fig = plot_history({"loss": [1.0, 0.5], "accuracy": [0.5, float("nan")]})
    assert "non-finite from epoch 2" in _legend_texts(fig.axes[1])[0]


def test_history_png_written(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "dir" / "history.png"
    fig = plot_history({"loss": [1.0, 0.5, 0.3], "val_loss": [1.2, 0.7, 0.5]}, out)
    assert isinstance(fig, Figure)
    _assert_png(out)


def test_empty_history() -> None:
    histories: list[dict[str, list[float]]] = [{}, {"loss": [], "val_loss": []}]
    for history in histories:
        fig = plot_history(history)
        assert isinstance(fig, Figure)
        assert fig.axes == []
        assert any("no epochs recorded" in t.get_text() for t in fig.texts)


def test_empty_history_png(tmp_path: Path) -> None:
    out = tmp_path / "empty.png"
    plot_history({}, out)
    _assert_png(out)


def test_history_with_only_bookkeeping_keys() -> None:
    fig = plot_history({"lr": [0.1, 0.01], "epoch_seconds": [1.0, 1.0]})
    assert fig.axes == []
    assert any("no metrics" in t.get_text() for t in fig.texts)


def test_markers_only_for_short_histories() -> None:
    short = plot_history({"loss": [1.0] * 10}).axes[0].lines[0]
    long = plot_history({"loss": [1.0] * 200}).axes[0].lines[0]
    assert short.get_marker() == "o"
    assert long.get_marker() in ("None", None, "")


def test_many_epochs_is_fast(tmp_path: Path) -> None:
    n = 5000
    rng = np.random.default_rng(0)
    loss = list(np.exp(-np.linspace(0, 8, n)) + rng.random(n) * 1e-4)
    history: dict[str, list[float]] = {
        "loss": loss,
        "val_loss": loss,
        "accuracy": list(rng.random(n)),
        "lr": [0.1] * n,
    }
    start = time.perf_counter()
    fig = plot_history(history, tmp_path / "big.png")
    elapsed = time.perf_counter() - start
    assert len(_y(fig.axes[0].lines[0])) == n
    assert fig.axes[0].get_yscale() == "log"
    _assert_png(tmp_path / "big.png")
    assert elapsed < 10.0


def test_plot_fit_accepts_numpy_and_torch_shapes(tmp_path: Path) -> None:
    x = torch.linspace(-1, 1, 20).reshape(-1, 1).requires_grad_(False)
    y = 2 * x + 1
    x_curve = np.array([1.0, -1.0, 0.0])  # unsorted on purpose
    y_curve = torch.tensor([[3.0], [-1.0], [1.0]], requires_grad=True)  # needs .detach()
    out = tmp_path / "fit.png"
    fig = plot_fit(x, y, x_curve, y_curve, out, xlabel="t", ylabel="v", title="fit")
    ax = fig.axes[0]
    assert len(fig.axes) == 1
    offsets = np.asarray(ax.collections[0].get_offsets(), dtype=np.float64)
    assert offsets.shape == (20, 2)
    np.testing.assert_allclose(offsets[:, 0], x.numpy().reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(offsets[:, 1], y.numpy().reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(_x(ax.lines[0]), [-1.0, 0.0, 1.0])
    np.testing.assert_allclose(_y(ax.lines[0]), [-1.0, 1.0, 3.0])
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("t", "v", "fit")
    _assert_png(out)


def test_plot_fit_length_mismatch() -> None:
    with pytest.raises(TrainwiseError, match="x has 3 points but y has 2"):
        plot_fit([1, 2, 3], [1, 2], [1], [1])
    with pytest.raises(TrainwiseError, match="x_curve"):
        plot_fit([1], [1], [1, 2], [1])


def test_plot_compare_overlay(tmp_path: Path) -> None:
    curves = {"sgd": [1.0, 0.8, 0.7], "adam": [1.0, 0.3, float("nan")], "rmsprop": [1.0, 0.5]}
    out = tmp_path / "cmp.png"
    fig = plot_compare(curves, out, ylabel="train loss", title="optimizers")
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    data_lines = ax.lines[:3]
    assert [str(line.get_label()).split(" ")[0] for line in data_lines] == ["sgd", "adam", "rmsprop"]
    np.testing.assert_allclose(_y(data_lines[0]), [1.0, 0.8, 0.7])
    np.testing.assert_allclose(_x(data_lines[2]), [1, 2])
    assert "non-finite from epoch 3" in _legend_texts(ax)[1]
    assert ax.get_ylabel() == "train loss"
    assert ax.get_yscale() == "linear"
    _assert_png(out)


def test_plot_compare_log_scale() -> None:
    fig = plot_compare({"a": [500.0, 50.0], "b": [10.0, 1.0]})
    assert fig.axes[0].get_yscale() == "log"


def test_plot_compare_empty() -> None:
    fig = plot_compare({})
    assert fig.axes == []
    assert any("no epochs recorded" in t.get_text() for t in fig.texts)


def test_figures_are_independent_of_pyplot() -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plot_history({"loss": [1.0, math.e]})
    assert plt.get_fignums() == before


# --- confusion matrix and image grid ----------------------------------------------------------------


def test_plot_confusion_counts_labels_and_shares(tmp_path: Path) -> None:
    matrix = [[5, 1, 0], [0, 0, 0], [2, 0, 8]]
    fig = plot_confusion(matrix, ["cat", "dog", "bird"], tmp_path / "confusion.png", title="val")
    _assert_png(tmp_path / "confusion.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog", "bird"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cat", "dog", "bird"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("predicted", "true", "val")
    # every cell shows its count, row by row
    assert [t.get_text() for t in ax.texts] == ["5", "1", "0", "0", "0", "0", "2", "0", "8"]
    # colours are the share of the true class; a class with no samples is all zero, not NaN
    shares = np.asarray(ax.images[0].get_array())
    np.testing.assert_allclose(shares, [[5 / 6, 1 / 6, 0], [0, 0, 0], [0.2, 0, 0.8]])


def test_plot_confusion_many_classes_are_not_annotated() -> None:
    fig = plot_confusion(np.eye(25, dtype=int), [str(i) for i in range(25)])
    assert len(fig.axes[0].texts) == 0


def test_plot_confusion_rejects_bad_shapes() -> None:
    with pytest.raises(TrainwiseError, match="square"):
        plot_confusion([[1, 2, 3]], ["a"])
    with pytest.raises(TrainwiseError, match="2 classes but 3 class names"):
        plot_confusion([[1, 0], [0, 1]], ["a", "b", "c"])


@pytest.mark.parametrize("shape", [(5, 6, 7), (5, 1, 6, 7), (5, 3, 6, 7)])
def test_plot_image_grid(shape: tuple[int, ...], tmp_path: Path) -> None:
    images = torch.rand(shape) * 255  # any value range: raw pixels
    titles = [f"true {i}\npredicted {i + 1}" for i in range(5)]
    fig = plot_image_grid(images, titles, tmp_path / "grid.png")
    _assert_png(tmp_path / "grid.png")
    drawn = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in drawn] == titles
    assert drawn[0].get_gridspec().get_geometry() == (2, 4)  # four columns, as many rows as needed
    first = np.asarray(drawn[0].images[0].get_array())
    if shape[1] == 3:  # RGB channels last, stretched to [0, 1]
        assert first.shape == (6, 7, 3) and first.min() == 0.0 and first.max() == 1.0
    else:
        np.testing.assert_allclose(first, images[0].reshape(6, 7).numpy(), rtol=1e-6)


def test_plot_image_grid_empty_and_mismatch() -> None:
    fig = plot_image_grid(np.zeros((0, 4, 4)), [])
    assert any("no images" in t.get_text() for t in fig.texts)
    with pytest.raises(TrainwiseError, match="2 images but 1 titles"):
        plot_image_grid(np.zeros((2, 4, 4)), ["a"])
    with pytest.raises(TrainwiseError, match="channels"):
        plot_image_grid(np.zeros((2, 5, 4, 4)), ["a", "b"])


def test_every_figure_shows_itself_in_jupyter_as_one_png(tmp_path: Path) -> None:
    from IPython.core.formatters import DisplayFormatter

    figures = [
        plot_history({"loss": [3.0, 2.0, 1.0], "val_loss": [3.5, 2.5, 1.5]}),
        plot_fit([1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 3.0], [2.0, 6.0]),
        plot_lr_find([1e-3, 1e-2, 1e-1], [3.0, 2.0, 9.0], [3.0, 2.0, 9.0], 1e-2),
        plot_compare({"a": [3.0, 2.0], "b": [4.0, 1.0]}),
        plot_confusion([[3, 1], [0, 4]], ["cat", "dog"]),
        plot_image_grid(np.zeros((2, 4, 4)), ["a", "b"]),
    ]
    for figure in figures:
        assert isinstance(figure, InlineFigure)
        data, _ = DisplayFormatter().format(figure)
        # no %matplotlib inline needed, and one image only: no HTML or SVG twin
        assert set(data) == {"text/plain", "image/png"}
        assert data["image/png"].startswith(PNG_SIGNATURE) and len(data["image/png"]) > 1000
    path = tmp_path / "history.png"
    figure = plot_history({"loss": [3.0, 2.0, 1.0]}, path)
    _assert_png(path)
    # the displayed image is the saved one (same size, same resolution)
    assert figure._repr_png_() == path.read_bytes()


def test_inline_png_belongs_to_no_pyplot_figure_manager() -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    figure = plot_history({"loss": [1.0, 0.5]})
    figure._repr_png_()
    assert plt.get_fignums() == before  # the inline backend's end-of-cell flush cannot show it again
