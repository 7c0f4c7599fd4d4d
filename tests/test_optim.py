"""Tests for trainwise.optim: names, options and errors."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from torch import nn

from trainwise.errors import ConfigError
from trainwise.optim import make_optimizer, optimizer_class, optimizer_classes, optimizer_options


def params() -> list[nn.Parameter]:
    return list(nn.Linear(3, 2).parameters())


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("SGD", torch.optim.SGD),
        ("sgd", torch.optim.SGD),
        ("adam", torch.optim.Adam),
        ("AdamW", torch.optim.AdamW),
        ("RMSprop", torch.optim.RMSprop),
        ("rmsprop", torch.optim.RMSprop),
    ],
)
def test_names_are_case_insensitive(name: str, cls: type[torch.optim.Optimizer]) -> None:
    assert optimizer_class(name) is cls
    opt = make_optimizer(name, params(), lr=0.05)
    assert type(opt) is cls
    assert opt.param_groups[0]["lr"] == 0.05


def test_registry_holds_only_optimizer_subclasses() -> None:
    classes = optimizer_classes()
    assert "optimizer" not in classes
    assert {"sgd", "adam", "adamw", "rmsprop", "adagrad"} <= set(classes)
    assert all(issubclass(c, torch.optim.Optimizer) for c in classes.values())


def test_keyword_arguments_reach_the_optimizer() -> None:
    opt = make_optimizer("sgd", params(), lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True)
    group = opt.param_groups[0]
    assert (group["momentum"], group["weight_decay"], group["nesterov"]) == (0.9, 1e-4, True)


def test_sgd_step_matches_the_update_rule() -> None:
    weight = nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = make_optimizer("SGD", [weight], lr=0.1)
    (weight**2).sum().backward()  # gradient 2w
    opt.step()
    torch.testing.assert_close(weight.detach(), torch.tensor([1.0, -2.0]) * (1 - 0.1 * 2))


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown optimizer 'adamx'; choose one of .*adam, adamax, adamw.*sgd"):
        make_optimizer("adamx", params(), lr=0.1)


def test_unknown_option_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"optim.momentom: not an option of SGD; allowed: lr, momentum"):
        make_optimizer("sgd", params(), lr=0.1, momentom=0.9)


@pytest.mark.parametrize("lr", [-0.1, -1e-9])
def test_invalid_lr_becomes_a_config_error(lr: float) -> None:
    with pytest.raises(ConfigError, match=rf"SGD rejected lr={lr}.*Invalid learning rate"):
        make_optimizer("sgd", params(), lr=lr)


def test_invalid_option_value_becomes_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"Adam rejected.*beta"):
        make_optimizer("adam", params(), lr=1e-3, betas=(1.5, 0.999))


def test_the_options_torch_refuses_are_found_by_trying_them() -> None:
    # nesterov needs momentum > 0 and dampening 0: with both given, removing either one lets SGD be made
    with pytest.raises(ConfigError) as caught:
        make_optimizer("sgd", params(), lr=0.1, momentum=0.9, nesterov=True, dampening=0.5)
    assert str(caught.value).startswith(
        "optim.nesterov, optim.dampening: SGD rejected nesterov=True, dampening=0.5: Nesterov momentum"
    )
    # a bad lr and a bad option: neither change alone is enough, so both are named
    with pytest.raises(ConfigError, match=r"^optim.lr, optim.momentum: SGD rejected lr=-1.0, momentum=-0.5: "):
        make_optimizer("sgd", params(), lr=-1.0, momentum=-0.5)


def test_which_option_is_named_does_not_depend_on_torchs_wording(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch rewords its messages between versions: a refusal that names no option still names the right key."""
    original = torch.optim.Adam.__init__

    @functools.wraps(original)
    def refuse_big_eps(self: torch.optim.Adam, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("eps", 0.0) > 1.0:
            raise RuntimeError("no\nsecond line of a long message")
        original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "__init__", refuse_big_eps)
    with pytest.raises(ConfigError) as caught:
        make_optimizer("adam", params(), lr=1e-3, eps=2.0, weight_decay=0.1)
    assert str(caught.value) == "optim.eps: Adam rejected eps=2.0: no"


def test_an_empty_parameter_list_is_not_blamed_on_the_options() -> None:
    with pytest.raises(ConfigError) as caught:
        make_optimizer("sgd", [], lr=0.1, momentum=0.9)
    assert str(caught.value) == (
        "optim.name: SGD cannot be made for this model's parameters (ValueError: optimizer got an empty parameter list)"
    )


def test_lbfgs_is_refused_because_the_loop_passes_no_closure() -> None:
    with pytest.raises(ConfigError, match="LBFGS needs a closure"):
        make_optimizer("LBFGS", params(), lr=1.0)


def test_instances_pass_through() -> None:
    opt = torch.optim.Adam(params(), lr=1e-3)
    assert make_optimizer(opt, params(), lr=0.5) is opt
    assert opt.param_groups[0]["lr"] == 1e-3  # not overwritten by the lr argument


def test_options_exclude_params() -> None:
    options = optimizer_options("Adam")
    assert "params" not in options
    assert {"lr", "betas", "eps", "weight_decay"} <= set(options)
    assert options["betas"].default == (0.9, 0.999)


def _trained(optimizer: torch.optim.Optimizer, model: nn.Module, steps: int = 25) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    X, y = torch.randn(32, 3, generator=generator), torch.randn(32, 2, generator=generator)
    for _ in range(steps):
        loss = nn.functional.mse_loss(model(X), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize(
    ("name", "options"),
    [("adam", {}), ("adamw", {"weight_decay": 0.01}), ("adagrad", {}), ("sgd", {"momentum": 0.9})],
)
def test_fused_where_it_is_faster_and_numerically_close(name: str, options: dict[str, float]) -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    reference = nn.Linear(3, 2)
    reference.load_state_dict(model.state_dict())
    fused = make_optimizer(name, model.parameters(), lr=0.01, **options)
    assert fused.param_groups[0]["fused"] is True
    plain = optimizer_class(name)(reference.parameters(), lr=0.01, foreach=False, **options)
    for got, want in zip(_trained(fused, model), _trained(plain, reference), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_torch_keeps_its_choice_for_plain_sgd_and_when_told() -> None:
    assert not make_optimizer("sgd", params(), lr=0.1).param_groups[0].get("fused")
    assert not make_optimizer("adam", params(), lr=0.1, foreach=False).param_groups[0].get("fused")
    assert not make_optimizer("adam", params(), lr=0.1, fused=False).param_groups[0].get("fused")
    assert not make_optimizer("rmsprop", params(), lr=0.1).param_groups[0].get("fused")
    groups = [{"params": params(), "lr": 0.5}]
    assert not make_optimizer("adam", groups, lr=0.1).param_groups[0].get("fused")  # type: ignore[arg-type]
