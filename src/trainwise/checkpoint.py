"""Saved models: weights in safetensors, a JSON description that rebuilds the model, atomic writes.

    trainwise.save(model, "my-model")            # my-model/model.safetensors + my-model/model.json
    model = trainwise.load("my-model")           # rebuilt and filled; also takes a run folder
    trainwise.load("legacy.pt", model=MyNet())   # a state_dict saved with torch.save

Nothing here unpickles untrusted data: a .pt/.pth file goes through torch.load(weights_only=True),
and a whole pickled model (torch.save(model), as the W5 write-up does) is refused unless the caller
passes trust_pickle=True, because unpickling runs whatever code the file names. (Rebuilding a model
given by import path imports its module, which runs that module's code: by design, as in training.)
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainwise.errors import TrainwiseError
from trainwise.models import spec_of

FORMAT = "trainwise-model"
VERSION = 1
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


def save(model: nn.Module, path: str | Path, *, config: Mapping[str, Any] | None = None) -> Path:
    """Save the weights (safetensors) and a description that rebuilds the model (JSON) in folder `path`.

    Models built by trainwise (build_model, recipes, import-path models from a config) are rebuilt by
    load(path) alone; for other models load(path, model=...) fills a model you construct."""
    from safetensors.torch import save_model

    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise TrainwiseError(f"{folder}: exists and is not a folder; trainwise.save writes a folder of two files")
    description = {
        "format": FORMAT,
        "version": VERSION,
        "model": spec_of(model),
        "class": f"{type(model).__module__}:{type(model).__qualname__}",
        "config": dict(config) if config is not None else None,
    }
    try:
        with atomic_path(folder / WEIGHTS) as tmp:
            save_model(model, str(tmp))
        atomic_write_text(folder / DESCRIPTION, json.dumps(description, indent=1, default=str))
    except OSError as exc:
        raise TrainwiseError(f"{folder}: cannot save the model there ({exc.strerror or exc})") from None
    return folder


def load(path: str | Path, *, model: nn.Module | None = None, trust_pickle: bool = False) -> nn.Module:
    """Load a model saved by trainwise.save (or a run folder); a .safetensors file or a .pt/.pth state_dict
    into `model`. A pickled whole model is refused unless trust_pickle=True."""
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
    from trainwise.models import build_model

    if not isinstance(description, dict):
        raise TrainwiseError(f"{source}: not a model description")
    if description.get("format") == FORMAT:
        if description.get("version") != VERSION:
            raise TrainwiseError(
                f"{source}: format version {description.get('version')!r}; this trainwise reads version {VERSION}"
            )
        spec = description.get("model")
        if spec is None:
            raise TrainwiseError(
                f"{source}: the saved model ({description.get('class')}) was not built by trainwise, so "
                "its constructor is unknown; pass model=<a new instance> to load the weights into"
            )
    else:  # a run folder's model.json is the spec itself
        spec = description
    try:
        return build_model(spec["name"], spec["in_features"], spec["out_features"], **spec.get("options", {}))
    except (KeyError, TypeError) as exc:
        raise TrainwiseError(f"{source}: incomplete model description (missing {exc})") from None


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
    first = str(exc).strip().splitlines()
    detail = first[0] if first else exc
    return TrainwiseError(f"{source}: does not fit the model ({detail}); was it saved from another architecture?")


EXPORT_FORMATS = ("safetensors", "torchscript", "onnx")


def export(model: nn.Module, path: str | Path, *, format: str, example: torch.Tensor) -> Path:
    """Write the model for use outside trainwise: "safetensors" (a trainwise.save folder), "torchscript"
    (torch.jit.trace on `example`, one batch of inputs) or "onnx" (needs the onnx package)."""
    target = Path(path)
    if format not in EXPORT_FORMATS:
        raise TrainwiseError(f"--format {format!r}: use one of {', '.join(EXPORT_FORMATS)}")
    if format == "safetensors":
        return save(model, target)
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
