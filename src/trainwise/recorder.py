"""The run recorder: the callback that writes a run's record folder while fit trains (config, environment,
metrics per epoch, the model, plots, predictions) and keeps its row in the runs index (trainwise.runs).
Imported by fit only when it records: plotting and safetensors cost start-up time that unrecorded runs skip.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from trainwise.callbacks import Callback, Logs, best_epoch
from trainwise.checkpoint import atomic_path, atomic_write_text, describe, run_folder_gone, write_model
from trainwise.errors import TrainwiseError
from trainwise.models import inference
from trainwise.runs import RunIndex, new_run_dir


class RunRecorder(Callback):
    """Writes a run's record folder while it trains: config.toml, environment.json, metrics.csv (a row
    per epoch), with val_every_steps validations.csv (a row per validation), model.safetensors,
    transform.json, summary.json, loss-curve.png, for 1-D regression fit.png, with lr="auto" lr-find.json
    and lr-find.png, for classification predictions.json (a confusion matrix) and for images
    misclassified.safetensors; and keeps its row in the runs index up to date. Everything the HTML report
    shows comes from these files (trainwise.run_report)."""

    FLUSH_SECONDS = 2.0

    def __init__(
        self,
        root: Path,
        name: str,
        config: Mapping[str, object] | None,
        prepared: object,
        *,
        feature_names: Sequence[str] | None = None,
        lr_find: Any = None,
        class_names: Sequence[str] | None = None,
        resume: Path | None = None,
    ) -> None:
        self.resume = resume  # a resumed run continues in its own folder
        self.feature_names = list(feature_names or [])
        self.class_names = list(class_names) if class_names else None  # None: the report numbers the classes
        self.lr_find = lr_find  # the LR finder's result, when fit chose the lr with it
        self.root = Path(root)
        self.name = name
        self.config = config
        self.prepared = prepared
        self.index = RunIndex(self.root)
        self.path: Path | None = None
        self.summary: dict[str, object] = {}

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A full disk, a read-only folder or a run folder deleted mid-run: one line naming the run folder
        (files already written stay as they were: each is replaced atomically), not an OSError from deep
        inside. A deleted folder is never written again, so it is not half re-created."""
        if self.path is not None and not self.path.is_dir():
            raise TrainwiseError(run_folder_gone(self.path))
        try:
            yield
        except OSError as exc:
            if self.path is not None and not self.path.is_dir():
                raise TrainwiseError(run_folder_gone(self.path)) from None
            if self.path is not None:  # the index (a small write elsewhere) says the run failed, if it can
                with suppress(TrainwiseError):
                    self.index.finish(self.path.name, "failed", {})
            raise TrainwiseError(
                f"{self.path or self.root}: cannot write the run record there ({exc.strerror or exc}); "
                "the files written before are intact"
            ) from None

    def on_train_begin(self, logs: Logs) -> None:
        with self._writing():
            self._begin()

    def _begin(self) -> None:
        import tomli_w

        self.path = self.resume or new_run_dir(self.root, self.name)
        self.state.run = self.path
        self.index.start(self.path, self.name)
        if self.config is not None:
            atomic_write_text(self.path / "config.toml", tomli_w.dumps(dict(self.config)))
        self._rows: list[str] = []
        self._columns: list[str] | None = None
        self._last_flush = 0.0
        if self.resume is not None:  # the epochs the checkpoint holds, not rows written after it
            self._restart_metrics(self.state.history)
        if self.lr_find is not None:
            atomic_write_text(self.path / "lr-find.json", json.dumps(self.lr_find.to_dict(), indent=1))
            self.lr_find.plot(self.path / "lr-find.png")
        self._write_environment()

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        with self._writing():
            self._epoch_end(epoch, logs)

    def _epoch_end(self, epoch: int, logs: Logs) -> None:
        import time

        if self._columns is None:
            self._columns = [k for k, v in logs.items() if isinstance(v, float | int)]
            self._rows.append(",".join(["epoch", *self._columns]))
        self._rows.append(",".join([str(epoch + 1), *(repr(float(logs.get(k, math.nan))) for k in self._columns)]))
        now = time.monotonic()
        if now - self._last_flush > self.FLUSH_SECONDS:  # buffered: 5000 tiny epochs must not mean 5000 writes
            self._flush()
            self._last_flush = now

    def _restart_metrics(self, history: Mapping[str, list[float]]) -> None:
        assert self.path is not None
        (self.path / "metrics.csv").unlink(missing_ok=True)
        if history.get("loss"):
            self._columns = list(history)
            self._rows.append(",".join(["epoch", *self._columns]))
            for epoch in range(len(history["loss"])):
                self._rows.append(",".join([str(epoch + 1), *(repr(history[k][epoch]) for k in self._columns)]))
            self._flush()

    def _flush(self) -> None:
        if self._rows and self.path is not None:
            with open(self.path / "metrics.csv", "a") as handle:
                handle.write("\n".join(self._rows) + "\n")
            self._rows = []

    def on_train_end(self, logs: Logs) -> None:
        if self.path is None:  # on_train_begin failed (a read-only runs folder): nothing to finish
            return
        if not self.path.is_dir():  # deleted mid-run: the index (next to it) still says how it ended
            with suppress(TrainwiseError):
                self.index.finish(self.path.name, "failed", {})
        with self._writing():
            self._end()

    def _end(self) -> None:
        from trainwise import plots

        assert self.path is not None
        self._flush()
        state = self.state
        # model.safetensors and model.json, as trainwise.save writes them: trainwise.load(run) rebuilds the model
        write_model(self.path, state.model, describe(state.model))
        transform = getattr(self.prepared, "transform", None)
        if transform is not None:
            atomic_write_text(self.path / "transform.json", json.dumps(transform.to_dict(), indent=1))
        atomic_write_text(self.path / "findings.json", json.dumps([f.to_dict() for f in state.findings], indent=1))
        if state.validations:
            atomic_write_text(self.path / "validations.csv", csv_text(state.validations))
        final = {k: v[-1] for k, v in state.history.items() if v and k != "epoch_seconds"}
        self.summary = {
            "name": self.name,
            "status": state.status,
            "epochs": len(state.history.get("loss", [])),
            "seconds": training_seconds(state.history),
            "final": final,
            "best": best_epoch(state.history),
            "findings": len(state.findings),
            "repairs": state.doctor_actions,
        }
        write_summary(self.path, self.summary)
        # plots last: a plotting problem must not cost the summary or the index row
        plots.plot_history(
            state.history, self.path / "loss-curve.png", title=self.name, validations=state.validations or None
        )
        self._plot_fit()
        if state.status != "failed":  # after a failure the model itself may be what raises
            self._record_predictions()

    def _plot_fit(self) -> None:
        """Data and model curve against the raw input, for one-input one-output regression."""
        import torch

        from trainwise import plots

        train = getattr(self.prepared, "train", None)
        X, y = getattr(train, "X", None), getattr(train, "y", None)
        if X is None or y is None or X.ndim != 2 or X.shape[1] != 1 or not y.is_floating_point():
            return
        if y.ndim != 2 or y.shape[1] != 1:
            return
        transform = getattr(self.prepared, "transform", None)
        model = self.state.model
        grid = torch.linspace(float(X.min()), float(X.max()), 200, device=X.device).unsqueeze(1)
        with inference(model):
            curve = model(grid)
        if not isinstance(curve, torch.Tensor) or curve.numel() != len(grid):
            return  # a model with more outputs than the one target (mse broadcasts them): no curve to draw
        curve = curve.reshape(-1).cpu()

        def raw(values: torch.Tensor) -> torch.Tensor:
            if transform is None:
                return values.cpu()
            return ((values.cpu() - transform.shift) / transform.scale).cpu()

        features, targets = self.feature_names, []
        if isinstance(self.config, Mapping) and "data" in self.config:
            # a recipe's run: its dataset names the target (t_c); loaded again, as only 1-D data comes here
            from trainwise.config import validate
            from trainwise.recipes import load_data

            try:
                dataset, _ = load_data(validate(dict(self.config)))
                features = features or list(dataset.feature_names)
                targets = list(dataset.target_names)
            except (TrainwiseError, OSError):  # the data moved since training began: generic labels
                pass
        xlabel = features[0] if len(features) == 1 else "x"
        ylabel = targets[0] if len(targets) == 1 else "y"
        path = self.path / "fit.png"  # type: ignore[operator]
        plots.plot_fit(raw(X), y.cpu(), raw(grid), curve, path, xlabel=xlabel, ylabel=ylabel, title=self.name)

    def _write_environment(self) -> None:
        """environment.json: the versions and the device, so a report can say what the run ran on."""
        import platform

        import numpy
        import torch

        from trainwise import __version__

        device = self.state.device
        environment = {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": numpy.__version__,
            "trainwise": __version__,
            "platform": platform.platform(),
            "device": str(device),
            "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "threads": torch.get_num_threads(),
        }
        atomic_write_text(self.path / "environment.json", json.dumps(environment, indent=1))  # type: ignore[operator]

    def _record_predictions(self) -> None:
        """predictions.json on the validation split, or the training split when there is none (a recipe
        with a test split then records that one: record_predictions)."""
        split = "validation" if getattr(self.prepared, "val", None) is not None else "training"
        source = getattr(self.prepared, "val" if split == "validation" else "train", None)
        if source is None or self.path is None:
            return
        transform = getattr(self.prepared, "transform", None)
        _write_predictions(self.path, self.state.model, _eval_batches(source), split=split,
                           loss_fn=self.state.loss_fn, class_names=self.class_names, transform=transform)  # fmt: skip


def record_predictions(
    run_dir: Path,
    model: Any,
    X: Any,
    y: Any,
    *,
    loss_fn: Any,
    split: str = "test",
    transform: Any = None,
    class_names: Sequence[str] | None = None,
) -> None:
    """Record a classifier's confusion matrix (predictions.json) and first misclassified images on the
    split (X, y), raw inputs that `transform` scales as in training, replacing those of another split:
    run_config records the test split this way, the one its test metrics are measured on."""

    from trainwise.data import to_xy
    from trainwise.models import model_device

    device = model_device(model)
    inputs, targets = to_xy((X, y))  # as evaluate() takes them, so both measure the same predictions
    if transform is not None:
        inputs = transform(inputs)

    def batches() -> Iterator[tuple[Any, Any]]:
        for start in range(0, len(inputs), _EVAL_BATCH):
            end = start + _EVAL_BATCH
            yield inputs[start:end].to(device), targets[start:end].to(device)

    _write_predictions(Path(run_dir), model, batches(), split=split, loss_fn=loss_fn,
                       class_names=list(class_names) if class_names else None, transform=transform)  # fmt: skip


def _write_predictions(
    run_dir: Path,
    model: Any,
    batches: Iterator[tuple[Any, Any]],
    *,
    split: str,
    loss_fn: Any,
    class_names: list[str] | None,
    transform: Any,
) -> None:
    """predictions.json ({"split", "matrix", "class_names"}) and, for images, misclassified.safetensors
    (up to 16, in the data's own scale) from one pass in eval mode over `batches`."""
    import torch
    from safetensors.torch import save_file

    decide = _class_decision(loss_fn)
    true_parts: list[torch.Tensor] = []
    pred_parts: list[torch.Tensor] = []
    wrong_images: list[torch.Tensor] = []  # images of the first misclassified samples, in order
    n_classes = 0
    with inference(model):
        for xb, yb in batches:
            predicted, width = decide(model(xb), yb)
            if predicted is None:
                return  # not classification: nothing to record
            labels = yb.reshape(-1).long()
            n_classes = max(n_classes, width, int(labels.max()) + 1 if labels.numel() else 0)
            true_parts.append(labels.cpu())
            pred_parts.append(predicted.cpu())
            if xb.ndim == 4 and sum(len(x) for x in wrong_images) < _MAX_MISCLASSIFIED:
                wrong_images.append(xb[predicted != labels][:_MAX_MISCLASSIFIED].cpu())
    if not true_parts:
        return
    true, predicted = torch.cat(true_parts), torch.cat(pred_parts)
    matrix = torch.zeros(n_classes * n_classes, dtype=torch.long)
    matrix.index_add_(0, true * n_classes + predicted, torch.ones_like(true))
    names = None
    if class_names is not None:  # a model with more outputs than named classes: number the rest
        names = [*class_names[:n_classes], *map(str, range(len(class_names), n_classes))]
    record = {"split": split, "matrix": matrix.reshape(n_classes, n_classes).tolist(), "class_names": names}
    atomic_write_text(run_dir / "predictions.json", json.dumps(record))
    wrong = (true != predicted).nonzero().reshape(-1)[:_MAX_MISCLASSIFIED]
    misclassified = run_dir / "misclassified.safetensors"
    if not wrong_images or len(wrong) == 0:
        misclassified.unlink(missing_ok=True)  # another split's examples must not stay next to this matrix
        return
    images = torch.cat(wrong_images)[:_MAX_MISCLASSIFIED]
    if transform is not None:  # back to the scale the data came in, as _plot_fit does
        images = (images - transform.shift.cpu()) / transform.scale.cpu()
    tensors = {"images": images.float().contiguous(), "true": true[wrong], "predicted": predicted[wrong]}
    with atomic_path(misclassified) as tmp:
        save_file(tensors, str(tmp))


# Enough examples to show a pattern in the report, few enough to look at.
_MAX_MISCLASSIFIED = 16
_EVAL_BATCH = 1024


def _eval_batches(source: Any) -> Iterator[tuple[Any, Any]]:
    """The batches of a split, in order; in-memory splits are sliced directly so that the training
    split's shuffling generator is not advanced."""
    X, y = getattr(source, "X", None), getattr(source, "y", None)
    if X is None or y is None:
        yield from source
        return
    for start in range(0, len(X), _EVAL_BATCH):
        yield X[start : start + _EVAL_BATCH], y[start : start + _EVAL_BATCH]


def _class_decision(loss_fn: Any) -> Any:
    """A function (outputs, targets) -> (predicted classes or None, number of output classes).

    Classification is integer labels with (N, C) logits (argmax), or a single output trained with
    bce_with_logits (threshold 0) or bce (threshold 0.5) against 0/1 targets; anything else is None.
    """
    import torch

    from trainwise.losses import loss_name

    threshold = {"bce_with_logits": 0.0, "bce": 0.5}.get(loss_name(loss_fn))

    def decide(outputs: Any, targets: Any) -> tuple[Any, int]:
        if not isinstance(outputs, torch.Tensor) or outputs.shape[:1] != targets.shape[:1]:
            return None, 0
        single = outputs.ndim == 1 or (outputs.ndim == 2 and outputs.shape[1] == 1)
        if single and threshold is not None and targets.numel() == len(targets):
            if not bool(((targets == 0) | (targets == 1)).all()):
                return None, 0
            return (outputs.reshape(-1) > threshold).long(), 2
        if outputs.ndim == 2 and outputs.shape[1] > 1 and targets.ndim == 1 and not targets.is_floating_point():
            return outputs.argmax(dim=1), int(outputs.shape[1])
        return None, 0

    return decide


def csv_text(columns: Mapping[str, Sequence[float]]) -> str:
    """Columns of numbers as CSV: a header of their names, then a row per position."""
    names = list(columns)
    rows = zip(*(columns[name] for name in names), strict=True)
    return "\n".join([",".join(names), *(",".join(repr(float(v)) for v in row) for row in rows)]) + "\n"


def training_seconds(history: Mapping[str, Sequence[float]]) -> float:
    """A run's training time: the sum of its epochs' times (each epoch's steps and validation, from the
    history's epoch_seconds, so a resumed run counts its earlier epochs too). FitResult.seconds, the CLI's
    summary, summary.json, the report and comparisons all give this one number."""
    return float(sum(history.get("epoch_seconds", [])))


def write_summary(run_dir: Path, summary: Mapping[str, object]) -> None:
    """summary.json of a run, mirrored into the index row (status and final metrics)."""
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1, default=str))
    final = summary.get("final", {})
    RunIndex(run_dir.parent).finish(run_dir.name, str(summary["status"]), final)  # type: ignore[arg-type]


def add_results(run_dir: Path, prefix: str, values: Mapping[str, float]) -> None:
    """Add metrics measured after training (e.g. test_accuracy) to a run's summary and index row."""
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["final"].update({f"{prefix}_{k}": v for k, v in values.items()})
    write_summary(run_dir, summary)
