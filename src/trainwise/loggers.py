"""Experiment loggers: callbacks that send each epoch's logs to TensorBoard or MLflow.

Both are optional: the packages are imported only when a logger trains, and a logger made without
its package fails at once with one line that says what to install. Each logs the numeric values of
every epoch's logs (loss, val_loss, metrics, lr, epoch_seconds) at the epoch index (counted from 0,
the `epoch` the hooks get) and the run's hyperparameters (optimizer and its settings, epochs, model,
loss, plus any `params` given, e.g. the config).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from trainwise.callbacks import Callback, Logs, TrainState
from trainwise.errors import ConfigError

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


class TensorBoardLogger(Callback):
    """Writes TensorBoard event files: every epoch's logs as scalars `epoch/<key>` at the epoch index,
    the hyperparameters as text, and with `every_n_steps` the training loss `step/loss` every N optimizer steps.

    log_dir None: `<run folder>/tensorboard` when fit records the run (run_dir), else
    `./runs-tensorboard/<timestamp>`. View with `tensorboard --logdir <folder>`.
    """

    after_records = True  # at the end, the run folder is complete for it

    def __init__(
        self,
        log_dir: str | Path | None = None,
        *,
        every_n_steps: int | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        _require("TensorBoardLogger", "tensorboard")
        if every_n_steps is not None and every_n_steps < 1:
            raise ConfigError(f"TensorBoardLogger: every_n_steps must be at least 1 (or None), got {every_n_steps}")
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.every_n_steps = every_n_steps
        self.params = params
        self.writer: Any = None
        self.path: Path | None = None  # where the event files went, once written

    def on_train_begin(self, logs: Logs) -> None:
        self.writer, self.path = None, None
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
        if self.every_n_steps is None or step % self.every_n_steps:
            return
        # the loss is still on the device: reading it syncs, so only every N steps
        self._open().add_scalar("step/loss", float(logs["loss"]), step)

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        writer = self._open()
        for key, value in numeric(logs).items():
            writer.add_scalar(f"epoch/{key}", value, epoch)

    def on_train_end(self, logs: Logs) -> None:
        if self.writer is not None:
            self.writer.close()  # flushes; on_train_end runs after errors too
            self.writer = None


class MLflowLogger(Callback):
    """Logs to MLflow: the hyperparameters as params, every epoch's logs as metrics (step = epoch index),
    the run folder's files as artifacts (when fit records the run), and the run's end status.

    Starts a run at train begin unless one is active (then logs into it and leaves it open).
    experiment None: MLflow's current experiment; tracking_uri None: MLflow's default. A given URI
    holds for this fit: the process's own tracking URI is put back at train end, so one config's
    store does not leak into the next fit. A store MLflow refuses is a one-line ConfigError.
    """

    after_records = True

    def __init__(
        self,
        experiment: str | None = None,
        run_name: str | None = None,
        tracking_uri: str | None = None,
        *,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        _require("MLflowLogger", "mlflow")
        self.experiment, self.run_name, self.tracking_uri = experiment, run_name, tracking_uri
        self.params = params
        self.run_id: str | None = None
        self._owns_run = False
        self._previous_uri: tuple[str | None] | None = None  # set while this fit holds its own URI

    def on_train_begin(self, logs: Logs) -> None:
        import mlflow
        from mlflow.exceptions import MlflowException

        active = mlflow.active_run()
        self._owns_run = active is None
        if active is None:
            if self.tracking_uri is not None:
                self._previous_uri = (mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None,)
                mlflow.set_tracking_uri(self.tracking_uri)
            try:
                if self.experiment is not None:
                    mlflow.set_experiment(self.experiment)
                active = mlflow.start_run(run_name=self.run_name, nested=False)
            except MlflowException as exc:
                store = mlflow.get_tracking_uri()
                self._restore_uri()
                problem = (str(exc).strip().splitlines() or ["no message"])[0]
                raise ConfigError(
                    f"log.mlflow_tracking_uri: MLflow refused the tracking store {store!r}: {problem}; "
                    "name a store that works, e.g. log.mlflow_tracking_uri = 'sqlite:///mlflow.db'"
                ) from exc
        self.run_id = active.info.run_id
        mlflow.log_params(hyperparameters(self.state, self.params))

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        import mlflow

        # a diverged NaN/inf loss is logged too: MLflow's stores keep NaN and clamp infinities
        mlflow.log_metrics(numeric(logs), step=epoch)

    def on_train_end(self, logs: Logs) -> None:
        import mlflow

        try:
            run = self.state.run
            if run is not None and run.is_dir():
                # what the run folder holds now (see docs/loggers.md on when the recorder writes)
                mlflow.log_artifacts(str(run), artifact_path="run")
        finally:
            if self._owns_run:
                mlflow.end_run(status=MLFLOW_STATUS.get(str(logs.get("status")), "FINISHED"))
            self._restore_uri()

    def _restore_uri(self) -> None:
        import mlflow

        if self._previous_uri is not None:
            # None unsets it (MLflow's default again); the type hint says str, the code takes None
            mlflow.set_tracking_uri(self._previous_uri[0])  # type: ignore[arg-type]
            self._previous_uri = None
