"""Tests for trainwise.losses: names, reductions, options and pass-through callables."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from trainwise.errors import ConfigError
from trainwise.losses import CLASSIFICATION_LOSSES, LOSSES, loss_name, loss_reduction, make_loss


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(7)


def test_every_registered_name_builds_its_class() -> None:
    for name, cls in LOSSES.items():
        loss = make_loss(name)
        assert type(loss) is cls
        assert loss_name(loss) == name
        assert loss_reduction(loss) == "mean"
    assert set(LOSSES) >= CLASSIFICATION_LOSSES


@pytest.mark.parametrize("spelling", ["Cross-Entropy", "CROSS_ENTROPY", "cross-entropy", "cross_entropy"])
def test_names_ignore_case_and_dashes(spelling: str) -> None:
    assert isinstance(make_loss(spelling), nn.CrossEntropyLoss)


def test_bce_with_logits_dashed() -> None:
    assert isinstance(make_loss("BCE-with-logits"), nn.BCEWithLogitsLoss)


def test_mse_mean_and_sum_values(gen: torch.Generator) -> None:
    pred, target = torch.randn(9, 2, generator=gen), torch.randn(9, 2, generator=gen)
    squared = (pred.double() - target.double()).square()
    mean_loss, sum_loss = make_loss("mse"), make_loss("mse", reduction="sum")
    assert float(mean_loss(pred, target)) == pytest.approx(float(squared.mean()), rel=1e-6)
    assert float(sum_loss(pred, target)) == pytest.approx(float(squared.sum()), rel=1e-6)
    assert loss_reduction(mean_loss) == "mean"
    assert loss_reduction(sum_loss) == "sum"


def test_cross_entropy_matches_log_softmax(gen: torch.Generator) -> None:
    logits, labels = torch.randn(6, 4, generator=gen), torch.randint(0, 4, (6,), generator=gen)
    expected = -logits.double().log_softmax(1)[torch.arange(6), labels]
    assert float(make_loss("cross_entropy")(logits, labels)) == pytest.approx(float(expected.mean()), rel=1e-6)
    assert float(make_loss("cross_entropy", reduction="sum")(logits, labels)) == pytest.approx(
        float(expected.sum()), rel=1e-6
    )


def test_huber_delta_is_passed_on() -> None:
    pred, target = torch.tensor([0.0, 0.0, 0.0]), torch.tensor([0.5, 2.0, -4.0])
    delta = 1.5
    err = (pred - target).abs()
    expected = torch.where(err <= delta, 0.5 * err**2, delta * (err - 0.5 * delta))
    loss = make_loss("huber", delta=delta)
    assert getattr(loss, "delta") == delta  # noqa: B009
    assert float(loss(pred, target)) == pytest.approx(float(expected.mean()))
    assert float(make_loss("huber", reduction="sum", delta=delta)(pred, target)) == pytest.approx(float(expected.sum()))


def test_unknown_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^loss.delta: loss 'mse' rejected delta=1.0 \(TypeError: "):
        make_loss("mse", delta=1.0)


def test_the_refused_option_is_found_by_trying_not_by_reading_torchs_message(monkeypatch: pytest.MonkeyPatch) -> None:
    original = nn.HuberLoss.__init__

    @functools.wraps(original)
    def refuse_negative_delta(self: nn.HuberLoss, *args: object, **kwargs: object) -> None:
        if float(kwargs.get("delta", 1.0)) < 0:  # type: ignore[arg-type]
            raise RuntimeError("bad\nand more lines")
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(nn.HuberLoss, "__init__", refuse_negative_delta)
    with pytest.raises(ConfigError) as caught:
        make_loss("huber", delta=-1.0)
    assert str(caught.value) == "loss.delta: loss 'huber' rejected delta=-1.0 (RuntimeError: bad)"
    with pytest.raises(ConfigError, match=r"^loss.weight: loss 'cross_entropy' rejected weight='auto' \(TypeError: "):
        make_loss("cross_entropy", weight="auto", label_smoothing=0.1)


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown loss 'hinge'; choose one of bce, bce_with_logits, cross_entropy"):
        make_loss("hinge")


def test_bad_reduction() -> None:
    with pytest.raises(ConfigError, match=r"loss.reduction: 'none'"):
        make_loss("mse", reduction="none")  # type: ignore[arg-type]


def test_callables_pass_through() -> None:
    def my_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).abs().max()

    assert make_loss(my_loss) is my_loss
    module = nn.L1Loss(reduction="sum")
    assert make_loss(module, reduction="mean") is module  # objects keep their own reduction
    assert loss_reduction(module) == "sum"
    assert loss_name(module) == "l1"
    assert loss_name(my_loss) == ""
    assert loss_reduction(my_loss) == "mean"


def test_partial_with_sum_reduction_counts_as_sum() -> None:
    summed = functools.partial(F.mse_loss, reduction="sum")
    assert loss_reduction(summed) == "sum"
    assert loss_reduction(functools.partial(F.mse_loss)) == "mean"


def test_non_callable_is_rejected() -> None:
    with pytest.raises(ConfigError, match="expected a name or a callable, got int"):
        make_loss(3)  # type: ignore[arg-type]
