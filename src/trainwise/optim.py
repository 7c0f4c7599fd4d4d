"""Optimizers by name: any torch.optim class, case-insensitive, with its own keyword arguments."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from trainwise.errors import ConfigError, TrainwiseError, first_line


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
    for key, value in kwargs.items():
        if key not in allowed:
            raise ConfigError(f"optim.{key}: not an option of {cls.__name__}; allowed: {', '.join(allowed)}")
        if any(abs(number) > _FLOAT32_MAX for number in _numbers(value)):
            raise ConfigError(f"optim.{key}: {value!r} is too large; torch's optimizers step in float32, whose "
                              "largest value is 3.4e38")  # fmt: skip
    # numbers as floats, which every optimizer's numeric options are (torch's defaults say `0` as often as `0.0`):
    # a Python int past 64 bits would fail in C++ at the first step
    kwargs = {key: float(value) if _int(value) and _numbers(allowed[key].default) else value
              for key, value in kwargs.items()}  # fmt: skip
    params = list(params)
    fast = fused_default(cls, params, kwargs)
    if fast:
        try:
            return cls(params, lr=lr, **fast, **kwargs)  # type: ignore[call-arg]
        except (TypeError, ValueError, RuntimeError):
            pass  # torch's own choice then, and its own message for a real mistake
    try:
        return cls(params, lr=lr, **kwargs)  # type: ignore[call-arg]
    except TrainwiseError:
        raise
    except Exception as exc:
        raise ConfigError(_rejected(cls, params, lr, kwargs, exc)) from None


# torch.optim classes whose fused kernels (one kernel for all parameters) measured faster than torch's
# default on the CPU, from a 2-parameter linear model to a 670k-parameter MLP: 1.3x to 5x a step
# (benchmarks/peers.py, docs/performance.md). Plain SGD has no state to fuse and measured no faster.
FUSED_FASTER = ("Adam", "AdamW", "Adagrad", "SGD")
FUSED_DEVICES = ("cpu", "cuda")


def fused_default(cls: type[torch.optim.Optimizer], params: list[Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """{"fused": True} where torch has a fused implementation that is faster and the options leave the
    choice to torch (no foreach, fused or differentiable given); otherwise {} (torch's default)."""
    if cls.__name__ not in FUSED_FASTER or getattr(torch.optim, cls.__name__, None) is not cls:
        return {}
    if any(key in options for key in ("fused", "foreach")) or options.get("differentiable"):
        return {}
    if cls is torch.optim.SGD and not options.get("momentum"):
        return {}
    if not params or not all(isinstance(p, torch.Tensor) for p in params):  # parameter groups: left to torch
        return {}
    if not all(p.is_floating_point() and p.device.type in FUSED_DEVICES for p in params):
        return {}
    return {"fused": True}


_FLOAT32_MAX = 3.4028234663852886e38


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _numbers(value: Any) -> list[int | float]:
    """The numbers in an option's value (betas is a pair); ints as they are (float() fails past 1e308)."""
    if isinstance(value, list | tuple):
        return [number for item in value for number in _numbers(item)]
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else []


def _rejected(
    cls: type[torch.optim.Optimizer], params: list[Any], lr: float, options: Mapping[str, Any], exc: Exception
) -> str:
    """ "optim.KEY: NAME rejected KEY=VALUE: <torch's reason>" for the options that make torch refuse, so the
    line says which config key to change. Which ones is decided by trying (_culprits), not by reading torch's
    message: its wording differs between versions."""
    name, reason = cls.__name__, first_line(exc).partition(": ")[2] or type(exc).__name__
    like = params[0] if params and isinstance(params[0], torch.Tensor) else torch.zeros(1)
    if _builds(cls, like, lr, options):  # the options are fine: the parameters are what torch refused
        return f"optim.name: {name} cannot be made for this model's parameters ({first_line(exc)})"
    given = {"lr": lr, **options}
    keys = _culprits(cls, like, lr, options) or list(given)
    where = ", ".join(f"optim.{key}" for key in keys)
    return f"{where}: {name} rejected {', '.join(f'{key}={given[key]!r}' for key in keys)}: {reason}"


def _culprits(cls: type[torch.optim.Optimizer], like: torch.Tensor, lr: float, options: Mapping[str, Any]) -> list[str]:
    """Each option whose removal lets the optimizer be made (every option has a default), and lr when a plain
    1e-3 in its place does; empty when only several changes together would."""
    keys = ["lr"] if _builds(cls, like, 1e-3, options) else []
    return keys + [key for key in options if _builds(cls, like, lr, {k: v for k, v in options.items() if k != key})]


def _builds(cls: type[torch.optim.Optimizer], like: torch.Tensor, lr: float, options: Mapping[str, Any]) -> bool:
    # one parameter of the model's dtype and device: options such as fused depend on them
    parameter = torch.nn.Parameter(torch.zeros(1, dtype=like.dtype, device=like.device))
    try:
        cls([parameter], lr=lr, **options)  # type: ignore[call-arg]
    except Exception:
        return False
    return True
