"""Tests for trainwise.runs: run folders, the sqlite index, and the runs table."""

from __future__ import annotations

import json
import math
import os
import platform
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import trainwise
from trainwise.errors import TrainwiseError
from trainwise.loop import fit
from trainwise.runs import RunIndex, RunRow, format_runs_table, new_run_dir, runs_root

NOW = datetime(2024, 3, 5, 14, 7, 9)


def _set_started(root: Path, run_id: str, started: str) -> None:
    """Back-date a run so ordering tests do not depend on the clock."""
    with sqlite3.connect(root / "index.sqlite") as conn:
        conn.execute("UPDATE runs SET started = ? WHERE id = ?", (started, run_id))
    conn.close()


# --- runs_root -------------------------------------------------------------------------------------


def test_runs_root_honours_trainwise_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRAINWISE_HOME", str(tmp_path / "home"))
    assert runs_root() == tmp_path / "home" / "runs"


def test_runs_root_defaults_to_cwd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TRAINWISE_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert runs_root() == Path.cwd() / "runs"


# --- new_run_dir -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("MNIST MLP", "mnist-mlp"),
        ("linreg_v1.2", "linreg_v1.2"),
        ("..hidden", "hidden"),
        ("--x", "x"),
        ("", "run"),
        ("...", "run"),
        ("ünïcode!", "n-code-"),
        ("a" * 100, "a" * 60),
    ],
)
def test_slug(tmp_path: Path, name: str, slug: str) -> None:
    run = new_run_dir(tmp_path, name, now=NOW)
    assert run.name == f"20240305-140709-{slug}"
    assert run.is_dir()
    assert run.parent == tmp_path


def test_same_second_gets_numbered_suffix(tmp_path: Path) -> None:
    first = new_run_dir(tmp_path, "mnist", now=NOW)
    second = new_run_dir(tmp_path, "mnist", now=NOW)
    third = new_run_dir(tmp_path, "mnist", now=NOW)
    assert first.name == "20240305-140709-mnist"
    assert second.name == "20240305-140709-mnist-2"
    assert third.name == "20240305-140709-mnist-3"
    assert len({first, second, third}) == 3


def test_new_run_dir_creates_root(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b"
    run = new_run_dir(root, "x", now=NOW)
    assert run.parent == root and run.is_dir()


def test_new_run_dir_uses_clock_by_default(tmp_path: Path) -> None:
    run = new_run_dir(tmp_path, "x")
    stamp = datetime.strptime(run.name[:15], "%Y%m%d-%H%M%S")
    assert abs((datetime.now() - stamp).total_seconds()) < 60


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "..", "a/../../b", "../../etc", "x/y", "\\..\\z"])
def test_run_dir_cannot_escape_root(tmp_path: Path, name: str) -> None:
    root = tmp_path / "runs"
    run = new_run_dir(root, name, now=NOW)
    assert run.resolve().parent == root.resolve()
    assert run.is_dir()
    # Nothing was created beside root.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


# --- RunIndex --------------------------------------------------------------------------------------


def test_index_is_created_on_first_use(tmp_path: Path) -> None:
    root = tmp_path / "new"
    index = RunIndex(root)
    assert index.list() == []
    assert not (root / "index.sqlite").exists()  # reading does not create it
    index.start(new_run_dir(root, "a", now=NOW), "linreg")
    assert (root / "index.sqlite").exists()


def test_start_finish_round_trip_with_nan(tmp_path: Path) -> None:
    index = RunIndex(tmp_path)
    run = new_run_dir(tmp_path, "mnist", now=NOW)
    row = index.start(run, "mnist_mlp")
    assert isinstance(row, RunRow)
    assert (row.id, row.recipe, row.status, row.ended, row.metrics) == (
        run.name,
        "mnist_mlp",
        "running",
        None,
        {},
    )
    assert row.path == run.resolve()
    assert datetime.fromisoformat(row.started).microsecond == 0
    assert index.list() == [row]

    index.finish(run.name, "failed", {"loss": float("nan"), "val_loss": float("inf"), "accuracy": 0.91})
    (got,) = index.list()
    assert got.status == "failed"
    assert got.ended is not None
    assert datetime.fromisoformat(got.ended) >= datetime.fromisoformat(got.started)
    assert set(got.metrics) == {"loss", "val_loss", "accuracy"}
    assert math.isnan(got.metrics["loss"]) and math.isnan(got.metrics["val_loss"])
    assert got.metrics["accuracy"] == pytest.approx(0.91)
    # Stored as valid JSON with null, not the non-standard NaN token.
    with sqlite3.connect(tmp_path / "index.sqlite") as conn:
        (text,) = conn.execute("SELECT metrics FROM runs").fetchone()
    conn.close()
    assert "NaN" not in text and "Infinity" not in text and "null" in text


@pytest.mark.parametrize("status", ["completed", "stopped", "failed", "interrupted"])
def test_finish_accepts_final_statuses(tmp_path: Path, status: str) -> None:
    index = RunIndex(tmp_path)
    run = new_run_dir(tmp_path, "r", now=NOW)
    index.start(run, "x")
    index.finish(run.name, status, {"loss": 0.1})
    assert index.get(run.name).status == status


@pytest.mark.parametrize("status", ["done", "COMPLETED", "", "running"])
def test_finish_rejects_invalid_status(tmp_path: Path, status: str) -> None:
    index = RunIndex(tmp_path)
    run = new_run_dir(tmp_path, "r", now=NOW)
    index.start(run, "x")
    with pytest.raises(ValueError, match="status"):
        index.finish(run.name, status, {})
    assert index.get(run.name).status == "running"


def test_finish_unknown_run(tmp_path: Path) -> None:
    index = RunIndex(tmp_path)
    index.start(new_run_dir(tmp_path, "r", now=NOW), "x")
    with pytest.raises(TrainwiseError, match="no run 'nope'"):
        index.finish("nope", "completed", {})


def _three_runs(root: Path) -> tuple[RunIndex, list[str]]:
    index = RunIndex(root)
    ids = []
    for name, started in [
        ("alpha", "2024-01-01T10:00:00"),
        ("beta", "2024-01-03T10:00:00"),
        ("gamma", "2024-01-02T10:00:00"),
    ]:
        run = new_run_dir(root, name, now=datetime.fromisoformat(started))
        index.start(run, f"recipe_{name}")
        _set_started(root, run.name, started)
        ids.append(run.name)
    return index, ids


def test_list_newest_first(tmp_path: Path) -> None:
    index, (alpha, beta, gamma) = _three_runs(tmp_path)
    assert [row.id for row in index.list()] == [beta, gamma, alpha]


def test_list_ties_broken_by_id(tmp_path: Path) -> None:
    index = RunIndex(tmp_path)
    a = new_run_dir(tmp_path, "a", now=NOW)
    b = new_run_dir(tmp_path, "b", now=NOW)
    for run in (a, b):
        index.start(run, "x")
        _set_started(tmp_path, run.name, "2024-01-01T00:00:00")
    assert [row.id for row in index.list()] == [b.name, a.name]


def test_get_by_id_prefix_latest(tmp_path: Path) -> None:
    index, (alpha, beta, gamma) = _three_runs(tmp_path)
    assert index.get(alpha).id == alpha
    assert index.get("20240103").id == beta
    assert index.get("20240102-1").id == gamma
    assert index.get("latest").id == beta


def test_get_by_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index, (alpha, _, _) = _three_runs(tmp_path / "runs")
    assert index.get(str(tmp_path / "runs" / alpha)).id == alpha
    assert index.get(str(tmp_path / "runs" / alpha) + "/").id == alpha
    monkeypatch.chdir(tmp_path)
    assert index.get(f"runs/{alpha}").recipe == "recipe_alpha"
    monkeypatch.chdir(tmp_path / "runs")
    assert index.get(f"./{alpha}").id == alpha


def test_get_by_path_outside_root_not_in_index(tmp_path: Path) -> None:
    index, _ = _three_runs(tmp_path / "runs")
    elsewhere = tmp_path / "copied" / "my-run"
    elsewhere.mkdir(parents=True)
    (elsewhere / "config.toml").write_text("recipe = 'x'\n")
    mtime = time.mktime(datetime(2023, 6, 1, 12, 30, 45).timetuple())
    os.utime(elsewhere, (mtime, mtime))
    row = index.get(str(elsewhere))
    assert row == RunRow(
        id="my-run",
        recipe="",
        path=elsewhere.resolve(),
        started="2023-06-01T12:30:45",
        ended=None,
        status="unknown",
        metrics={},
    )


def test_get_by_path_outside_root_in_index(tmp_path: Path) -> None:
    index = RunIndex(tmp_path / "runs")
    elsewhere = new_run_dir(tmp_path / "other", "far", now=NOW)
    index.start(elsewhere, "far_recipe")
    assert index.get(str(elsewhere)).recipe == "far_recipe"


def test_get_path_without_config_is_unknown(tmp_path: Path) -> None:
    index, _ = _three_runs(tmp_path / "runs")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainwiseError, match="no run"):
        index.get(str(tmp_path / "empty"))


def test_get_unknown(tmp_path: Path) -> None:
    index, _ = _three_runs(tmp_path)
    for ref in ("nope", "2025", ""):
        with pytest.raises(TrainwiseError) as info:
            index.get(ref)
        assert str(info.value) == f"no run '{ref}' in {tmp_path}; `trainwise runs` lists them"


def test_get_latest_when_empty(tmp_path: Path) -> None:
    with pytest.raises(TrainwiseError, match="no runs"):
        RunIndex(tmp_path).get("latest")


def test_get_ambiguous_prefix_lists_candidates(tmp_path: Path) -> None:
    index, (alpha, beta, gamma) = _three_runs(tmp_path)
    with pytest.raises(TrainwiseError, match="ambiguous") as info:
        index.get("2024010")
    message = str(info.value)
    assert alpha in message and beta in message and gamma in message


def test_restart_same_folder_resets_row(tmp_path: Path) -> None:
    index = RunIndex(tmp_path)
    run = new_run_dir(tmp_path, "r", now=NOW)
    index.start(run, "x")
    index.finish(run.name, "completed", {"loss": 1.0})
    index.start(run, "x")
    (row,) = index.list()
    assert (row.status, row.ended, row.metrics) == ("running", None, {})


def test_two_index_objects_share_the_db(tmp_path: Path) -> None:
    writer, reader = RunIndex(tmp_path), RunIndex(tmp_path)
    run = new_run_dir(tmp_path, "r", now=NOW)
    writer.start(run, "x")
    writer.finish(run.name, "stopped", {"loss": 0.5})
    assert reader.get("latest").status == "stopped"


# --- format_runs_table -----------------------------------------------------------------------------


def _row(run_id: str, metrics: dict[str, float], ended: str | None = "2024-01-01T11:02:03") -> RunRow:
    return RunRow(
        id=run_id,
        recipe="r",
        path=Path("/tmp") / run_id,
        started="2024-01-01T10:00:00",
        ended=ended,
        status="completed" if ended else "running",
        metrics=metrics,
    )


def test_table_shape_and_metric_columns() -> None:
    rows = [
        _row("a", {"loss": 0.123456, "val_loss": float("nan"), "accuracy": 0.9, "test_accuracy": 0.8}),
        _row("b", {"loss": 1.5}, ended=None),
        _row("c", {}),
    ]
    table = format_runs_table(rows)
    headers = [str(col.header) for col in table.columns]
    assert headers == ["id", "recipe", "status", "started", "duration", "loss", "val_loss", "accuracy"]
    assert table.row_count == 3
    loss_cells = list(table.columns[5].cells)
    assert [str(c) for c in loss_cells] == ["0.1235", "1.5", ""]
    assert str(next(iter(table.columns[6].cells))) == "nan"
    assert [str(c) for c in table.columns[4].cells] == ["1h02m", "", "1h02m"]
    assert str(next(iter(table.columns[3].cells))) == "2024-01-01 10:00:00"


def test_table_other_metrics_and_empty() -> None:
    table = format_runs_table([_row("a", {"mse": 2.0, "r2": 0.5})])
    assert [str(col.header) for col in table.columns][5:] == ["mse", "r2"]
    empty = format_runs_table([])
    assert len(empty.columns) == 5 and empty.row_count == 0


def test_table_renders() -> None:
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(format_runs_table([_row("20240101-100000-x", {"loss": 0.25}), _row("b", {})]))
    text = console.export_text()
    assert "20240101-100000-x" in text and "0.25" in text


# --- what RunRecorder records for the report -------------------------------------------------------


def _blobs(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three overlapping 2-D blobs, labels 0, 1, 2 in turn: a classifier gets most, not all, right."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centers = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    return centers[y] + torch.randn(n, 2, generator=generator), y


def _confusion(predicted: torch.Tensor, true: torch.Tensor, n: int) -> list[list[int]]:
    matrix = [[0] * n for _ in range(n)]
    for t, p in zip(true.tolist(), predicted.tolist(), strict=True):
        matrix[t][p] += 1
    return matrix


def _fit(tmp_path: Path, model: torch.nn.Module, data: Any, **kwargs: Any) -> Any:
    torch.manual_seed(0)
    options: dict[str, Any] = {"loss": "cross_entropy", "optimizer": "sgd", "lr": 0.1, "epochs": 5, "device": "cpu"}
    return fit(model, data, run_dir=tmp_path, progress=False, doctor="off", **{**options, **kwargs})


def test_environment_recorded_and_no_predictions_for_regression(tmp_path: Path) -> None:
    X = torch.linspace(0, 1, 20).unsqueeze(1)
    result = _fit(tmp_path, torch.nn.Linear(1, 1), (X, 2 * X), loss="mse")
    environment = json.loads((result.run / "environment.json").read_text())
    assert environment == {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "trainwise": trainwise.__version__,
        "platform": platform.platform(),
        "device": "cpu",
        "cuda_device": None,
        "threads": torch.get_num_threads(),
    }
    assert not (result.run / "predictions.json").exists()  # regression: no classes
    assert not (result.run / "misclassified.safetensors").exists()


def test_confusion_matrix_on_the_validation_split(tmp_path: Path) -> None:
    X, y = _blobs(90)
    X_val, y_val = _blobs(45, seed=1)
    result = _fit(tmp_path, torch.nn.Linear(2, 3), (X, y), val_data=(X_val, y_val))
    recorded = json.loads((result.run / "predictions.json").read_text())
    assert (recorded["split"], recorded["class_names"]) == ("validation", None)
    expected = _confusion(result.predict(X_val).argmax(dim=1), y_val, 3)
    assert recorded["matrix"] == expected
    assert sum(map(sum, expected)) == 45
    correct = sum(expected[i][i] for i in range(3))
    assert 0 < correct < 45  # a real mix of right and wrong, so the comparison means something
    assert not (result.run / "misclassified.safetensors").exists()  # not images


def test_confusion_matrix_on_the_training_split_when_there_is_no_validation(tmp_path: Path) -> None:
    X, y = _blobs(60)
    result = _fit(tmp_path, torch.nn.Linear(2, 3), (X, y), batch_size=16, normalize="standard")
    recorded = json.loads((result.run / "predictions.json").read_text())
    assert recorded["split"] == "training"
    assert recorded["matrix"] == _confusion(result.predict(X).argmax(dim=1), y, 3)  # predict applies the scaling


def test_class_names_and_unnamed_extra_outputs(tmp_path: Path) -> None:
    from trainwise.data import prepare_data
    from trainwise.recorder import RunRecorder

    X, y = _blobs(60)
    y = y.clamp(max=1)  # two classes, a model with three outputs (like W5's 18 outputs for 10 classes)
    prepared = prepare_data((X, y), batch_size=None, device=torch.device("cpu"))
    recorder = RunRecorder(tmp_path, "named", None, prepared, class_names=["cat", "dog"])
    torch.manual_seed(0)
    fit(
        torch.nn.Linear(2, 3),
        (X, y),
        loss="cross_entropy",
        lr=0.1,
        epochs=3,
        callbacks=[recorder],
        progress=False,
        device="cpu",
    )
    assert recorder.path is not None
    recorded = json.loads((recorder.path / "predictions.json").read_text())
    assert recorded["class_names"] == ["cat", "dog", "2"]
    assert len(recorded["matrix"]) == 3 and sum(map(sum, recorded["matrix"])) == 60


def test_binary_single_logit(tmp_path: Path) -> None:
    X, y = _blobs(60)
    target = (y == 1).float().unsqueeze(1)  # 0/1 floats against one logit, as bce_with_logits takes them
    result = _fit(tmp_path, torch.nn.Linear(2, 1), (X, target), loss="bce_with_logits")
    recorded = json.loads((result.run / "predictions.json").read_text())
    predicted = (result.predict(X).reshape(-1) > 0).long()
    assert recorded["matrix"] == _confusion(predicted, target.reshape(-1).long(), 2)


def test_misclassified_images_in_raw_scale(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    generator = torch.Generator().manual_seed(0)
    X = torch.rand(64, 1, 6, 6, generator=generator) * 255  # raw pixels, 0..255
    y = torch.randint(0, 2, (64,), generator=generator)  # random labels: plenty of mistakes
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 2))
    result = _fit(tmp_path, model, (X, y), normalize="standard", lr=1e-3, epochs=1)
    stored = load_file(str(result.run / "misclassified.safetensors"))
    predicted = result.predict(X).argmax(dim=1)
    wrong = (predicted != y).nonzero().reshape(-1)
    assert len(wrong) > 16
    assert stored["images"].shape == (16, 1, 6, 6)  # at most 16, the first ones in the split's order
    torch.testing.assert_close(stored["images"], X[wrong[:16]], rtol=1e-5, atol=1e-3)  # scaling undone
    assert stored["true"].tolist() == y[wrong[:16]].tolist()
    assert stored["predicted"].tolist() == predicted[wrong[:16]].tolist()


# --- names and paths stay inside the runs folder (docs/reliability.md) ------------------------------


@pytest.mark.parametrize("name", ["../../escape", "/tmp/escape", "..", "a/../../b", "~/x", "C:\\x"])
def test_a_config_name_cannot_put_its_run_outside_the_runs_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    from trainwise.cli import main

    config = tmp_path / "evil.toml"
    text = (Path(trainwise.__file__).parent / "recipes" / "w1-normalized.toml").read_text()
    config.write_text(f"name = {json.dumps(name)}\n{text}")
    root = tmp_path / "inside" / "runs"
    # on the CPU, on any machine ("auto" would pick a GPU)
    assert main(["fit", "--set", "train.device=cpu", str(config), "--quiet", "--runs-dir", str(root), "--set",
                 "train.epochs=2"]) == 0  # fmt: skip
    (run,) = [path for path in root.iterdir() if path.is_dir()]
    assert run.parent == root and "/" not in run.name and "\\" not in run.name and run.name[0] != "."
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.toml", "inside"]  # nothing written beside it
    assert RunIndex(root).get(run.name).recipe == name  # the name itself is kept, as data


@pytest.mark.parametrize("ref", ["../../etc", "/etc", "..", "../runs/../.."])
def test_a_run_reference_that_is_a_path_finds_only_run_folders(tmp_path: Path, ref: str) -> None:
    root = tmp_path / "runs"
    new_run_dir(root, "a", now=NOW)
    with pytest.raises(TrainwiseError, match=r"^no run '"):
        RunIndex(root).get(ref)


# --- a recipe with a test split records its confusion matrix there ---------------------------------


def _image_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """2x2 one-channel images of three overlapping classes (the class shifts one pixel), raw scale."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.normal(size=(n, 1, 2, 2)) * 2 + 10
    X.reshape(n, 4)[np.arange(n), y] += 2.5
    return X.astype(np.float32), y.astype(np.int64)


def _split_config(tmp_path: Path, *, test: bool = True) -> Any:
    from trainwise.config import load_config

    (X, y), (X_test, y_test) = _image_split(90, 0), _image_split(60, 1)
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "images.npz"
    np.savez(data, X=X, y=y, X_test=X_test, y_test=y_test, class_names=np.array(["a", "b", "c"]))
    config = tmp_path / "images.toml"
    config.write_text(
        f'name = "images"\n[data]\nname = "{data}"\nnormalize = "standard"\ntest = {str(test).lower()}\n\n'
        '[model]\nname = "logistic"\n\n[loss]\nname = "cross_entropy"\n\n[optim]\nname = "sgd"\nlr = 0.1\n\n'
        '[train]\nepochs = 3\nmetrics = ["accuracy"]\ndoctor = "off"\ndevice = "cpu"\n'
    )
    return load_config(config), X_test, y_test


def test_a_recipe_with_a_test_split_records_the_confusion_matrix_there(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from trainwise.recipes import run_config

    config, X_test, y_test = _split_config(tmp_path)
    result = run_config(config, run_root=tmp_path / "runs", progress=False)
    assert result.fit.run is not None and result.test is not None
    recorded = json.loads((result.fit.run / "predictions.json").read_text())
    predicted = result.fit.predict(torch.from_numpy(X_test)).argmax(dim=1)
    expected = _confusion(predicted, torch.from_numpy(y_test), 3)
    assert (recorded["split"], recorded["class_names"], recorded["matrix"]) == ("test", ["a", "b", "c"], expected)
    correct = sum(expected[i][i] for i in range(3))
    assert 0 < correct < 60  # some right, some wrong
    assert correct / 60 == pytest.approx(result.test["accuracy"], abs=1e-6)  # the test metrics' split
    wrong = (predicted != torch.from_numpy(y_test)).nonzero().reshape(-1)[:16]
    stored = load_file(str(result.fit.run / "misclassified.safetensors"))
    assert stored["true"].tolist() == y_test[wrong.numpy()].tolist()
    assert stored["predicted"].tolist() == predicted[wrong].tolist()
    torch.testing.assert_close(stored["images"], torch.from_numpy(X_test)[wrong], rtol=1e-5, atol=1e-4)

    config, _, _ = _split_config(tmp_path / "no-test", test=False)  # data.test = false: the training split
    result = run_config(config, run_root=tmp_path / "runs", progress=False)
    assert result.fit.run is not None
    assert json.loads((result.fit.run / "predictions.json").read_text())["split"] == "training"


def test_one_training_time_in_the_result_the_summary_and_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trainwise.cli import main
    from trainwise.run_report import read_metrics

    X = torch.linspace(0, 1, 20).unsqueeze(1)
    result = _fit(tmp_path / "python", torch.nn.Linear(1, 1), (X, 2 * X), loss="mse", epochs=30)
    recorded = json.loads((result.run / "summary.json").read_text())["seconds"]
    epochs = read_metrics(result.run)["epoch_seconds"]
    assert len(epochs) == 30 and result.seconds == recorded == sum(epochs) > 0
    assert result.summary()["seconds"] == round(recorded, 3)

    _split_config(tmp_path / "cli")  # the CLI's summary: a recipe run, test split included
    runs = tmp_path / "cli-runs"
    assert main(["fit", str(tmp_path / "cli" / "images.toml"), "--json", "--runs-dir", str(runs)]) == 0
    printed = json.loads(capsys.readouterr().out)
    run = Path(printed["run"])
    recorded = json.loads((run / "summary.json").read_text())["seconds"]
    assert printed["seconds"] == round(recorded, 3) and recorded == sum(read_metrics(run)["epoch_seconds"])


def test_the_fit_plot_names_its_axes_after_the_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainwise import plots

    drawn: list[tuple[str, str]] = []
    plot_fit = plots.plot_fit

    def recording(*args: Any, **kwargs: Any) -> Any:
        drawn.append((kwargs["xlabel"], kwargs["ylabel"]))
        return plot_fit(*args, **kwargs)

    monkeypatch.setattr(plots, "plot_fit", recording)
    trainwise.run_recipe("w1-normalized", ["train.epochs=3", "train.device=cpu"], run_root=tmp_path, progress=False)
    fit(torch.nn.Linear(1, 1), (torch.randn(20, 1), torch.randn(20, 1)), loss="mse", lr=0.1, epochs=2, run_dir=tmp_path,
        device="cpu", progress=False)  # fmt: skip
    assert drawn == [("t_u", "t_c"), ("x", "y")]  # the temperature data's names; plain tensors have none
