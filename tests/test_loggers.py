"""Tests for trainwise.loggers: TensorBoard event files and MLflow runs read back, the missing-package
errors, and the [log] config section."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import trainwise
from tests.test_config import base, changed, error_of
from trainwise import config as C
from trainwise.callbacks import Callback, Logs
from trainwise.errors import ConfigError
from trainwise.loggers import MLflowLogger, TensorBoardLogger
from trainwise.recipes import config_callbacks, run_config

EPOCHS = 3
STEPS_PER_EPOCH = 4  # 32 training samples (40 less a 20% validation split) in batches of 8


def tiny_fit(*callbacks: Callback, **kwargs: Any) -> trainwise.FitResult:
    """Three epochs of a linear fit on 40 samples: a second or less."""
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(40, 2, generator=generator)
    y = X @ torch.tensor([[1.5], [-2.0]]) + 0.1 * torch.randn(40, 1, generator=generator)
    options: dict[str, Any] = {"epochs": EPOCHS, "batch_size": 8, "val_split": 0.2, "device": "cpu", **kwargs}
    return trainwise.fit(
        torch.nn.Linear(2, 1),
        (X, y),
        loss="mse",
        optimizer="sgd",
        lr=0.05,
        metrics=["mae"],
        progress=False,
        doctor="off",
        callbacks=list(callbacks),
        **options,
    )


class StepLosses(Callback):
    """The training loss of every step, read on the host (a test may sync)."""

    def __init__(self) -> None:
        self.losses: dict[int, float] = {}

    def on_batch_end(self, batch: int, logs: Logs) -> None:
        self.losses[self.state.step] = float(logs["loss"])


class FailAt(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        if epoch == self.epoch:
            raise RuntimeError("boom")


def without(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `module` look uninstalled to importlib.util.find_spec."""
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == module else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def f32(values: list[float]) -> list[float]:
    return [float(np.float32(v)) for v in values]


# ----------------------------------------------------------------------------- missing packages


def test_tensorboard_logger_without_tensorboard_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    without("tensorboard", monkeypatch)
    with pytest.raises(ConfigError) as info:
        TensorBoardLogger()
    assert str(info.value) == "TensorBoardLogger needs the tensorboard package: pip install tensorboard"


def test_mlflow_logger_without_mlflow_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    without("mlflow", monkeypatch)
    with pytest.raises(ConfigError) as info:
        MLflowLogger()
    assert str(info.value) == "MLflowLogger needs the mlflow package: pip install mlflow"


# ----------------------------------------------------------------------------- TensorBoard


def scalars(folder: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return events


def test_tensorboard_scalars_equal_the_history(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    steps = StepLosses()
    logger = TensorBoardLogger(tmp_path / "tb", every_n_steps=3)
    result = tiny_fit(steps, logger)
    assert logger.path == tmp_path / "tb"
    events = scalars(tmp_path / "tb")
    for key in ("loss", "val_loss", "mae", "val_mae", "lr", "epoch_seconds"):
        logged = events.Scalars(f"epoch/{key}")
        assert [e.step for e in logged] == list(range(EPOCHS)), key  # the epoch index, from 0
        assert [e.value for e in logged] == f32(result.history[key]), key  # stored as float32
    # the step loss every 3rd optimizer step, and nowhere else
    logged = events.Scalars("step/loss")
    assert [e.step for e in logged] == list(range(3, EPOCHS * STEPS_PER_EPOCH + 1, 3))
    assert [e.value for e in logged] == f32([steps.losses[e.step] for e in logged])
    assert "hparams/text_summary" in events.Tags()["tensors"]


def test_tensorboard_logs_each_validation_at_its_step(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    logger = TensorBoardLogger(tmp_path / "tb")
    result = tiny_fit(logger, val_every_steps=3)
    logged = scalars(tmp_path / "tb").Scalars("step/val_mae")
    # within the epochs at steps 3, 6 and 9, and the epochs' own validations at 4, 8 and 12
    assert [e.step for e in logged] == result.validations["step"] == [3, 4, 6, 8, 9, 12]
    assert [e.value for e in logged] == f32(result.validations["val_mae"])


def test_tensorboard_writes_into_the_run_folder_or_a_timestamped_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tensorboard")
    logger = TensorBoardLogger()
    result = tiny_fit(logger, run_dir=tmp_path / "runs")
    assert result.run is not None and logger.path == result.run / "tensorboard"
    assert len(scalars(logger.path).Scalars("epoch/loss")) == EPOCHS
    assert logger.writer is None  # closed at train end

    monkeypatch.chdir(tmp_path)
    logger = TensorBoardLogger()
    tiny_fit(logger)
    assert logger.path is not None and logger.path.parent == Path("runs-tensorboard")
    assert len(scalars(tmp_path / logger.path).Scalars("epoch/loss")) == EPOCHS
    assert "step/loss" not in scalars(tmp_path / logger.path).Tags()["scalars"]  # every_n_steps=None: off


def test_tensorboard_closes_its_file_when_training_fails(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    logger = TensorBoardLogger(tmp_path / "tb")
    with pytest.raises(RuntimeError, match="boom"):
        tiny_fit(logger, FailAt(1))
    assert logger.writer is None
    # loggers run after the other callbacks: epoch 1 failed before it was logged
    assert [e.step for e in scalars(tmp_path / "tb").Scalars("epoch/loss")] == [0]


@pytest.mark.parametrize("logger", ["tensorboard", "mlflow"])
@pytest.mark.parametrize(("key", "value"), [("every_n_steps", 0), ("every_n_epochs", -2), ("every_n_epochs", 1.5)])
def test_every_n_must_be_a_positive_whole_number(logger: str, key: str, value: Any) -> None:
    pytest.importorskip(logger)
    cls = TensorBoardLogger if logger == "tensorboard" else MLflowLogger
    with pytest.raises(ConfigError) as info:
        cls(**{key: value})
    assert str(info.value) == f"{cls.__name__}: {key} must be at least 1 (a whole number, or None), got {value!r}"


def test_tensorboard_every_n_epochs_logs_those_epochs_and_the_last(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    result = tiny_fit(TensorBoardLogger(tmp_path / "tb", every_n_epochs=2), epochs=5)
    logged = scalars(tmp_path / "tb").Scalars("epoch/loss")
    assert [e.step for e in logged] == [1, 3, 4]  # epochs 2 and 4 (counted from 1), and the last
    assert [e.value for e in logged] == f32([result.history["loss"][i] for i in (1, 3, 4)])


def test_tensorboard_by_default_logs_about_500_epochs_of_a_long_run(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    result = tiny_fit(TensorBoardLogger(tmp_path / "tb"), epochs=1001, batch_size=None, val_split=0.0)
    logged = scalars(tmp_path / "tb").Scalars("epoch/loss")
    assert [e.step for e in logged] == [*range(1, 1000, 2), 1000]  # every 2nd epoch (1001 // 500), and the last
    assert [e.value for e in logged] == f32([result.history["loss"][e.step] for e in logged])


# ----------------------------------------------------------------------------- MLflow

EXPERIMENT = "trainwise-tests"


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One sqlite store for the module (creating its tables takes a second or two), with an experiment
    whose artifacts stay in the temporary folder (MLflow's default is ./mlruns)."""
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder}/mlflow.db"
    MlflowClient(uri).create_experiment(EXPERIMENT, artifact_location=(folder / "artifacts").as_uri())
    return uri


@pytest.fixture
def mlflow_uri(mlflow_store: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import mlflow

    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; monkeypatch takes it back afterwards
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    before = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    yield mlflow_store
    while mlflow.active_run() is not None:  # a failed test must not leave its run to the next one
        mlflow.end_run()
    mlflow.set_tracking_uri(before)  # type: ignore[arg-type]  # None: unset, as the test found it


def history_of(client: Any, run_id: str, key: str) -> tuple[list[int], list[float]]:
    metrics = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
    return [m.step for m in metrics], [m.value for m in metrics]


def test_mlflow_run_holds_params_metrics_artifacts_and_status(mlflow_uri: str, tmp_path: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    logger = MLflowLogger(EXPERIMENT, "tiny", mlflow_uri, params={"data": {"name": "tiny"}})
    result = tiny_fit(logger, run_dir=tmp_path / "runs", config={"name": "tiny"})
    assert mlflow.active_run() is None  # the logger started the run, so it ended it
    client = MlflowClient(mlflow_uri)
    assert logger.run_id is not None
    run = client.get_run(logger.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "tiny"
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    params = run.data.params
    assert params["optimizer"] == "SGD" and float(params["lr"]) == 0.05 and params["epochs"] == str(EPOCHS)
    assert params["steps_per_epoch"] == str(STEPS_PER_EPOCH) and params["data.name"] == "tiny"
    for key in ("loss", "val_loss", "mae", "val_mae", "lr", "epoch_seconds"):
        assert history_of(client, logger.run_id, key) == (list(range(EPOCHS)), result.history[key]), key
    artifacts = [a.path for a in client.list_artifacts(logger.run_id, "run")]
    assert "run/config.toml" in artifacts


def test_mlflow_run_is_failed_when_a_callback_raises(mlflow_uri: str) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    logger = MLflowLogger(EXPERIMENT, tracking_uri=mlflow_uri)
    with pytest.raises(RuntimeError, match="boom"):
        tiny_fit(FailAt(1), logger)
    assert mlflow.active_run() is None
    client = MlflowClient(mlflow_uri)
    assert logger.run_id is not None
    assert client.get_run(logger.run_id).info.status == "FAILED"
    assert history_of(client, logger.run_id, "loss")[0] == [0]  # epoch 1 raised before it was logged


def test_mlflow_logs_into_an_active_run_and_leaves_it_open(mlflow_uri: str) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(mlflow_uri)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run() as run:
        logger = MLflowLogger()
        tiny_fit(logger)
        assert logger.run_id == run.info.run_id
        assert mlflow.active_run() is not None
    client = MlflowClient(mlflow_uri)
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert history_of(client, run.info.run_id, "loss")[0] == list(range(EPOCHS))


def test_mlflow_store_it_refuses_is_one_line_and_the_uri_is_put_back(
    mlflow_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    before = (mlflow.is_tracking_uri_set(), mlflow.get_tracking_uri())
    store = (tmp_path / "mlruns").as_uri()  # MLflow 3 refuses a file store unless told otherwise
    with pytest.raises(ConfigError) as info:
        tiny_fit(MLflowLogger(tracking_uri=store))
    line = str(info.value)
    assert line.startswith(f"log.mlflow_tracking_uri: MLflow refused the tracking store '{store}': ")
    assert "\n" not in line and line.endswith("e.g. log.mlflow_tracking_uri = 'sqlite:///mlflow.db'")
    assert (mlflow.is_tracking_uri_set(), mlflow.get_tracking_uri()) == before
    tiny_fit(MLflowLogger(EXPERIMENT, tracking_uri=mlflow_uri))  # a store that works: still put back
    assert (mlflow.is_tracking_uri_set(), mlflow.get_tracking_uri()) == before


class LogBatches:
    """Counts MlflowClient.log_batch requests that carry metrics, and how many each carried."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from mlflow.tracking import MlflowClient

        self.sizes: list[int] = []
        real = MlflowClient.log_batch

        def log_batch(client: Any, run_id: str, metrics: Any = (), *args: Any, **kwargs: Any) -> Any:
            if metrics:
                self.sizes.append(len(metrics))
            return real(client, run_id, metrics, *args, **kwargs)

        monkeypatch.setattr(MlflowClient, "log_batch", log_batch)


def test_mlflow_sends_its_metrics_in_batches_at_the_rate_asked_for(
    mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    batches = LogBatches(monkeypatch)
    steps = StepLosses()
    logger = MLflowLogger(EXPERIMENT, tracking_uri=mlflow_uri, every_n_epochs=3, every_n_steps=5)
    result = tiny_fit(steps, logger, epochs=8)
    client = MlflowClient(mlflow_uri)
    assert logger.run_id is not None
    for key in ("loss", "val_loss", "mae", "val_mae", "lr", "epoch_seconds"):
        # epochs 3 and 6 (counted from 1) and the last: the epoch index, from 0
        assert history_of(client, logger.run_id, key) == ([2, 5, 7], [result.history[key][i] for i in (2, 5, 7)])
    step_loss = history_of(client, logger.run_id, "step/loss")
    assert step_loss == ([5, 10, 15, 20, 25, 30], [steps.losses[s] for s in (5, 10, 15, 20, 25, 30)])
    # 3 epochs x 6 values and 6 step losses, buffered: one request at train end, not one per epoch
    assert batches.sizes == [3 * 6 + 6]


def test_mlflow_logs_each_validation_at_its_step(mlflow_uri: str) -> None:
    from mlflow.tracking import MlflowClient

    logger = MLflowLogger(EXPERIMENT, tracking_uri=mlflow_uri)
    result = tiny_fit(logger, val_every_steps=3)
    assert logger.run_id is not None
    logged = history_of(MlflowClient(mlflow_uri), logger.run_id, "step/val_loss")
    assert logged == ([3, 4, 6, 8, 9, 12], result.validations["val_loss"])


def test_mlflow_flushes_a_full_buffer_and_keeps_every_value(mlflow_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    from trainwise import loggers

    monkeypatch.setattr(loggers, "MLFLOW_BATCH", 10)  # MLflow's own limit is 1000 a request
    batches = LogBatches(monkeypatch)
    logger = MLflowLogger(EXPERIMENT, tracking_uri=mlflow_uri, every_n_epochs=1)
    result = tiny_fit(logger, epochs=6)
    assert batches.sizes == [10, 10, 10, 6]  # 6 values an epoch: full requests as 10 wait, the rest at train end
    assert logger.run_id is not None
    assert history_of(MlflowClient(mlflow_uri), logger.run_id, "loss") == (list(range(6)), result.history["loss"])


def test_mlflow_by_default_logs_about_100_epochs_of_a_long_run(
    mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    batches = LogBatches(monkeypatch)
    logger = MLflowLogger(EXPERIMENT, tracking_uri=mlflow_uri)
    result = tiny_fit(logger, epochs=251, batch_size=None, val_split=0.0)  # full batch: 251 quick steps
    assert logger.run_id is not None
    steps, values = history_of(MlflowClient(mlflow_uri), logger.run_id, "loss")
    assert steps == [*range(1, 250, 2), 250]  # every 2nd epoch (251 // 100), and the last
    assert values == [result.history["loss"][i] for i in steps]
    assert sum(batches.sizes) == 4 * len(steps)  # loss, mae, lr, epoch_seconds


def test_mlflow_without_a_tracking_uri_keeps_its_files_in_the_runs_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    import mlflow
    from mlflow.tracking import MlflowClient

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    assert not mlflow.is_tracking_uri_set()  # as the user starts: no store named anywhere
    work, runs = tmp_path / "work", tmp_path / "home" / "runs"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("TRAINWISE_HOME", str(tmp_path / "home"))  # trainwise's default runs folder: `runs`
    recorded = MLflowLogger(run_name="recorded")
    result = tiny_fit(recorded, run_dir=runs)
    unrecorded = MLflowLogger("no-record")  # fit records no run: the default runs folder's store
    tiny_fit(unrecorded)
    assert list(work.iterdir()) == []  # no ./mlflow.db, no ./mlruns
    assert not mlflow.is_tracking_uri_set()  # the store was this fit's only
    store = f"sqlite:///{(runs / 'mlflow' / 'mlflow.db').resolve()}"
    assert recorded.store == unrecorded.store == store
    client = MlflowClient(store)
    assert recorded.run_id is not None and unrecorded.run_id is not None
    assert history_of(client, recorded.run_id, "loss") == (list(range(EPOCHS)), result.history["loss"])
    assert client.get_experiment(client.get_run(unrecorded.run_id).info.experiment_id).name == "no-record"
    artifacts = [a.path for a in client.list_artifacts(recorded.run_id, "run")]
    assert "run/summary.json" in artifacts
    stored = sorted(p.name for p in (runs / "mlflow" / "artifacts").rglob("summary.json"))
    assert stored == ["summary.json"]  # the artifacts too are in the runs folder


# ----------------------------------------------------------------------------- the [log] config section


def test_log_section_is_optional_and_off_by_default() -> None:
    assert C.validate(base()).log is None
    config = C.validate(changed("log.mlflow_experiment", "x"))
    assert config.log is not None and not config.log.tensorboard and not config.log.mlflow
    assert not any(isinstance(cb, TensorBoardLogger | MLflowLogger) for cb in config_callbacks(config))


def test_log_section_turns_the_loggers_on() -> None:
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    raw = changed("log.tensorboard", True)
    raw["log"].update(mlflow=True, mlflow_experiment="exp", mlflow_tracking_uri="sqlite:///x.db")
    callbacks = config_callbacks(C.validate(raw))
    assert [type(cb) for cb in callbacks] == [TensorBoardLogger, MLflowLogger]
    mlflow_logger = callbacks[1]
    assert isinstance(mlflow_logger, MLflowLogger)
    assert (mlflow_logger.experiment, mlflow_logger.run_name, mlflow_logger.tracking_uri) == (
        "exp",
        "run",
        "sqlite:///x.db",
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("log.tensorboard", "yes", "log.tensorboard: must be a valid boolean (got 'yes')"),
        ("log.mlflow", 1, "log.mlflow: must be a valid boolean (got 1)"),
        ("log.mlflow_experiment", 3, "log.mlflow_experiment: must be a valid string (got 3)"),
        (
            "log.tensorbord",
            True,
            "log.tensorbord: unknown key (did you mean tensorboard?); [log] takes tensorboard, mlflow, "
            "mlflow_experiment, mlflow_tracking_uri",
        ),
    ],
)
def test_log_section_wrong_values(key: str, value: Any, message: str) -> None:
    assert error_of(changed(key, value)) == message


@pytest.mark.parametrize("module", ["tensorboard", "mlflow"])
def test_log_section_with_the_package_missing_fails_at_load(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    without(module, monkeypatch)
    assert error_of(changed(f"log.{module}", True)) == f"log.{module}: needs the {module} package: pip install {module}"
    C.validate(changed(f"log.{module}", False))  # off: nothing to install


def test_a_recipe_with_log_tensorboard_writes_events_into_its_run(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    config = C.load_config("w1-normalized", ["train.epochs=3", "log.tensorboard=true", "train.doctor='off'"])
    result = run_config(config, run_root=tmp_path, progress=False)
    assert result.fit.run is not None
    events = scalars(result.fit.run / "tensorboard")
    assert [e.value for e in events.Scalars("epoch/loss")] == f32(result.fit.history["loss"])
