"""Saved models: weights in safetensors, a JSON description that rebuilds the model, atomic writes.

    trainwise.save(model, "my-model")            # my-model/model.safetensors + my-model/model.json
    model = trainwise.load("my-model")           # rebuilt and filled; also takes a run folder
    trainwise.save(net, "net", init_args={"hidden": 64})   # a class of yours that needs arguments
    trainwise.load("legacy.pt", model=MyNet())   # a state_dict saved with torch.save

Nothing here unpickles untrusted data: a .pt/.pth file goes through torch.load(weights_only=True),
and a whole pickled model (torch.save(model), as the W5 write-up does) is refused unless the caller
passes trust_pickle=True, because unpickling runs whatever code the file names. (Rebuilding a model
given by import path imports its module, which runs that module's code: by design, as in training.)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainwise import rng
from trainwise.callbacks import Callback, Logs, monitor_mode, monitored
from trainwise.errors import ConfigError, TrainwiseError, first_line
from trainwise.models import describe_model
from trainwise.state import TrainState

FORMAT = "trainwise-model"
VERSION = 2  # 2: any rebuildable model (1: build_model specs only; still read)
WEIGHTS = "model.safetensors"
DESCRIPTION = "model.json"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path next to `path`; when the block ends without error, its file replaces `path`
    (fsync, then rename): a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    tmp = Path(temporary)
    try:
        yield tmp
        with open(tmp, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a power cut
        finally:
            os.close(directory)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save(
    model: nn.Module,
    path: str | Path,
    *,
    config: Mapping[str, Any] | None = None,
    init_args: Mapping[str, Any] | None = None,
) -> Path:
    """Save the weights (safetensors) and a description that rebuilds the model (JSON) in folder `path`.

    load(path) alone rebuilds: models made by trainwise (build_model, recipes), models made of torch.nn's
    own layers (Sequential, Linear, Conv2d, LSTM, ...), and a class of yours that can be imported
    (not one defined in __main__ or a notebook) and takes no arguments, or takes `init_args` (JSON
    values: its constructor's keyword arguments). Anything else saves too, and load(path, model=...) fills
    a model you construct. config: any JSON-able record to keep with it.

    Args:
        model: the model to save.
        path: the folder to write model.safetensors and model.json into; made if missing, files replaced atomically.
        config: a JSON-able record kept in model.json (e.g. the training config); None: none.
        init_args: the keyword arguments that rebuild a class of yours, as JSON values; None: it takes none.

    Returns:
        The folder written, as a Path.

    Raises:
        ConfigError: init_args that are not JSON values, or with which the model's class does not rebuild it.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise TrainwiseError(f"{folder}: exists and is not a folder; trainwise.save writes a folder of two files")
    try:
        description = describe(model, init_args=init_args)
    except ConfigError as exc:
        raise ConfigError(f"trainwise.save: {exc}") from None
    description["config"] = dict(config) if config is not None else None
    try:
        write_model(folder, model, description)
    except OSError as exc:
        raise TrainwiseError(f"{folder}: cannot save the model there ({exc.strerror or exc})") from None
    return folder


def describe(model: nn.Module, *, init_args: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """model.json's content for `model` (format, version and trainwise.models.describe_model's record)."""
    return {"format": FORMAT, "version": VERSION, **describe_model(model, init_args=init_args)}


def write_model(folder: Path, model: nn.Module, description: Mapping[str, Any]) -> None:
    """model.safetensors and model.json in `folder`, each replaced atomically. An OSError (a full disk, a
    read-only folder) is left to the caller, which knows what the files are for (a save, a run record)."""
    from safetensors.torch import save_model

    with atomic_path(folder / WEIGHTS) as tmp:
        save_model(model, str(tmp))
    atomic_write_text(folder / DESCRIPTION, json.dumps(description, indent=1, default=str))


def load(path: str | Path, *, model: nn.Module | None = None, trust_pickle: bool = False) -> nn.Module:
    """Load a model saved by trainwise.save (or a run folder); a .safetensors file or a .pt/.pth state_dict
    into `model`. A pickled whole model is refused unless trust_pickle=True.

    Args:
        path: a trainwise.save folder or a run folder, a .safetensors file, or a .pt/.pth/.bin torch file.
        model: a model to load the weights into; None rebuilds it from the folder's model.json (a file of
            weights only needs one).
        trust_pickle: allow a .pt file that holds a whole pickled model; unpickling runs any code the file names,
            so only for files you trust (default False).

    Returns:
        The model with the saved weights: `model` itself when one is given (unless the file is a pickled model).
    """
    source = Path(path)
    if not source.exists():
        raise TrainwiseError(f"{source}: no such file or folder")
    if source.is_dir():
        return _load_folder(source, model)
    if source.suffix == ".safetensors":
        if model is None:
            raise TrainwiseError(
                f"{source}: weights only; pass model=... to load them into, or save with trainwise.save"
            )
        return _fill(model, source)
    if source.suffix in (".pt", ".pth", ".bin"):
        return _load_torch_file(source, model, trust_pickle)
    raise TrainwiseError(f"{source}: unknown model format {source.suffix!r}; use a trainwise.save folder, "
                         ".safetensors or .pt/.pth")  # fmt: skip


def _load_folder(folder: Path, model: nn.Module | None) -> nn.Module:
    weights, description_file = folder / WEIGHTS, folder / DESCRIPTION
    if not weights.is_file():
        raise TrainwiseError(f"{folder}: no {WEIGHTS} in it; is it a trainwise.save folder or a finished run?")
    if model is None:
        if not description_file.is_file():
            raise TrainwiseError(f"{folder}: no {DESCRIPTION} to rebuild the model from; pass model=...")
        try:
            description = json.loads(description_file.read_text())
        except ValueError as exc:
            raise TrainwiseError(f"{description_file}: not valid JSON ({exc})") from None
        model = _rebuild(description, description_file)
    return _fill(model, weights)


def _rebuild(description: Any, source: Path) -> nn.Module:
    """The model a model.json describes: this version's description, version 1's (a build_model spec or
    none), or a run folder's from before versions (the spec itself)."""
    from trainwise.models import build_described, rebuild_model

    if not isinstance(description, dict):
        raise TrainwiseError(f"{source}: not a model description")
    name = str(description.get("class", "")).rpartition(":")[2].rpartition(".")[2] or "YourModel"
    try:
        if description.get("format") != FORMAT:  # an older run folder's model.json: the spec itself
            return build_described({"kind": "spec", "spec": description})
        version = description.get("version")
        if version == 1:
            if description.get("model") is None:
                raise TrainwiseError(
                    f"{source}: the saved model ({name}) was not built by trainwise, so its constructor is "
                    f"unknown; pass model={name}(...) to load the weights into"
                )
            return build_described({"kind": "spec", "spec": description["model"]})
        if version != VERSION:
            raise TrainwiseError(f"{source}: format version {version!r}; this trainwise reads versions 1 to {VERSION}")
        if description.get("build") is None:
            raise TrainwiseError(
                f"{source}: {name} cannot be rebuilt from its description ({description.get('problem')}); "
                f"pass model={name}(...) to load the weights into"
            )
        return rebuild_model(description)
    except ConfigError as exc:
        raise TrainwiseError(f"{source}: cannot rebuild the model ({exc}); pass model={name}(...) instead") from None
    except (TypeError, ValueError, AttributeError) as exc:  # a hand-edited or damaged description
        problem = first_line(exc)
        raise TrainwiseError(f"{source}: damaged model description ({problem}); pass model={name}(...)") from None


def _fill(model: nn.Module, weights: Path) -> nn.Module:
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    try:
        load_model(model, str(weights))
    except RuntimeError as exc:  # missing, unexpected or differently shaped tensors
        raise _misfit(weights, exc) from None
    except (SafetensorError, OSError) as exc:
        raise TrainwiseError(f"{weights}: not a readable safetensors file ({exc}); it may be truncated") from None
    return model


def _load_torch_file(source: Path, model: nn.Module | None, trust_pickle: bool) -> nn.Module:
    import pickle

    try:
        loaded = torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not trust_pickle:
            raise TrainwiseError(
                f"{source}: holds a pickled Python object (torch.save(model)), and unpickling runs any code the "
                "file names; load it only if you trust where it came from (--trust-pickle / trust_pickle=True), "
                "then save it with trainwise.save"
            ) from None
        loaded = torch.load(source, map_location="cpu", weights_only=False)  # the caller vouched for it
    except (RuntimeError, EOFError, OSError) as exc:
        raise TrainwiseError(f"{source}: not a readable torch file ({exc})") from None
    if isinstance(loaded, nn.Module):
        return loaded
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise TrainwiseError(f"{source}: holds a {type(loaded).__name__}, not a state_dict of tensors")
    if model is None:
        raise TrainwiseError(f"{source}: a state_dict (weights only); pass model=... to load it into")
    try:
        model.load_state_dict(loaded)
    except RuntimeError as exc:
        raise _misfit(source, exc) from None
    return model


def _misfit(source: Path, exc: RuntimeError) -> TrainwiseError:
    """torch's many-line report of missing, unexpected or differently shaped tensors, as one line."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    details = [line for line in lines if not line.endswith(":")] or lines or [str(exc)]
    more = f"; and {len(details) - 1} more" if len(details) > 1 else ""
    return TrainwiseError(
        f"{source}: does not fit the model ({details[0].rstrip('.')}{more}); was it saved from another architecture?"
    )


EXPORT_FORMATS = ("safetensors", "torchscript", "onnx")


def export(model: nn.Module, path: str | Path, *, format: str, example: torch.Tensor | None = None) -> Path:
    """Write the model for use outside trainwise: "safetensors" (a trainwise.save folder), "torchscript"
    (torch.jit.trace on `example`, one batch of inputs) or "onnx" (needs the onnx package). Only
    safetensors needs no example."""
    target = Path(path)
    if format not in EXPORT_FORMATS:
        raise TrainwiseError(f"--format {format!r}: use one of {', '.join(EXPORT_FORMATS)}")
    if format == "safetensors":
        return save(model, target)
    if example is None:
        raise TrainwiseError(f"export: format {format!r} traces the model and needs example=<one batch of inputs>")
    was_training = model.training
    model.eval()  # dropout off, batch norm on its running statistics: the model as it predicts
    try:
        if format == "torchscript":
            # torch deprecates TorchScript for torch.export, but TorchScript files are what C++ and
            # mobile runtimes load today; the warning would only confuse whoever asked for one
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                traced = torch.jit.trace(model, example)
                with atomic_path(target) as tmp:
                    torch.jit.save(traced, str(tmp))
        else:
            import importlib.util

            if importlib.util.find_spec("onnx") is None:
                raise TrainwiseError("--format onnx needs the onnx package: pip install onnx (or use torchscript)")
            with atomic_path(target) as tmp:
                torch.onnx.export(model, (example,), str(tmp), input_names=["input"], output_names=["output"],
                                  dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})  # fmt: skip
    except OSError as exc:
        raise TrainwiseError(f"{target}: cannot write the export there ({exc.strerror or exc})") from None
    finally:
        model.train(was_training)
    return target


# ----------------------------------------------------------------------------- training checkpoints
# A checkpoint is a folder step-<N>: weights.safetensors holds every tensor (model, optimizer state,
# random states, the epoch's running sums, callbacks' tensors), state.json everything else, tensors
# referenced by name. It is written in a hidden temporary folder renamed into place when complete, so a
# crash leaves the previous checkpoints and a temporary folder, never a step-<N> that loads wrong.

CHECKPOINT_FORMAT = "trainwise-checkpoint"
CHECKPOINT_VERSION = 1
TENSORS = "weights.safetensors"
STATE = "state.json"
CHECKPOINTS = "checkpoints"


class Checkpoint(Callback):
    """Saves training checkpoints that fit(resume=...) continues from exactly.

    Saves every `every_epochs` epochs, every `every_steps` optimizer steps and/or after `every_seconds`
    (checked at epoch ends; the default, 60 s, when none is given), at the end of training, and when
    SIGINT or SIGTERM stops it. Keeps the
    last `keep_last` and, with keep_best, the one with the best `monitor` value (val_loss when there is
    validation data, else loss). folder None: the run's folder/checkpoints (fit needs run_dir then).

    Args:
        folder: where the step-<N> checkpoint folders go; None: the run folder's checkpoints/ (needs fit's run_dir).
        every_epochs, every_steps: save every this many epochs / optimizer steps (at least 1); None: not by count.
        every_seconds: save at the first epoch end this many seconds after the last save; None: 60 when neither
            count is given, else not by time.
        keep_last: how many of the latest checkpoints to keep (default 2, at least 1).
        keep_best: also keep the checkpoint with the best `monitor` value (default True).
        monitor: the logged value that ranks checkpoints; None: val_loss with validation data, else loss.
        mode: "min", "max" or "auto" (default: maximize accuracies and R^2, minimize the rest).

    Raises:
        ConfigError: a count or interval below 1 (every_seconds not positive), or an unknown mode.
    """

    after_records = True  # last: it saves what every other callback did at the same hook

    def __init__(
        self,
        folder: str | Path | None = None,
        *,
        every_epochs: int | None = None,
        every_steps: int | None = None,
        every_seconds: float | None = None,
        keep_last: int = 2,
        keep_best: bool = True,
        monitor: str | None = None,
        mode: str = "auto",
    ) -> None:
        for name, value in (("every_epochs", every_epochs), ("every_steps", every_steps), ("keep_last", keep_last)):
            if value is not None and value < 1:
                raise ConfigError(f"checkpoint.{name}: must be at least 1, got {value}")
        if every_seconds is not None and every_seconds <= 0:
            raise ConfigError(f"checkpoint.every_seconds: must be positive, got {every_seconds}")
        if mode not in ("auto", "min", "max"):
            raise ConfigError(f"checkpoint.mode: {mode!r} is not allowed; use 'auto', 'min' or 'max'")
        if every_epochs is None and every_steps is None and every_seconds is None:
            every_seconds = 60.0  # not every epoch: W1's 5000 tiny epochs would spend most time saving
        self.folder = Path(folder) if folder is not None else None
        self.every_epochs, self.every_steps, self.every_seconds = every_epochs, every_steps, every_seconds
        self.keep_last, self.keep_best, self.monitor, self.mode = keep_last, keep_best, monitor, mode
        self.last: Path | None = None  # the latest checkpoint saved

    def on_train_begin(self, logs: Logs) -> None:
        self._last_time = time.monotonic()
        self._saved_step = -1

    def on_batch_end(self, batch: int, logs: Logs) -> None:
        if self.every_steps and self.state.stepped and self.state.step % self.every_steps == 0:
            self.save()

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        due = bool(self.every_epochs and (epoch + 1) % self.every_epochs == 0)
        due = due or bool(self.every_seconds and time.monotonic() - self._last_time >= self.every_seconds)
        if due:
            monitor = monitored(self.monitor, logs, "checkpoint.monitor", self.state)
            if monitor is None:  # not validated this epoch: no value to rank the checkpoint by
                self.save()
                return
            mode = monitor_mode(monitor, self.mode, self.state.metrics)
            self.save({"name": monitor, "value": float(logs[monitor]), "mode": mode})

    def on_train_end(self, logs: Logs) -> None:
        state = self.state
        if logs.get("status") in ("completed", "stopped") or state.interrupted:
            self.save()
        if state.interrupted and self.last is not None:
            command = f"`trainwise fit --resume {state.run.name}` or " if state.run is not None else ""
            print(
                f"{state.interrupted}: training stopped at epoch {state.epoch + 1}, step {state.step}; checkpoint "
                f"saved in {self.last}; resume with {command}fit(..., resume={str(self.last)!r})",
                file=sys.stderr,
            )

    def save(self, monitor: dict[str, Any] | None = None) -> Path:
        """Save a checkpoint of the training state now (a consistent point: between steps)."""
        state = self.state
        if state.step == self._saved_step:  # nothing has changed since the last one
            return self.last  # type: ignore[return-value]
        folder = self.folder or (state.run / CHECKPOINTS if state.run is not None else None)
        if folder is None:
            raise ConfigError("Checkpoint: no folder to save in; pass fit(..., run_dir=...) or Checkpoint(folder=...)")
        if self.folder is None and state.run is not None and not state.run.is_dir():  # not a new, partial one
            raise TrainwiseError(run_folder_gone(state.run))
        self.last = save_training_state(state, folder, monitor=monitor)
        self._saved_step, self._last_time = state.step, time.monotonic()
        _prune(folder, self.keep_last, self.keep_best)
        return self.last


def run_folder_gone(run: Path) -> str:
    """The message when a run's folder disappears while it trains (deleted, or its disk unmounted)."""
    return (
        f"{run}: the run folder was deleted while training, and its records and checkpoints with it; "
        "training stopped (train again to get a new run)"
    )


def save_training_state(state: TrainState, folder: Path, *, monitor: dict[str, Any] | None = None) -> Path:
    """Write state into folder/step-<N> (atomically) and return that path."""
    from safetensors.torch import save_file

    mid_epoch = state.batch > 0
    epochs_done = state.epoch if mid_epoch else len(state.history.get("loss", []))
    tree = {
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "random": rng.capture(state.model),
        "batches": state.batches.state_dict(mid_epoch=mid_epoch) if state.batches is not None else {},
        "epoch_loss": state.epoch_loss if mid_epoch else None,
        "metrics": [metric.state_dict() for metric in state.metrics] if mid_epoch else [],
        "callbacks": {key: cb.state_dict() for key, cb in _keyed(state.callbacks) if cb.state_dict() is not None},
    }
    tensors: dict[str, torch.Tensor] = {}
    encoded = _encode(tree, tensors, "")
    description = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model_class": f"{type(state.model).__module__}:{type(state.model).__qualname__}",
        "epoch": epochs_done,  # epochs finished
        "batch": state.batch,  # batches finished in the next one
        "step": state.step,
        "epochs": state.epochs,
        "steps_per_epoch": state.steps_per_epoch,
        "samples": getattr(state.batches, "n", None),
        "epoch_samples": state.epoch_samples if mid_epoch else 0,
        "stop_training": state.stop_training,
        "monitor": monitor,
        "transform": state.transform.to_dict() if state.transform is not None else None,
        "history": state.history,
        "validations": state.validations,
        "findings": [finding.to_dict() for finding in state.findings],
        "doctor_actions": state.doctor_actions,
        "state": encoded,
    }
    target = folder / f"step-{state.step:09d}"
    temporary: Path | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder))
        save_file(tensors, str(temporary / TENSORS))
        description["tensors_bytes"] = (temporary / TENSORS).stat().st_size
        (temporary / STATE).write_text(json.dumps(description, indent=1))
        for name in (TENSORS, STATE):
            with open(temporary / name, "rb") as written:
                os.fsync(written.fileno())
        if target.exists():  # a checkpoint of the same step from an earlier, interrupted run
            shutil.rmtree(target)
        os.replace(temporary, target)
        _fsync_folder(folder)
    except OSError as exc:  # a full disk, a read-only or vanished folder: the earlier checkpoints are intact
        raise TrainwiseError(f"{folder}: cannot write a checkpoint there ({exc.strerror or exc})") from None
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    return target


def _fsync_folder(folder: Path) -> None:
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _keyed(callbacks: Sequence[Callback]) -> Iterator[tuple[str, Callback]]:
    """Callbacks by class name (EarlyStopping, EarlyStopping#2, ...): what a resumed run matches them by."""
    seen: dict[str, int] = {}
    for callback in callbacks:
        name = type(callback).__name__
        seen[name] = seen.get(name, 0) + 1
        yield (name if seen[name] == 1 else f"{name}#{seen[name]}"), callback


def _encode(value: Any, tensors: dict[str, torch.Tensor], key: str) -> Any:
    """A JSON-able tree: tensors go into `tensors` under their path; tuples, arrays and non-string dict
    keys (an optimizer's parameter indices) are tagged so _decode gives back the same types."""
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": key}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(item, tensors, f"{key}.{i}") for i, item in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(item, tensors, f"{key}.{i}") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _encode(v, tensors, f"{key}.{k}") for k, v in value.items()}
        return {"__items__": [[_encode(k, tensors, f"{key}.k{i}"), _encode(v, tensors, f"{key}.{i}")]
                              for i, (k, v) in enumerate(value.items())]}  # fmt: skip
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TrainwiseError(f"checkpoint: cannot save a {type(value).__name__} ({key}); a callback's state_dict "
                         "may hold tensors, arrays, numbers, strings, lists, tuples and dicts")  # fmt: skip


def _decode(value: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(item, tensors) for item in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if "__ndarray__" in value:
        return np.asarray(value["__ndarray__"], dtype=value["dtype"])
    if "__tuple__" in value:
        return tuple(_decode(item, tensors) for item in value["__tuple__"])
    if "__items__" in value:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in value["__items__"]}
    return {k: _decode(v, tensors) for k, v in value.items()}


def _step_of(folder: Path) -> int:
    try:
        return int(folder.name.removeprefix("step-"))
    except ValueError:
        return -1


def checkpoints_in(folder: Path) -> list[Path]:
    """The complete checkpoints in a checkpoints folder, oldest first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.name.startswith("step-") and _step_of(p) >= 0 and (p / STATE).is_file()]
    return sorted(found, key=_step_of)


def _prune(folder: Path, keep_last: int, keep_best: bool) -> None:
    """Delete all but the last `keep_last` checkpoints and the best one; and temporary folders a crash left."""
    saved = checkpoints_in(folder)
    keep = set(saved[-keep_last:])
    best = best_checkpoint(folder) if keep_best else None
    if best is not None:
        keep.add(best)
    for path in saved:
        if path not in keep:
            shutil.rmtree(path, ignore_errors=True)
    for leftover in folder.glob(".step-*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)


def best_checkpoint(folder: Path) -> Path | None:
    """The checkpoint with the best monitored value in a checkpoints folder (None if none has one)."""
    best: tuple[float, Path] | None = None
    for path in checkpoints_in(folder):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            monitor = json.loads((path / STATE).read_text())["monitor"]
            if monitor and math.isfinite(monitor["value"]):
                score = monitor["value"] if monitor["mode"] == "min" else -monitor["value"]
                if best is None or score <= best[0]:
                    best = (score, path)
    return best[1] if best else None


class TrainingCheckpoint:
    """A checkpoint read back: fit(resume=...) calls restore_progress before the callbacks start and
    restore_training after their on_train_begin (which makes schedulers and resets early stopping)."""

    def __init__(self, path: Path, description: dict[str, Any], tree: dict[str, Any]) -> None:
        self.path, self.description, self.tree = path, description, tree

    @property
    def run(self) -> Path | None:
        """The run folder the checkpoint belongs to (<run>/checkpoints/step-N), if it is in one."""
        run = self.path.parent.parent
        recorded = any((run / name).is_file() for name in ("config.toml", "metrics.csv", "environment.json"))
        return run if self.path.parent.name == CHECKPOINTS and recorded else None

    @classmethod
    def read(cls, source: str | Path) -> TrainingCheckpoint:
        """A step-N folder; or a run or checkpoints folder, for its latest complete checkpoint."""
        path = Path(source)
        if not path.exists():
            raise TrainwiseError(f"resume: {path}: no such checkpoint or run folder")
        if (path / STATE).is_file() or (path / TENSORS).is_file():
            return cls._read(path)
        folder = path / CHECKPOINTS if (path / CHECKPOINTS).is_dir() else path
        found = checkpoints_in(folder)
        if not found:
            raise TrainwiseError(f"resume: no checkpoint in {path}; fit saves them with the Checkpoint callback "
                                 "(`trainwise fit` does by default)")  # fmt: skip
        problems = []
        for candidate in reversed(found):  # the newest that loads: a damaged one never ends the run
            try:
                loaded = cls._read(candidate)
            except TrainwiseError as exc:
                problems.append(str(exc))
                continue
            for problem in problems:
                warnings.warn(f"skipped a damaged checkpoint: {problem}", stacklevel=2)
            return loaded
        raise TrainwiseError(problems[0])

    @classmethod
    def _read(cls, path: Path) -> TrainingCheckpoint:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            description = json.loads((path / STATE).read_text())
        except (OSError, ValueError) as exc:
            raise TrainwiseError(f"{path}: damaged checkpoint, {STATE} is unreadable ({exc}); resume from an "
                                 "earlier one") from None  # fmt: skip
        if not isinstance(description, dict) or description.get("format") != CHECKPOINT_FORMAT:
            raise TrainwiseError(f"{path}: not a trainwise training checkpoint")
        if description.get("version") != CHECKPOINT_VERSION:
            raise TrainwiseError(f"{path}: checkpoint format version {description.get('version')!r}; this "
                                 f"trainwise reads version {CHECKPOINT_VERSION}")  # fmt: skip
        weights = path / TENSORS
        size = weights.stat().st_size if weights.is_file() else 0
        if size != description.get("tensors_bytes"):
            raise TrainwiseError(f"{path}: truncated checkpoint, {TENSORS} has {size} bytes of "
                                 f"{description.get('tensors_bytes')}; resume from an earlier one")  # fmt: skip
        try:
            tensors = load_file(str(weights))
        except (SafetensorError, OSError) as exc:
            raise TrainwiseError(f"{path}: damaged checkpoint, {TENSORS} is unreadable ({exc})") from None
        try:
            tree = _decode(description["state"], tensors)
        except KeyError as exc:
            raise TrainwiseError(f"{path}: damaged checkpoint, tensor {exc} is missing") from None
        return cls(path, description, tree)

    def restore_progress(self, state: TrainState) -> None:
        """Weights, position, history and findings; checks the run has the same data and model."""
        from trainwise.doctor.findings import Finding

        info = self.description
        have = (getattr(state.batches, "n", None), state.steps_per_epoch)
        if (info["samples"], info["steps_per_epoch"]) != have:
            raise TrainwiseError(
                f"resume: {self.path} was saved while training on {info['samples']} samples in "
                f"{info['steps_per_epoch']} batches per epoch; this run has {have[0]} samples in {have[1]}; "
                "resume with the same data and batch size"
            )
        saved_transform, transform = info["transform"], state.transform
        if (saved_transform is None) != (transform is None) or (
            transform is not None and not _same_transform(saved_transform, transform.to_dict())
        ):
            raise TrainwiseError(f"resume: the inputs' scaling differs from {self.path}'s (other data or another "
                                 "normalize setting); resume with the same data and settings")  # fmt: skip
        if info["epoch"] > state.epochs or (info["epoch"] == state.epochs and info["batch"]):
            raise TrainwiseError(f"resume: {self.path} is at epoch {info['epoch']}, past this run's {state.epochs} "
                                 "epochs; give more epochs to train further")  # fmt: skip
        try:
            state.model.load_state_dict(self.tree["model"])
        except RuntimeError as exc:
            raise _misfit(self.path, exc) from None
        state.epoch, state.batch, state.step = info["epoch"], info["batch"], info["step"]
        state.stop_training = info["stop_training"]
        state.history = {key: list(values) for key, values in info["history"].items()}
        state.validations = {key: list(values) for key, values in info.get("validations", {}).items()}
        state.findings = [Finding(**{**f, "evidence": {k: float(v) for k, v in f["evidence"].items()}})
                          for f in info["findings"]]  # fmt: skip
        state.doctor_actions = list(info["doctor_actions"])
        if state.batch:  # mid-epoch: the running sums of the batches done
            state.epoch_loss = self.tree["epoch_loss"].to(state.device)
            state.epoch_samples = info["epoch_samples"]
            for metric, saved in zip(state.metrics, self.tree["metrics"], strict=False):
                metric.load_state_dict({k: v.to(state.device) if v is not None else None for k, v in saved.items()})

    def restore_training(self, state: TrainState, callbacks: Sequence[Callback]) -> None:
        """Optimizer, callbacks, batch order and random states, in that order (the last thing before training)."""
        try:
            state.optimizer.load_state_dict(self.tree["optimizer"])
        except (ValueError, KeyError) as exc:
            raise TrainwiseError(f"resume: {self.path}'s optimizer state does not fit this optimizer ({exc}); "
                                 "resume with the same optimizer") from None  # fmt: skip
        saved = self.tree["callbacks"]
        for key, callback in _keyed(callbacks):
            if key in saved:
                callback.load_state_dict(saved[key])
        if state.batches is not None:
            state.batches.load_state_dict(self.tree["batches"])
        rng.restore(self.tree["random"], state.model)


def _same_transform(saved: dict[str, Any], current: dict[str, Any]) -> bool:
    if saved["method"] != current["method"] or saved["shape"] != current["shape"]:
        return False
    return all(
        math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7)
        for key in ("scale", "shift")
        for a, b in zip(saved[key], current[key], strict=True)
    )
