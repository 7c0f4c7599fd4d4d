"""Experiment loggers: callbacks that send each epoch's logs to TensorBoard or MLflow.

Both are optional: the packages are imported only when a logger trains, and a logger made without
its package fails at once with one line that says what to install. Each logs the numeric values of
every epoch's logs (loss, val_loss, metrics, lr, epoch_seconds) at the epoch index (counted from 0,
the `epoch` the hooks get) and the run's hyperparameters (optimizer and its settings, epochs, model,
loss, plus any `params` given, e.g. the config).
"""

from __future__ import annotations

import importlib.util
import os
import re
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from trainwise.callbacks import Callback, Logs, measured
from trainwise.errors import ConfigError, first_line
from trainwise.state import TrainState

# module to look for -> what to pip install for it
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}

# fit's final status -> the MLflow run status
MLFLOW_STATUS = {"completed": "FINISHED", "stopped": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}


def missing_package(module: str) -> str | None:
    """None when `module` can be imported, else 'needs the X package: pip install X'."""
    if importlib.util.find_spec(module) is not None:
        return None
    return f"needs the {module} package: pip install {PACKAGES.get(module, module)}"


def _require(logger: str, module: str) -> None:
    problem = missing_package(module)
    if problem is not None:
        raise ConfigError(f"{logger} {problem}")


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'optim': {'lr': 0.1}} -> {'optim.lr': 0.1}; None values are left out."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        elif value is not None:
            flat[name] = value
    return flat


def hyperparameters(state: TrainState, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the loop knows about the run's settings, flat, with `params` (flattened) on top."""
    found: dict[str, Any] = {
        "model": type(state.model).__name__,
        "loss": getattr(state.loss_fn, "__name__", type(state.loss_fn).__name__),
        "optimizer": type(state.optimizer).__name__,
        "epochs": state.epochs,
        "steps_per_epoch": state.steps_per_epoch,
        "device": str(state.device),
    }
    if state.metrics:
        found["metrics"] = ",".join(m.name for m in state.metrics)
    # the first group's settings (lr, momentum, betas, weight_decay...), as they are before training
    for key, value in state.optimizer.param_groups[0].items():
        if key != "params" and isinstance(value, int | float | str | bool | tuple):
            found[key] = value
    found.update(_flatten(params or {}))
    return found


def numeric(logs: Logs) -> dict[str, float]:
    """The logs worth plotting: numbers only (bools and tensors left out)."""
    return {k: float(v) for k, v in logs.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def validation_scalars(state: TrainState, logs: Logs) -> dict[str, float]:
    """With fit(val_every_steps=N), each validation's val_* values, logged as `step/val_*` at the step (the
    epochs' validations too, so the curve is whole); otherwise nothing: the epochs' logs carry them."""
    if state.val_every_steps is None:
        return {}
    return {f"step/{key}": value for key, value in numeric(logs).items() if key.startswith("val_")}


def _check_every(logger: str, every_n_epochs: int | None, every_n_steps: int | None) -> None:
    for name, value in (("every_n_epochs", every_n_epochs), ("every_n_steps", every_n_steps)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{logger}: {name} must be at least 1 (a whole number, or None), got {value!r}")


def _epoch_interval(every_n_epochs: int | None, epochs: int, points: int) -> int:
    """every_n_epochs, or for None: every epoch of a short run, about `points` evenly spaced epochs of a long one."""
    return every_n_epochs or max(1, epochs // points)


class _EveryN:
    """Which epochs a logger logs: every N-th (counted from 1), and always the last one trained, which an
    early stop or an interrupt can make any epoch: it is held back until the next is logged or training ends."""

    def __init__(self, every_n_epochs: int) -> None:
        self.every = every_n_epochs
        self.pending: tuple[int, Logs] | None = None

    def due(self, epoch: int, logs: Logs) -> list[tuple[int, dict[str, float]]]:
        if (epoch + 1) % self.every:
            self.pending = (epoch, logs)  # read only if it turns out to be the last: most epochs are never read
            return []
        self.pending = None
        return [(epoch, numeric(logs))]

    def rest(self) -> list[tuple[int, dict[str, float]]]:
        pending, self.pending = self.pending, None
        return [(pending[0], numeric(pending[1]))] if pending is not None else []


# every_n_epochs=None: about this many epochs of a run are logged to TensorBoard. Each scalar costs about
# 0.2 ms, which is most of an epoch of a small model (W1: 0.3 ms): every epoch of a 5000-epoch run would make
# it 2x slower (benchmarks/loggers_cost.py)
TENSORBOARD_EPOCH_POINTS = 500


class TensorBoardLogger(Callback):
    """Writes TensorBoard event files: the epoch's logs as scalars `epoch/<key>` at the epoch index every
    `every_n_epochs` epochs and the last (None: every epoch of runs up to 999 epochs, and about 500 evenly
    spaced epochs of longer ones), the hyperparameters as text, with `every_n_steps` the training loss
    `step/loss` every N optimizer steps, and with fit(val_every_steps=N) each validation's `step/val_*`.

    log_dir None: `<run folder>/tensorboard` when fit records the run (run_dir), else
    `./runs-tensorboard/<timestamp>`. View with `tensorboard --logdir <folder>`.

    Args:
        log_dir: the folder for the event files; None: as above.
        every_n_epochs: log every this many epochs, and the last one (at least 1); None: as above.
        every_n_steps: also log the training loss every this many optimizer steps; None (default): not per step.
        params: extra hyperparameters to log (nested dicts are flattened to "section.key"), e.g. the config.

    Raises:
        ConfigError: the tensorboard package is not installed, or an every_n_* that is not a whole number >= 1.
    """

    after_records = True  # at the end, the run folder is complete for it

    def __init__(
        self,
        log_dir: str | Path | None = None,
        *,
        every_n_epochs: int | None = None,
        every_n_steps: int | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        _require("TensorBoardLogger", "tensorboard")
        _check_every("TensorBoardLogger", every_n_epochs, every_n_steps)
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.every_n_epochs = every_n_epochs
        self.every_n_steps = every_n_steps
        self.params = params
        self.writer: Any = None
        self.path: Path | None = None  # where the event files went, once written
        self._epochs = _EveryN(every_n_epochs or 1)

    def on_train_begin(self, logs: Logs) -> None:
        self.writer, self.path = None, None
        self._epochs = _EveryN(_epoch_interval(self.every_n_epochs, self.state.epochs, TENSORBOARD_EPOCH_POINTS))
        # read now: a scheduler may change the lr before the first epoch ends
        self._hparams = hyperparameters(self.state, self.params)

    def _open(self) -> Any:
        # lazily: the RunRecorder sets state.run in its own on_train_begin, after this one's
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            if self.log_dir is not None:
                self.path = self.log_dir
            elif self.state.run is not None:
                self.path = self.state.run / "tensorboard"
            else:
                self.path = Path("runs-tensorboard") / datetime.now().strftime("%Y%m%d-%H%M%S")
            self.writer = SummaryWriter(log_dir=str(self.path))
            table = "\n".join(f"| {k} | {v} |" for k, v in self._hparams.items())
            self.writer.add_text("hparams", f"| parameter | value |\n|---|---|\n{table}", 0)
        return self.writer

    def on_batch_end(self, batch: int, logs: Logs) -> None:
        step = self.state.step
        if self.every_n_steps is None or step % self.every_n_steps or not self.state.stepped:
            return
        # the loss is still on the device: reading it syncs, so only every N steps
        self._open().add_scalar("step/loss", float(logs["loss"]), step)

    def on_validation_end(self, epoch: int, logs: Logs) -> None:
        for key, value in validation_scalars(self.state, logs).items():
            self._open().add_scalar(key, value, self.state.step)

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        self._write(self._epochs.due(epoch, measured(logs, self.state)))

    def _write(self, epochs: list[tuple[int, dict[str, float]]]) -> None:
        for epoch, values in epochs:
            writer = self._open()
            for key, value in values.items():
                writer.add_scalar(f"epoch/{key}", value, epoch)

    def on_train_end(self, logs: Logs) -> None:
        try:
            self._write(self._epochs.rest())
        finally:
            if self.writer is not None:
                self.writer.close()  # flushes; on_train_end runs after errors too
                self.writer = None


# MLflow takes at most 1000 metrics in one log_batch request
MLFLOW_BATCH = 1000
# a long run's buffered metrics go out at least this often, so that the MLflow UI follows it
MLFLOW_FLUSH_SECONDS = 15.0
# every_n_epochs=None: about this many epochs of a run are logged. MLflow's sqlite store takes about half a
# millisecond per value, which is more than an epoch of a small model (W1: 0.3 ms), so every epoch of a
# 5000-epoch run would make it 5x slower (benchmarks/loggers_cost.py)
MLFLOW_EPOCH_POINTS = 100


class MLflowLogger(Callback):
    """Logs to MLflow: the hyperparameters as params, the epoch's logs as metrics (step = epoch index) every
    `every_n_epochs` epochs and the last (None: every epoch of runs up to 199 epochs, and about 100 evenly
    spaced epochs of longer ones), with `every_n_steps` the training loss `step/loss` every N optimizer
    steps, with fit(val_every_steps=N) each validation's `step/val_*`, the run folder's files as artifacts
    (when fit records the run), and the run's end status.

    Metrics are buffered and sent with MLflow's log_batch: at most 1000 at a time, every 15 seconds, and at
    train end; one request per epoch would cost more than a small model's whole epoch.

    Starts a run at train begin unless one is active (then logs into it and leaves it open).
    experiment None: MLflow's current experiment. tracking_uri None: the store MLflow is set to
    (mlflow.set_tracking_uri, MLFLOW_TRACKING_URI), else a sqlite store in the runs folder that fit records
    into (`<runs folder>/mlflow/`, `./runs/mlflow/` without one), never MLflow's default in the current folder.
    A store this logger picks holds for this fit: the process's own tracking URI is put back at train end,
    so one config's store does not leak into the next fit. A store MLflow refuses is a one-line ConfigError.

    Args:
        experiment: the MLflow experiment's name; None: as above.
        run_name: the name of the run this logger starts; None: MLflow picks one.
        tracking_uri: the tracking store's URI (e.g. "sqlite:///mlflow.db"); None: as above.
        every_n_epochs: log every this many epochs, and the last one (at least 1); None: as above.
        every_n_steps: also log the training loss every this many optimizer steps; None (default): not per step.
        params: extra hyperparameters to log (nested dicts are flattened to "section.key"), e.g. the config.

    Raises:
        ConfigError: the mlflow package is not installed, or an every_n_* that is not a whole number >= 1.
    """

    after_records = True

    def __init__(
        self,
        experiment: str | None = None,
        run_name: str | None = None,
        tracking_uri: str | None = None,
        *,
        every_n_epochs: int | None = None,
        every_n_steps: int | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        _require("MLflowLogger", "mlflow")
        _check_every("MLflowLogger", every_n_epochs, every_n_steps)
        self.experiment, self.run_name, self.tracking_uri = experiment, run_name, tracking_uri
        self.every_n_epochs, self.every_n_steps = every_n_epochs, every_n_steps
        self.params = params
        self.run_id: str | None = None
        self.store: str | None = None  # the tracking URI this fit logged to
        self._owns_run = False
        self._previous_uri: tuple[str | None] | None = None  # set while this fit holds its own URI
        self._client: Any = None
        self._buffer: list[Any] = []
        self._flushed = 0.0
        self._epochs = _EveryN(every_n_epochs or 1)

    def on_train_begin(self, logs: Logs) -> None:
        import mlflow
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        every = _epoch_interval(self.every_n_epochs, self.state.epochs, MLFLOW_EPOCH_POINTS)
        self._buffer, self._flushed, self._epochs = [], time.monotonic(), _EveryN(every)
        active = mlflow.active_run()
        self._owns_run = active is None
        if active is None:
            uri, experiment_id = self.tracking_uri, None
            if uri is None and not mlflow.is_tracking_uri_set():
                uri, artifacts = self._own_store()
                # the experiment by id: the process's current one (mlflow.set_experiment) may be another store's
                name = self.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or "Default"
                try:
                    experiment_id = _create_store(uri, artifacts, name)
                except Exception as exc:  # an unwritable folder, a damaged database file
                    raise ConfigError(
                        f"log.mlflow: cannot use the MLflow store {uri} ({first_line(exc)}); fix or remove that "
                        "file, or name a store with log.mlflow_tracking_uri"
                    ) from None
            if uri is not None:
                self._previous_uri = (mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None,)
                mlflow.set_tracking_uri(uri)
            try:
                if self.experiment is not None and experiment_id is None:
                    mlflow.set_experiment(self.experiment)
                active = mlflow.start_run(experiment_id=experiment_id, run_name=self.run_name, nested=False)
            except MlflowException as exc:
                store = mlflow.get_tracking_uri()
                self._restore_uri()
                problem = (str(exc).strip().splitlines() or ["no message"])[0]
                raise ConfigError(
                    f"log.mlflow_tracking_uri: MLflow refused the tracking store {store!r}: {problem}; "
                    "name a store that works, e.g. log.mlflow_tracking_uri = 'sqlite:///mlflow.db'"
                ) from exc
        self.run_id = active.info.run_id
        self.store = mlflow.get_tracking_uri()
        self._client = MlflowClient(self.store)
        mlflow.log_params(hyperparameters(self.state, self.params))

    def _own_store(self) -> tuple[str, Path]:
        """A sqlite store in the runs folder (shared by its runs, so `mlflow ui` shows them side by side)."""
        from trainwise.runs import runs_root

        folder = ((self.state.run.parent if self.state.run is not None else runs_root()) / "mlflow").resolve()
        return f"sqlite:///{folder / 'mlflow.db'}", folder / "artifacts"

    def on_batch_end(self, batch: int, logs: Logs) -> None:
        step = self.state.step
        if self.every_n_steps is None or step % self.every_n_steps or not self.state.stepped:
            return
        # the loss is still on the device: reading it syncs, so only every N steps
        self._add(step, {"step/loss": float(logs["loss"])})

    def on_validation_end(self, epoch: int, logs: Logs) -> None:
        values = validation_scalars(self.state, logs)
        if values:
            self._add(self.state.step, values)

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        for logged, values in self._epochs.due(epoch, measured(logs, self.state)):
            self._add(logged, values)

    def _add(self, step: int, values: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        # a diverged NaN/inf loss is logged too: MLflow's stores keep NaN and clamp infinities
        now = int(time.time() * 1000)
        self._buffer.extend(Metric(key, value, now, step) for key, value in values.items())
        if time.monotonic() - self._flushed >= MLFLOW_FLUSH_SECONDS:
            self._flush()
        elif len(self._buffer) >= MLFLOW_BATCH:
            self._flush(whole_batches=True)

    def _flush(self, whole_batches: bool = False) -> None:
        """Send the buffer in requests of at most MLFLOW_BATCH; whole_batches: full requests only, the rest waits."""
        end = len(self._buffer) - len(self._buffer) % MLFLOW_BATCH if whole_batches else len(self._buffer)
        for start in range(0, end, MLFLOW_BATCH):
            self._client.log_batch(self.run_id, metrics=self._buffer[start : min(start + MLFLOW_BATCH, end)])
        del self._buffer[:end]
        self._flushed = time.monotonic()

    def on_train_end(self, logs: Logs) -> None:
        import mlflow

        try:
            for logged, values in self._epochs.rest():
                self._add(logged, values)
            if self._client is not None:
                self._flush()
            run = self.state.run
            if run is not None and run.is_dir():
                # what the run folder holds now (see docs/loggers.md on when the recorder writes)
                mlflow.log_artifacts(str(run), artifact_path="run")
        finally:
            if self._owns_run:
                mlflow.end_run(status=MLFLOW_STATUS.get(str(logs.get("status")), "FINISHED"))
            self._restore_uri()
            self._client = None

    def _restore_uri(self) -> None:
        import mlflow

        if self._previous_uri is not None:
            # None unsets it (MLflow's default again); the type hint says str, the code takes None
            mlflow.set_tracking_uri(self._previous_uri[0])  # type: ignore[arg-type]
            self._previous_uri = None


def _create_store(uri: str, artifacts: Path, experiment: str) -> str:
    """Make the sqlite store with its artifacts in `artifacts` (MLflow's own default is ./mlruns, in whatever
    folder the process runs in), and the experiment there too, unless they exist; the experiment's id."""
    from mlflow.tracking import MlflowClient

    database = Path(uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    if not database.exists():
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        SqlAlchemyStore(uri, artifacts.as_uri())  # creates the tables and the Default experiment
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        return str(found.experiment_id)
    # the name as a folder name: any characters may be in it
    folder = re.sub(r"[^A-Za-z0-9._-]", "-", experiment).lstrip(".") or "experiment"
    return str(client.create_experiment(experiment, artifact_location=(artifacts / folder).as_uri()))
