"""fit's fast path around the optimizer: zero_grad and step without the profiler ranges, dispatch and hook
loops torch wraps around every optimizer (a few microseconds a step each, several percent of a small
model's step), taken only while nothing could observe the difference. Anything else - an optimizer
class with its own zero_grad or step wrapper, a step hook (the doctor's, a user's), a running profiler,
an LR scheduler's counting wrapper on the instance, a torch whose wrapper is not the one known here -
gets torch's own call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim import optimizer as torch_optimizer

_OPTIMIZER_ZERO_GRAD = torch.optim.Optimizer.zero_grad


def zero_grad(optimizer: torch.optim.Optimizer) -> None:
    """optimizer.zero_grad(set_to_none=True), without the profiler range and dispatch around it (a few
    microseconds a step, a tenth of a tiny model's step) when the optimizer keeps torch's own."""
    if type(optimizer).zero_grad is not _OPTIMIZER_ZERO_GRAD:
        optimizer.zero_grad(set_to_none=True)
        return
    for group in optimizer.param_groups:
        for param in group["params"]:
            param.grad = None


def _torch_step_wrapper() -> Any:
    """The code of the wrapper torch puts around every optimizer class's step (Optimizer.profile_hook_step),
    or None on a torch whose wrapper or hook registries are not the ones step_optimizer knows."""
    wrap = getattr(torch.optim.Optimizer, "profile_hook_step", None)
    known = all(
        hasattr(torch_optimizer, name) for name in ("_global_optimizer_pre_hooks", "_global_optimizer_post_hooks")
    )
    if wrap is None or not known or not hasattr(torch.autograd.profiler, "_is_profiler_enabled"):
        return None
    return wrap(lambda *args: None).__code__


_TORCH_STEP_WRAPPER = _torch_step_wrapper()


def step_optimizer(optimizer: torch.optim.Optimizer) -> None:
    """optimizer.step(), without the profiler range and hook loop torch wraps around it (about 7 us a
    step, several % of a small model's step) while nothing can observe them: no step hooks, no profiler
    running, and no LR scheduler's counting wrapper on the instance. Otherwise torch's own."""
    wrapped_step = type(optimizer).step
    unwrapped: Callable[[torch.optim.Optimizer], Any] | None = getattr(wrapped_step, "__wrapped__", None)
    observed = (
        _TORCH_STEP_WRAPPER is None
        or getattr(wrapped_step, "__code__", None) is not _TORCH_STEP_WRAPPER  # only torch's own is skipped
        or optimizer._optimizer_step_pre_hooks
        or optimizer._optimizer_step_post_hooks
        or torch_optimizer._global_optimizer_pre_hooks
        or torch_optimizer._global_optimizer_post_hooks
        or torch.autograd.profiler._is_profiler_enabled
        or "step" in vars(optimizer)
    )
    if observed or unwrapped is None:
        optimizer.step()
    else:
        unwrapped(optimizer)
