"""Optimizers by name: any torch.optim class, case-insensitive, with its own keyword arguments."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from trainwise.errors import ConfigError


def optimizer_classes() -> dict[str, type[torch.optim.Optimizer]]:
    return {
        name.lower(): cls
        for name, cls in vars(torch.optim).items()
        if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer) and cls is not torch.optim.Optimizer
    }


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    classes = optimizer_classes()
    key = name.lower()
    if key not in classes:
        raise ConfigError(f"optim.name: unknown optimizer {name!r}; choose one of {', '.join(sorted(classes))}")
    return classes[key]


def optimizer_options(name: str) -> Mapping[str, inspect.Parameter]:
    """The keyword arguments the optimizer's constructor accepts (besides params)."""
    params = inspect.signature(optimizer_class(name)).parameters
    return {k: p for k, p in params.items() if k != "params"}


def make_optimizer(
    optimizer: str | torch.optim.Optimizer, params: Iterable[torch.nn.Parameter], lr: float, **kwargs: Any
) -> torch.optim.Optimizer:
    """An optimizer from its name and keyword arguments, or the given instance unchanged."""
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    cls = optimizer_class(optimizer)
    if cls is torch.optim.LBFGS:
        # LBFGS.step needs a closure that re-evaluates the loss; the training loop calls step() without one
        raise ConfigError("optim.name: LBFGS needs a closure in step(), which trainwise's loop does not pass")
    allowed = optimizer_options(optimizer)
    for key in kwargs:
        if key not in allowed:
            raise ConfigError(f"optim.{key}: not an option of {cls.__name__}; allowed: {', '.join(allowed)}")
    try:
        return cls(params, lr=lr, **kwargs)  # type: ignore[call-arg]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"optim: {cls.__name__} rejected lr={lr} {kwargs or ''}: {exc}") from None
