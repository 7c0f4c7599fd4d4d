"""Tests for trainwise.run_report: the HTML run report, read from real runs and rendered in headless Chromium."""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
import os
import re
import shutil
import statistics
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread

import trainwise
from tests.conftest import FASHION_MNIST
from trainwise.errors import TrainwiseError
from trainwise.run_report import class_scores, read_metrics, render_report, write_report

EVIL = "<script>alert(1)</script>"
T_U = [35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4]
T_C = [0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0]
# every section id in page order; the five in the middle only when the run has them
ORDER = ["config", "summary", "curves", "lr-find", "fit", "confusion", "per-class", "misclassified", "findings"]
ORDER += ["environment", "timings"]
OPTIONAL = ["lr-find", "fit", "confusion", "per-class", "misclassified"]
ALWAYS = [key for key in ORDER if key not in OPTIONAL]
# Fashion-MNIST MLP on 600 images with a 20% validation split: 2 epochs, about a second
IMAGE_LIMIT, IMAGE_VAL_SPLIT = 600, 0.2
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# every run here trains on the CPU, on any machine ("auto" would pick a GPU): the reports are read from CPU runs
CPU = "cpu"


def _section(page: str, key: str) -> str:
    """The HTML of section `key` of a report page ('' when it has none)."""
    found = re.search(rf'<section id="{key}">(.*?)</section>', page, flags=re.DOTALL)
    return found.group(1) if found else ""


def _images(text: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)]


def _per_class_rows(page: str) -> dict[str, list[str]]:
    """The per-class table of a report page as {class name (unescaped): [precision, recall, F1, support]}."""
    table = re.search(r'<div id="per-class-table">(.*?)</div>', _section(page, "per-class"), flags=re.DOTALL)
    assert table is not None
    rows = re.findall(r"<tr><th>([^<]*)</th>(<td.*?)</tr>", table.group(1))
    return {html.unescape(name): re.findall(r'<td class="num">([^<]*)</td>', cells) for name, cells in rows}


def _table_numbers(text: str) -> list[list[int]]:
    """The count cells of the confusion table, row by row."""
    rows = re.findall(r"<tr><th>[^<]*</th>(<td.*?)</tr>", text)  # not the header row: its cells are <th>
    return [[int(cell) for cell in re.findall(r'<td class="num">(\d+)</td>', row)] for row in rows]


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """W1 on raw inputs with lr='auto', a run name, feature name and config value that are all a script tag."""
    torch.manual_seed(0)
    result = trainwise.fit(
        torch.nn.Linear(1, 1),
        (torch.tensor(T_U).unsqueeze(1), torch.tensor(T_C).unsqueeze(1)),
        loss="mse",
        optimizer="sgd",
        lr="auto",
        epochs=200,
        run_dir=tmp_path_factory.mktemp("runs"),
        run_name=EVIL,
        feature_names=[EVIL],
        config={"note": EVIL, "data": {"name": "temperature"}},
        progress=False,
        doctor="quiet",
        device=CPU,
    )
    assert result.run is not None
    return result.run


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not FASHION_MNIST.exists():
        pytest.skip("install dataset-fashion-mnist (apt) for the Fashion-MNIST report")
    overrides = [
        f"data.limit={IMAGE_LIMIT}",
        f"data.val_split={IMAGE_VAL_SPLIT}",
        "data.normalize=standard",
        "train.epochs=2",
        "optim.lr=0.05",
        f"description={EVIL}",
        f"train.device={CPU}",
    ]
    result = trainwise.run_recipe("w5-corrected", overrides, run_root=tmp_path_factory.mktemp("runs"), progress=False)
    assert result.fit.run is not None
    return result.fit.run


# --- content ---------------------------------------------------------------------------------------


def test_regression_report_sections_and_plots(regression_run: Path) -> None:
    page = write_report(regression_run).read_text()
    for key in [*ALWAYS, "lr-find", "fit"]:
        assert f'<section id="{key}">' in page, key
    for key in ("confusion", "per-class", "misclassified"):
        assert f'<section id="{key}">' not in page, key
    for key in ("curves", "lr-find", "fit"):  # one PNG per plot, embedded
        (png,) = _images(_section(page, key))
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert (regression_run / "lr-find.png").read_bytes() in _images(page)  # reused, not redrawn
    summary = json.loads((regression_run / "summary.json").read_text())
    assert f"{summary['final']['loss']:.6g}" in _section(page, "summary")
    assert "unscaled-inputs" in _section(page, "findings") and "Fix: scale inputs by 0.1" in _section(page, "findings")


def test_report_needs_no_network(regression_run: Path) -> None:
    page = render_report(regression_run)
    assert not re.search(r"<(script|link|iframe)\b", page, flags=re.IGNORECASE)
    assert not re.search(r"(src|href)=\"(?!data:|#)", page)  # only data URIs and in-page anchors
    assert "url(" not in page and "@import" not in page


def test_report_escapes_every_user_string(regression_run: Path, image_run: Path) -> None:
    for run in (regression_run, image_run):
        page = render_report(run)
        assert "<script" not in page.lower()
        assert html.escape(EVIL) in _section(page, "config")  # a config value (note / description)
    page = render_report(regression_run)
    assert f"<h1>{html.escape(EVIL)}</h1>" in page  # the run name
    assert f"<title>trainwise report: {html.escape(EVIL)}</title>" in page
    assert f"[{html.escape(EVIL)}]" in _section(page, "findings")  # the feature name, as the finding's subject


def test_timings_from_metrics_csv(regression_run: Path) -> None:
    page = render_report(regression_run)
    seconds = read_metrics(regression_run)["epoch_seconds"]
    assert len(seconds) == 200
    timings = _section(page, "timings")
    for value in (statistics.fmean(seconds), statistics.median(seconds), max(seconds)):
        assert f"{value:.6g}" in timings
    environment = json.loads((regression_run / "environment.json").read_text())
    assert f"<td>{html.escape(environment['torch'])}</td>" in _section(page, "environment")


def test_image_report_confusion_and_misclassified(image_run: Path) -> None:
    page = write_report(image_run).read_text()
    for key in [*ALWAYS, "confusion", "per-class", "misclassified"]:
        assert f'<section id="{key}">' in page, key
    assert '<section id="fit">' not in page and '<section id="lr-find">' not in page
    confusion = _section(page, "confusion")
    matrix = _table_numbers(confusion)
    assert len(matrix) == 10 and all(len(row) == 10 for row in matrix)
    test_size = IMAGE_LIMIT  # data.limit caps the test split too
    assert sum(map(sum, matrix)) == test_size  # the test split (the recipe has one), every sample once
    assert matrix == json.loads((image_run / "predictions.json").read_text())["matrix"]
    # the recorded pass is the final model on the test split: the same accuracy as test_accuracy
    accuracy = sum(matrix[i][i] for i in range(10)) / test_size
    summary = json.loads((image_run / "summary.json").read_text())
    assert accuracy == pytest.approx(summary["final"]["test_accuracy"], abs=1e-9)
    assert f"test split: {test_size} samples, accuracy {accuracy:.4g}" in confusion
    assert len(_images(confusion)) == 1 and len(_images(_section(page, "misclassified"))) == 1
    # the per-class table counts the same samples; recall weighted by support is the accuracy
    rows = _per_class_rows(page)
    assert sum(int(values[3]) for name, values in rows.items() if not name.endswith(" avg")) == test_size
    assert rows["weighted avg"][1] == f"{accuracy:.4f}" and rows["weighted avg"][3] == str(test_size)
    test = _section(page, "timings")  # the recipe's test split, measured after training
    assert f"{summary['final']['test_accuracy']:.6g}" in test and "test_accuracy" in test


@pytest.fixture(scope="module")
def split_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """`trainwise fit --json` of logistic regression on 2x2 images with a test split: (run folder, printed summary)."""
    from trainwise.cli import main

    folder = tmp_path_factory.mktemp("split")
    rng = np.random.default_rng(0)
    y, y_test = np.arange(90) % 3, np.arange(60) % 3
    X, X_test = rng.normal(size=(90, 4)), rng.normal(size=(60, 4))
    X[np.arange(90), y] += 1.5  # overlapping classes: some mistakes on both splits
    X_test[np.arange(60), y_test] += 1.5
    np.savez(folder / "d.npz", X=X.reshape(90, 1, 2, 2).astype(np.float32), y=y,
             X_test=X_test.reshape(60, 1, 2, 2).astype(np.float32), y_test=y_test)  # fmt: skip
    (folder / "split.toml").write_text(
        f'name = "split"\n[data]\nname = "{folder / "d.npz"}"\n[model]\nname = "logistic"\n[loss]\n'
        'name = "cross_entropy"\n[optim]\nname = "sgd"\nlr = 0.5\n[train]\nepochs = 5\nmetrics = ["accuracy"]\n'
        'doctor = "off"\n'
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert (
            main(
                [
                    "fit",
                    "--set",
                    f"train.device={CPU}",
                    str(folder / "split.toml"),
                    "--json",
                    "--runs-dir",
                    str(folder / "runs"),
                ]
            )
            == 0
        )
    printed = json.loads(out.getvalue())
    return Path(printed["run"]), printed


def test_the_confusion_matrix_is_on_the_split_of_the_test_metrics(split_run: tuple[Path, dict[str, object]]) -> None:
    run, printed = split_run
    confusion = _section(render_report(run), "confusion")
    matrix = _table_numbers(confusion)
    assert sum(map(sum, matrix)) == 60  # the test split, not the 90 training samples
    accuracy = sum(matrix[i][i] for i in range(3)) / 60
    assert 0 < accuracy < 1
    assert accuracy == pytest.approx(printed["test"]["accuracy"], abs=1e-9)  # type: ignore[index]
    assert f"On the test split: 60 samples, accuracy {accuracy:.4g}. Rows: true class." in confusion


def test_the_report_and_the_cli_give_one_training_time(split_run: tuple[Path, dict[str, object]]) -> None:
    run, printed = split_run
    recorded = json.loads((run / "summary.json").read_text())["seconds"]
    assert recorded == sum(read_metrics(run)["epoch_seconds"]) > 0  # the epochs' time, one number
    assert printed["seconds"] == round(recorded, 3)  # what `trainwise fit` prints
    page = render_report(run)
    assert f'<tr><th>seconds</th><td class="num">{recorded:.6g}</td></tr>' in _section(page, "summary")
    assert f'<tr><th>total seconds</th><td class="num">{recorded:.6g}</td></tr>' in _section(page, "timings")


def test_class_names_are_escaped_and_never_mathtext(tmp_path: Path) -> None:
    names = [EVIL, "$\\frac{$", "ok"]  # "$\\frac{$" is broken mathtext: matplotlib would fail to draw it
    (tmp_path / "summary.json").write_text(json.dumps({"name": "by hand", "status": "completed", "final": {}}))
    matrix = [[3, 1, 0], [0, 2, 0], [1, 0, 4]]
    predictions = {"split": "training", "matrix": matrix, "class_names": names}
    (tmp_path / "predictions.json").write_text(json.dumps(predictions))
    confusion = _section(render_report(tmp_path), "confusion")
    assert _table_numbers(confusion) == matrix
    assert f"<th>{html.escape(EVIL)}</th>" in confusion and "<script" not in confusion
    assert "training split: 11 samples, accuracy 0.8182" in confusion


def _expected_row(scores: tuple[np.ndarray, ...], index: int) -> list[str]:
    """A per-class table row as the report prints it, from scikit-learn's arrays (precision, recall, F1, support)."""
    precision, recall, f1, support = scores
    return [f"{precision[index]:.4f}", f"{recall[index]:.4f}", f"{f1[index]:.4f}", str(support[index])]


def test_per_class_metrics_of_a_classifier_equal_scikit_learn(tmp_path: Path) -> None:
    from sklearn.metrics import precision_recall_fscore_support

    generator = torch.Generator().manual_seed(0)
    X, y = torch.randn(240, 4, generator=generator), torch.arange(240) % 4
    X[torch.arange(240), y] += 1.2  # overlapping classes: every class has some mistakes
    names = ["cat", "dog", EVIL, "a & b"]
    torch.manual_seed(0)
    result = trainwise.fit(torch.nn.Linear(4, 4), (X[:180], y[:180]), loss="cross_entropy", lr=0.1, epochs=3,
                           batch_size=32, val_data=(X[180:], y[180:]), class_names=names, run_dir=tmp_path,
                           metrics=["accuracy"], progress=False, doctor="off", device=CPU)  # fmt: skip
    assert result.run is not None
    with torch.no_grad():  # the recorded predictions: the final model on the validation split
        predicted = result.model(X[180:]).argmax(1).numpy()
    truth = y[180:].numpy()
    expected = precision_recall_fscore_support(truth, predicted, zero_division=0)
    recorded = json.loads((result.run / "predictions.json").read_text())
    assert recorded["split"] == "validation"
    scores = class_scores(recorded["matrix"], recorded["class_names"])
    classes = scores["classes"]
    assert [c["label"] for c in classes] == [0, 1, 2, 3] and [c["name"] for c in classes] == names
    for key, values in zip(("precision", "recall", "f1", "support"), expected, strict=True):
        assert [c[key] for c in classes] == values.tolist(), key  # exactly: ratios of the same integer counts
    assert len(set(expected[2].tolist())) == 4 and min(expected[2]) > 0 and max(expected[2]) < 1
    for average in ("macro", "weighted"):
        reference = precision_recall_fscore_support(truth, predicted, average=average, zero_division=0)
        got = [scores[average][key] for key in ("precision", "recall", "f1")]
        assert got == pytest.approx(reference[:3], rel=1e-12), average
        assert scores[average]["support"] == 60

    page = render_report(result.run)
    rows = _per_class_rows(page)
    assert list(rows) == [*names, "macro avg", "weighted avg"]
    for index, name in enumerate(names):
        assert rows[name] == _expected_row(expected, index), name
    macro = precision_recall_fscore_support(truth, predicted, average="macro", zero_division=0)
    assert rows["macro avg"] == [f"{value:.4f}" for value in macro[:3]] + ["60"]
    assert f"<th>{html.escape(EVIL)}</th>" in _section(page, "per-class") and "<script" not in page
    assert "On the validation split" in _section(page, "per-class")


def test_per_class_metrics_where_a_class_is_never_predicted_or_absent(tmp_path: Path) -> None:
    from sklearn.metrics import precision_recall_fscore_support

    # class 1 is never predicted, class 2 has no samples but is predicted, class 3 neither occurs nor is predicted
    matrix = [
        [5, 0, 1, 0, 2],
        [2, 0, 1, 0, 1],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [1, 0, 2, 0, 6],
    ]
    truth = [i for i, row in enumerate(matrix) for j, count in enumerate(row) for _ in range(count)]
    predicted = [j for row in matrix for j, count in enumerate(row) for _ in range(count)]
    expected = precision_recall_fscore_support(truth, predicted, zero_division=0)  # labels 0, 1, 2, 4
    scores = class_scores(matrix)
    assert [c["label"] for c in scores["classes"]] == [0, 1, 2, 4] and scores["left_out"] == ["3"]
    for key, values in zip(("precision", "recall", "f1", "support"), expected, strict=True):
        assert [c[key] for c in scores["classes"]] == values.tolist(), key
    macro = precision_recall_fscore_support(truth, predicted, average="macro", zero_division=0)
    assert [scores["macro"][key] for key in ("precision", "recall", "f1")] == pytest.approx(macro[:3], rel=1e-12)

    (tmp_path / "summary.json").write_text(json.dumps({"name": "by hand", "status": "completed", "final": {}}))
    (tmp_path / "predictions.json").write_text(json.dumps({"split": "test", "matrix": matrix, "class_names": None}))
    page = render_report(tmp_path)
    section, rows = _section(page, "per-class"), _per_class_rows(page)
    assert list(rows) == ["0", "1", "2", "4", "macro avg", "weighted avg"]
    assert rows["1"] == ["0.0000", "0.0000", "0.0000", "4"] and rows["2"] == ["0.0000", "0.0000", "0.0000", "0"]
    assert rows["4"] == _expected_row(expected, 3)
    assert "Never predicted (precision 0): 1." in section and "No samples here (recall 0): 2." in section
    assert "Left out, neither a label nor a prediction here: 3." in section


def test_no_per_class_table_without_samples(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(json.dumps({"name": "empty", "status": "completed", "final": {}}))
    (tmp_path / "predictions.json").write_text(json.dumps({"split": "test", "matrix": [[0, 0], [0, 0]]}))
    page = render_report(tmp_path)
    assert '<section id="confusion">' in page and '<section id="per-class">' not in page


def test_write_report_output_and_errors(regression_run: Path, tmp_path: Path) -> None:
    target = write_report(regression_run, output=tmp_path / "elsewhere" / "r.html")
    assert target.read_text() == render_report(regression_run)  # a pure function of the folder
    assert trainwise.report(regression_run) == regression_run / "report.html"
    with pytest.raises(TrainwiseError, match="not a run folder"):
        render_report(tmp_path / "elsewhere")


def test_unfinished_run_still_renders(regression_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.toml", "metrics.csv"):  # what a run holds while it trains
        shutil.copy(regression_run / name, run / name)
    with open(run / "metrics.csv", "a") as handle:
        handle.write("201,1.0,")  # a row cut short by a crash mid-write is skipped
    page = render_report(run)
    assert "has not finished" in _section(page, "summary")
    assert len(read_metrics(run)["loss"]) == 200
    assert "No environment recorded" in _section(page, "environment")


# --- in a real browser -----------------------------------------------------------------------------


def _browser() -> str:
    for name in ("/usr/bin/chromium", *BROWSERS):
        found = shutil.which(name)
        if found:
            return found
    message = f"no headless browser ({', '.join(BROWSERS)}) on PATH; apt-get install chromium"
    if os.environ.get("TRAINWISE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"TRAINWISE_REQUIRE_BROWSER=1 but {message}")
    pytest.skip(message)


def _chromium(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        _browser(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        *args,
        page.resolve().as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.mark.parametrize(
    ("fixture", "sections", "plots"),
    [
        ("regression_run", [*ALWAYS, "lr-find", "fit"], 3),  # curves, LR finder, data and fit
        ("image_run", [*ALWAYS, "confusion", "per-class", "misclassified"], 3),  # curves, confusion, image grid
    ],
)
def test_report_in_headless_chromium(
    fixture: str, sections: list[str], plots: int, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    run: Path = request.getfixturevalue(fixture)
    page = write_report(run)
    screenshot = tmp_path / "screenshot.png"
    _chromium(page, tmp_path, f"--screenshot={screenshot}", "--window-size=1280,2000")
    pixels = imread(screenshot)[..., :3]
    assert pixels.shape[:2] == (2000, 1280)
    assert float(pixels.std()) > 0.05  # not one flat colour
    non_white = float((pixels.min(axis=2) < 0.9).mean())
    assert 0.01 < non_white < 0.9, non_white  # text, tables and plots; a blank page has none

    dom = _chromium(page, tmp_path, "--dump-dom").stdout
    ids = re.findall(r'<section id="([\w-]+)"', dom)
    assert ids == [key for key in ORDER if key in sections]  # every expected section, in order, no other
    images = re.findall(r"<img [^>]*>", dom)
    assert len(images) == plots
    assert all('src="data:image/png;base64,' in tag for tag in images)
    assert "<script" not in dom  # the escaped script tags stayed text
    assert html.escape(EVIL) in dom
    assert np.isfinite(pixels).all()
