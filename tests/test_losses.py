"""Tests for trainwise.losses: names, reductions, options and pass-through callables."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from trainwise import datasets
from trainwise.errors import ConfigError
from trainwise.losses import CLASSIFICATION_LOSSES, LOSSES, balanced_weights, loss_name, loss_reduction, make_loss


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


# ----------------------------------------------------------------------------- class weights from a config


def test_balanced_weights_are_scikit_learns() -> None:
    from sklearn.utils.class_weight import compute_class_weight

    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2, 0, 1, 0])
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels.numpy())
    assert balanced_weights("cross_entropy", labels).tolist() == pytest.approx(expected.tolist())
    one_hot = F.one_hot(labels, 3).float()  # the same labels as rows give the same weights
    assert balanced_weights("cross_entropy", one_hot).tolist() == pytest.approx(expected.tolist())
    # a class the labels lack still gets a weight (1), so the weight vector fits the model's outputs
    assert balanced_weights("nll", labels, n_classes=4).tolist() == pytest.approx([10 / 24, 10 / 12, 10 / 4, 1.0])


def test_balanced_pos_weight_is_negatives_over_positives() -> None:
    targets = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert balanced_weights("bce_with_logits", targets).tolist() == pytest.approx([3.0, 1.0])
    with pytest.raises(ConfigError, match=r"^loss.weight: 'balanced' weights classes; loss 'mse' has none"):
        balanced_weights("mse", targets)


def test_config_class_weights_and_label_smoothing_reach_the_loss() -> None:
    from trainwise.config import load_config
    from trainwise.recipes import config_loss

    config = load_config(
        "w3-adam",
        ["loss.name=cross_entropy", "loss.reduction=mean", "loss.label_smoothing=0.1", "loss.weight=[1, 2.5]"],
    )
    dataset = datasets.Dataset(name="toy", X=torch.zeros(4, 1), y=torch.tensor([0, 0, 0, 1]), task="classification")
    loss = config_loss(config, dataset)
    assert isinstance(loss, nn.CrossEntropyLoss)
    assert loss.label_smoothing == 0.1 and loss.weight is not None and loss.weight.tolist() == [1.0, 2.5]
    logits, labels = torch.tensor([[2.0, -1.0], [0.5, 0.5]]), torch.tensor([0, 1])
    expected = F.cross_entropy(logits, labels, weight=torch.tensor([1.0, 2.5]), label_smoothing=0.1)
    assert float(loss(logits, labels)) == pytest.approx(float(expected))
    balanced = load_config("w3-adam", ["loss.name=cross_entropy", 'loss.weight="balanced"'])
    weight = config_loss(balanced, dataset).weight  # type: ignore[union-attr]
    assert weight is not None and weight.tolist() == pytest.approx([4 / 6, 4 / 2])


def test_a_weight_that_is_not_numbers_says_what_to_give() -> None:
    with pytest.raises(ConfigError) as caught:
        make_loss("cross_entropy", weight="nope")
    assert str(caught.value).endswith("; give a list of numbers (one per class) or 'balanced'")
