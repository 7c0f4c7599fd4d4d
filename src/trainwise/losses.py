"""Loss functions by name, how an epoch's loss is aggregated from its batches, and a batch's loss (model_loss)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch
from torch import nn

from trainwise.data import TARGET_KEYS
from trainwise.errors import ConfigError, DataError, describe, first_line

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Reduction = Literal["mean", "sum"]

LOSSES: dict[str, type[nn.Module]] = {
    "mse": nn.MSELoss,
    "cross_entropy": nn.CrossEntropyLoss,
    "nll": nn.NLLLoss,
    "bce_with_logits": nn.BCEWithLogitsLoss,
    "bce": nn.BCELoss,
    "l1": nn.L1Loss,
    "huber": nn.HuberLoss,
    "smooth_l1": nn.SmoothL1Loss,
}

CLASSIFICATION_LOSSES = frozenset({"cross_entropy", "nll"})
TENSOR_OPTIONS = ("weight", "pos_weight")  # loss options torch takes as tensors


def make_loss(loss: str | LossFn, *, reduction: Reduction = "mean", **kwargs: object) -> LossFn:
    """A loss module from its name ("mse", "cross_entropy", ...), or the callable itself."""
    if not isinstance(loss, str):
        if not callable(loss):
            raise ConfigError(f"loss: expected a name or a callable, got {type(loss).__name__}")
        return loss
    key = loss_name(loss)
    if key not in LOSSES:
        raise ConfigError(f"loss.name: unknown loss {loss!r}; choose one of {', '.join(sorted(LOSSES))}")
    if reduction not in ("mean", "sum"):
        raise ConfigError(f"loss.reduction: {reduction!r} is not allowed; use 'mean' or 'sum'")
    kwargs = {name: _as_tensor_option(name, value) for name, value in kwargs.items()}
    try:
        return LOSSES[key](reduction=reduction, **kwargs)
    except Exception as exc:
        # the options torch refused: each one whose removal lets the loss be made (all of them when only their
        # combination fails), decided by trying rather than by reading torch's message, whose wording changes
        keys = [name for name in kwargs if _builds(key, reduction, {k: v for k, v in kwargs.items() if k != name})]
        keys = keys or list(kwargs)
        where = ", ".join(f"loss.{name}" for name in keys) or "loss.name"
        given = ", ".join(f"{name}={kwargs[name]!r}" for name in keys) or "its defaults"
        hint = "; give a list of numbers (one per class) or 'balanced'" if set(keys) & set(TENSOR_OPTIONS) else ""
        raise ConfigError(f"{where}: loss '{key}' rejected {given} ({first_line(exc)}){hint}") from None


def _as_tensor_option(name: str, value: object) -> object:
    # TOML has arrays, torch's losses want tensors: weight = [1.0, 3.0] is a per-class weight tensor
    if name in TENSOR_OPTIONS and isinstance(value, list | tuple):
        try:
            return torch.tensor(value, dtype=torch.float32)
        except (TypeError, ValueError):
            return value  # torch's own message, naming the key, comes from building the loss
    return value


def balanced_weights(name: str, y: torch.Tensor, n_classes: int | None = None) -> torch.Tensor:
    """Class weights that make every class count as much in the loss, whatever its frequency.

    For cross_entropy and nll, the weight of class c is N / (C * count_c), scikit-learn's "balanced"
    (a class absent from y gets 1); for bce_with_logits, the pos_weight of each output is its negatives
    over its positives.

    Args:
        name: the loss's name.
        y: the training targets: class labels (N,), one-hot or probability rows (N, C), or 0/1 targets.
        n_classes: the number of classes, when some may be absent from y.
    """
    if name in CLASSIFICATION_LOSSES:
        if y.ndim >= 2 and y.shape[-1] > 1:
            counts = y.reshape(-1, y.shape[-1]).double().sum(0)
        else:
            counts = torch.bincount(y.reshape(-1).long(), minlength=n_classes or 0).double()
        classes = max(n_classes or 0, counts.numel())
        counts = torch.nn.functional.pad(counts, (0, classes - counts.numel()))
        weights = torch.where(counts > 0, counts.sum() / (classes * counts.clamp(min=1)), torch.ones_like(counts))
        return weights.float()
    if name == "bce_with_logits":
        targets = y.reshape(y.shape[0], -1).double()
        positives = targets.sum(0)
        return ((targets.shape[0] - positives) / positives.clamp(min=1)).float()
    raise ConfigError(
        f"loss.weight: 'balanced' weights classes; loss '{name}' has none (use cross_entropy, nll or bce_with_logits)"
    )


def resolve_balanced(
    name: str, options: dict[str, object], y: torch.Tensor, n_classes: int | None
) -> dict[str, object]:
    """The loss options with weight = "balanced" (pos_weight for bce_with_logits) computed from the labels."""
    key = loss_name(name)
    resolved = dict(options)
    for option in TENSOR_OPTIONS:
        if resolved.get(option) == "balanced":
            resolved[option] = balanced_weights(key, y, n_classes)
    return resolved


def _builds(key: str, reduction: str, options: dict[str, object]) -> bool:
    try:
        LOSSES[key](reduction=reduction, **options)
    except Exception:
        return False
    return True


def loss_reduction(loss_fn: LossFn | None) -> str:
    """'sum' when the loss adds over samples (the epoch loss is then the sum over batches), else 'mean'.

    Reads a loss module's `reduction`, or the bound keyword of functools.partial(F.mse_loss, reduction="sum").
    """
    reduction = getattr(loss_fn, "reduction", None)
    if reduction is None:
        keywords = getattr(loss_fn, "keywords", None)
        reduction = keywords.get("reduction") if isinstance(keywords, dict) else None
    return "sum" if reduction == "sum" else "mean"


def loss_name(loss_fn: str | LossFn) -> str:
    """The registry name of a loss given by name (any case, "-" or "_") or as a built-in module ('' for user
    callables)."""
    if isinstance(loss_fn, str):
        return loss_fn.lower().replace("-", "_")
    for name, cls in LOSSES.items():
        if type(loss_fn) is cls:
            return name
    return ""


def check_targets(loss_fn: LossFn, y: torch.Tensor) -> None:
    """Class-label losses take integer labels, or class probabilities of shape (N, classes): one float per
    sample is neither, and torch would only say so from inside the first step."""
    name = loss_name(loss_fn)
    if name in CLASSIFICATION_LOSSES and y.is_floating_point() and y.ndim == 1:
        raise DataError(
            f"y: loss '{name}' needs integer class labels, but the targets are {str(y.dtype).removeprefix('torch.')} "
            "numbers, one per sample; pass y.long() if they are labels 0..C-1, or use a regression loss such as 'mse'"
        )


def model_loss(network: Any, xb: Any, yb: Any, loss_fn: LossFn | None) -> tuple[Any, torch.Tensor]:
    """(output, loss) of the network on a batch: network(x), network(*inputs) for a tuple, network(**inputs)
    for a dict (its target entry left out), and loss_fn(output, target). With loss_fn None the model
    computes its loss: it gets the target too (network(x, y), network(*inputs, y), the whole dict) and
    returns (output, loss) as nanoGPT does, an object with .loss (and .logits) as Hugging Face models do,
    a dict with "loss", or the loss alone; the output is then what metrics compare with the target.

    Args:
        network: the model (or its wrapper).
        xb, yb: the batch's inputs and target (None: there is none).
        loss_fn: the loss function, or None.
    """
    if loss_fn is not None:
        if isinstance(xb, dict):
            output = network(**{key: value for key, value in xb.items() if key not in TARGET_KEYS})
        else:
            output = network(*xb) if isinstance(xb, tuple) else network(xb)
        return output, loss_fn(output, yb)
    try:
        if isinstance(xb, dict):
            output = network(**xb)
        else:
            args = xb if isinstance(xb, tuple) else (xb,)
            output = network(*args, yb) if yb is not None else network(*args)
    except TypeError as exc:  # most often a model that takes no target: it computes no loss
        raise ConfigError(
            f"loss: with loss=None the model computes its loss and gets the target too, but calling it so failed "
            f"({first_line(exc)}); give fit a loss ('mse', ...) or let the model take the target"
        ) from exc
    return _own_loss(output)


def _own_loss(output: Any) -> tuple[Any, torch.Tensor]:
    """(predictions, loss) from what a model that computes its own loss returned."""
    if isinstance(output, Mapping) and isinstance(output.get("loss"), torch.Tensor):
        return output.get("logits"), output["loss"]
    if isinstance(getattr(output, "loss", None), torch.Tensor):
        return getattr(output, "logits", None), output.loss
    pair = isinstance(output, tuple | list) and len(output) == 2
    if pair and isinstance(output[1], torch.Tensor) and output[1].ndim == 0:
        return output[0], output[1]
    if isinstance(output, torch.Tensor) and output.ndim == 0:
        return None, output
    raise ConfigError(
        f"loss: with loss=None the model must compute the loss, but it returned {describe(output)}; return "
        "(output, loss), an object with .loss or a dict with 'loss', or give fit a loss ('mse', ...)"
    )
