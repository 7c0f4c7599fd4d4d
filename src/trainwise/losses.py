"""Loss functions by name, and how an epoch's loss is aggregated from its batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from trainwise.errors import ConfigError, DataError, first_line

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


def make_loss(loss: str | LossFn, *, reduction: Reduction = "mean", **kwargs: object) -> LossFn:
    """A loss module from its name ("mse", "cross_entropy", ...), or the callable itself."""
    if not isinstance(loss, str):
        if not callable(loss):
            raise ConfigError(f"loss: expected a name or a callable, got {type(loss).__name__}")
        return loss
    key = loss.lower().replace("-", "_")
    if key not in LOSSES:
        raise ConfigError(f"loss.name: unknown loss {loss!r}; choose one of {', '.join(sorted(LOSSES))}")
    if reduction not in ("mean", "sum"):
        raise ConfigError(f"loss.reduction: {reduction!r} is not allowed; use 'mean' or 'sum'")
    try:
        return LOSSES[key](reduction=reduction, **kwargs)
    except Exception as exc:
        # the options torch refused: each one whose removal lets the loss be made (all of them when only their
        # combination fails), decided by trying rather than by reading torch's message, whose wording changes
        keys = [name for name in kwargs if _builds(key, reduction, {k: v for k, v in kwargs.items() if k != name})]
        keys = keys or list(kwargs)
        where = ", ".join(f"loss.{name}" for name in keys) or "loss.name"
        given = ", ".join(f"{name}={kwargs[name]!r}" for name in keys) or "its defaults"
        raise ConfigError(f"{where}: loss '{key}' rejected {given} ({first_line(exc)})") from None


def _builds(key: str, reduction: str, options: dict[str, object]) -> bool:
    try:
        LOSSES[key](reduction=reduction, **options)
    except Exception:
        return False
    return True


def loss_reduction(loss_fn: LossFn) -> str:
    """'sum' when the loss adds over samples (the epoch loss is then the sum over batches), else 'mean'.

    Reads a loss module's `reduction`, or the bound keyword of functools.partial(F.mse_loss, reduction="sum").
    """
    reduction = getattr(loss_fn, "reduction", None)
    if reduction is None:
        keywords = getattr(loss_fn, "keywords", None)
        reduction = keywords.get("reduction") if isinstance(keywords, dict) else None
    return "sum" if reduction == "sum" else "mean"


def loss_name(loss_fn: LossFn) -> str:
    """The registry name of a built-in loss module ('' for user callables)."""
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
