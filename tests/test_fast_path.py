"""trainwise.fast_path: zero_grad and step_optimizer do what torch's own calls do, and give way to torch's
own whenever something could observe the difference (hooks, a scheduler's wrapper, a custom class)."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import torch
import torch.optim.optimizer as optimizer_hooks
from torch import nn

from trainwise.fast_path import step_optimizer, zero_grad


def _model_and_grads(
    optimizer_class: type[torch.optim.Optimizer], **options: float
) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    optimizer = optimizer_class(model.parameters(), lr=0.1, **options)
    model(torch.randn(4, 3)).square().sum().backward()
    return model, optimizer


def test_step_optimizer_moves_the_weights_exactly_as_optimizer_step() -> None:
    for optimizer_class, options in ((torch.optim.SGD, {"momentum": 0.9}), (torch.optim.Adam, {})):
        fast, fast_opt = _model_and_grads(optimizer_class, **options)
        slow, slow_opt = _model_and_grads(optimizer_class, **options)
        for _ in range(3):
            step_optimizer(fast_opt)
            slow_opt.step()
        for a, b in zip(fast.parameters(), slow.parameters(), strict=True):
            assert torch.equal(a, b)
        assert fast_opt.state_dict()["state"][0].keys() == slow_opt.state_dict()["state"][0].keys()


def test_the_optimizer_step_skips_torchs_wrapper_only_while_nothing_observes_it() -> None:
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    twin = nn.Linear(3, 2)
    twin.load_state_dict(model.state_dict())
    twin_optimizer = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):  # the same updates as torch's own step()
        for p in [*model.parameters(), *twin.parameters()]:
            p.grad = torch.ones_like(p)
        step_optimizer(optimizer)
        twin_optimizer.step()
    assert torch.equal(model.weight, twin.weight) and torch.equal(model.bias, twin.bias)
    calls: list[str] = []
    handles = [optimizer.register_step_pre_hook(lambda *_: calls.append("pre")),
               optimizer.register_step_post_hook(lambda *_: calls.append("post")),
               optimizer_hooks.register_optimizer_step_post_hook(lambda *_: calls.append("global post"))]  # fmt: skip
    step_optimizer(optimizer)
    assert calls == ["pre", "post", "global post"]
    for handle in handles:
        handle.remove()
    with torch.profiler.profile() as profiler:
        step_optimizer(optimizer)
    assert "Optimizer.step#SGD.step" in {event.name for event in profiler.events()}
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "lr_scheduler.step() before optimizer.step()" would be one
        step_optimizer(optimizer)
        scheduler.step()

    class Rewrapped(torch.optim.SGD):
        pass

    rewrapped = Rewrapped(model.parameters(), lr=0.1)  # torch wraps the class's step here
    torch_step = Rewrapped.step

    @functools.wraps(torch_step)  # a wrapper of the user's own around torch's, which must still run
    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append("user's wrapper")
        return torch_step(*args, **kwargs)

    Rewrapped.step = counting  # type: ignore[method-assign]
    step_optimizer(rewrapped)
    assert calls[-1] == "user's wrapper"


def test_zero_grad_clears_the_gradients_and_honours_an_overridden_zero_grad() -> None:
    model, optimizer = _model_and_grads(torch.optim.SGD)
    zero_grad(optimizer)
    assert all(p.grad is None for p in model.parameters())

    class KeepsZeros(torch.optim.SGD):
        def zero_grad(self, set_to_none: bool = True) -> None:
            super().zero_grad(set_to_none=False)

    model = nn.Linear(3, 2)
    optimizer = KeepsZeros(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    zero_grad(optimizer)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
