"""Tests for trainwise.metrics: epoch-exact accumulation, edge shapes, names, and no host sync per batch."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from trainwise.errors import ConfigError
from trainwise.metrics import (
    METRIC_NAMES,
    Metric,
    R2Score,
    compute_all,
    make_metrics,
)

# uneven batch sizes, so a mean of per-batch values would differ from the epoch value
SIZES = (7, 1, 12, 5)


def batches(*tensors: torch.Tensor) -> Iterator[tuple[torch.Tensor, ...]]:
    """Consecutive slices of the given tensors with the sizes in SIZES."""
    start = 0
    for size in SIZES:
        yield tuple(t[start : start + size] for t in tensors)
        start += size
    assert start == tensors[0].shape[0]


def epoch_value(name: str, pred: torch.Tensor, target: torch.Tensor) -> float:
    (metric,) = make_metrics([name])
    for pb, tb in batches(pred, target):
        metric.update(pb, tb)
    return metric.compute()


N = sum(SIZES)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


# ----------------------------------------------------------------------------- classification


def test_accuracy_multiclass_logits_is_correct_over_total(gen: torch.Generator) -> None:
    logits = torch.randn(N, 4, generator=gen)
    target = torch.randint(0, 4, (N,), generator=gen)
    expected = float(np.mean(logits.numpy().argmax(1) == target.numpy()))
    assert epoch_value("accuracy", logits, target) == pytest.approx(expected, abs=1e-12)
    # the mean of per-batch accuracies is a different number here, so the check above has teeth
    per_batch = [float(np.mean(lb.numpy().argmax(1) == tb.numpy())) for lb, tb in batches(logits, target)]
    assert not math.isclose(float(np.mean(per_batch)), expected)


def test_accuracy_binary_single_logit(gen: torch.Generator) -> None:
    logit = torch.randn(N, 1, generator=gen)
    target = torch.randint(0, 2, (N, 1), generator=gen).float()  # BCE-style float targets
    expected = float(np.mean((logit.numpy()[:, 0] > 0).astype(int) == target.numpy()[:, 0]))
    assert epoch_value("accuracy", logit, target) == pytest.approx(expected, abs=1e-12)
    # (N,) logits and (N,) integer labels give the same number
    assert epoch_value("accuracy", logit[:, 0], target[:, 0].long()) == pytest.approx(expected, abs=1e-12)


def test_accuracy_one_hot_targets(gen: torch.Generator) -> None:
    logits = torch.randn(N, 5, generator=gen)
    labels = torch.randint(0, 5, (N,), generator=gen)
    one_hot = torch.nn.functional.one_hot(labels, 5).float()
    expected = float(np.mean(logits.numpy().argmax(1) == labels.numpy()))
    assert epoch_value("accuracy", logits, one_hot) == pytest.approx(expected, abs=1e-12)


def test_accuracy_known_value() -> None:
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    (metric,) = make_metrics(["accuracy"])
    metric.update(logits, torch.tensor([0, 0, 0]))
    assert metric.compute() == pytest.approx(2 / 3)


def topk_reference(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    top = np.argsort(-logits, axis=1)[:, :k]
    return float(np.mean([label in row for row, label in zip(top, labels, strict=True)]))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_accuracy(gen: torch.Generator, k: int) -> None:
    logits = torch.randn(N, 6, generator=gen)
    target = torch.randint(0, 6, (N,), generator=gen)
    expected = topk_reference(logits.numpy(), target.numpy(), k)
    assert epoch_value(f"top{k}_accuracy", logits, target) == pytest.approx(expected, abs=1e-12)


def test_top1_equals_accuracy(gen: torch.Generator) -> None:
    logits = torch.randn(N, 6, generator=gen)
    target = torch.randint(0, 6, (N,), generator=gen)
    assert epoch_value("top1_accuracy", logits, target) == epoch_value("accuracy", logits, target)


def test_top_k_with_k_above_class_count_is_one(gen: torch.Generator) -> None:
    logits = torch.randn(N, 3, generator=gen)
    target = torch.randint(0, 3, (N,), generator=gen)
    assert epoch_value("top5_accuracy", logits, target) == 1.0


def test_top_k_single_logit_ranks_classes_not_samples(gen: torch.Generator) -> None:
    logit = torch.randn(N, generator=gen)
    target = torch.randint(0, 2, (N,), generator=gen)
    # two classes: the top 2 always contain the label; the top 1 is plain accuracy
    assert epoch_value("top2_accuracy", logit, target) == 1.0
    assert epoch_value("top1_accuracy", logit, target) == epoch_value("accuracy", logit, target)


# ----------------------------------------------------------------------------- regression


@pytest.fixture
def regression(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    target = torch.randn(N, 3, generator=gen) * torch.tensor([1.0, 10.0, 0.1]) + 5.0
    pred = target + 0.5 * torch.randn(N, 3, generator=gen)
    return pred, target


def test_mae_mse_rmse(regression: tuple[torch.Tensor, torch.Tensor]) -> None:
    pred, target = (t.numpy().astype(np.float64) for t in regression)
    err = pred - target
    assert epoch_value("mae", *regression) == pytest.approx(np.abs(err).mean(), rel=1e-6)
    assert epoch_value("mse", *regression) == pytest.approx(np.square(err).mean(), rel=1e-6)
    assert epoch_value("rmse", *regression) == pytest.approx(math.sqrt(np.square(err).mean()), rel=1e-6)


def r2_reference(pred: np.ndarray, target: np.ndarray) -> float:
    """scikit-learn's r2_score with multioutput='uniform_average', written out."""
    pred, target = pred.reshape(len(pred), -1).astype(np.float64), target.reshape(len(target), -1).astype(np.float64)
    ss_res = np.square(target - pred).sum(0)
    ss_tot = np.square(target - target.mean(0)).sum(0)
    return float(np.mean(1.0 - ss_res / ss_tot))


def test_r2_averaged_over_outputs(regression: tuple[torch.Tensor, torch.Tensor]) -> None:
    pred, target = regression
    expected = r2_reference(pred.numpy(), target.numpy())
    assert epoch_value("r2", pred, target) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("pred_shape", "target_shape"), [((N,), (N, 1)), ((N, 1), (N,)), ((N,), (N,))])
def test_single_output_shapes_agree(
    gen: torch.Generator, pred_shape: tuple[int, ...], target_shape: tuple[int, ...]
) -> None:
    target = torch.randn(N, generator=gen)
    pred = target + 0.3 * torch.randn(N, generator=gen)
    expected_r2 = r2_reference(pred.numpy(), target.numpy())
    expected_mse = float(np.square(pred.numpy().astype(np.float64) - target.numpy()).mean())
    p, t = pred.reshape(pred_shape), target.reshape(target_shape)
    assert epoch_value("r2", p, t) == pytest.approx(expected_r2, rel=1e-9)
    assert epoch_value("mse", p, t) == pytest.approx(expected_mse, rel=1e-6)


def test_r2_with_a_large_offset_stays_exact(gen: torch.Generator) -> None:
    # sum(t^2) - sum(t)^2/n on raw values would lose most digits here
    base = torch.randn(N, 1, generator=gen, dtype=torch.float64)
    target = 1e7 + base
    pred = 1e7 + base + 0.1 * torch.randn(N, 1, generator=gen, dtype=torch.float64)
    expected = r2_reference(pred.numpy(), target.numpy())
    assert epoch_value("r2", pred, target) == pytest.approx(expected, abs=1e-9)


def test_r2_constant_target_follows_scikit_learn() -> None:
    target = torch.full((N, 1), 0.1)
    assert epoch_value("r2", target.clone(), target) == 1.0  # perfect fit
    assert epoch_value("r2", target + 1.0, target) == 0.0  # no variance to explain


def test_r2_single_sample_is_nan() -> None:
    metric = R2Score()
    metric.update(torch.tensor([[1.0]]), torch.tensor([[2.0]]))
    assert math.isnan(metric.compute())


# ----------------------------------------------------------------------------- lifecycle


@pytest.mark.parametrize("name", ["accuracy", "top3_accuracy", "mae", "mse", "rmse", "r2"])
def test_compute_before_update_is_nan(name: str) -> None:
    (metric,) = make_metrics([name])
    assert math.isnan(metric.compute())


def test_reset_starts_a_new_epoch(gen: torch.Generator, regression: tuple[torch.Tensor, torch.Tensor]) -> None:
    pred, target = regression
    metrics = make_metrics(["mse", "r2", "accuracy"])
    logits = torch.randn(N, 3, generator=gen)
    labels = torch.randint(0, 3, (N,), generator=gen)
    for metric in metrics:  # a first "epoch" of other data
        metric.update(*((logits, labels) if metric.name == "accuracy" else (pred * 3, target)))
        metric.reset()
        assert math.isnan(metric.compute())
    metrics[0].update(pred, target)
    metrics[1].update(pred, target)
    metrics[2].update(logits[:4], labels[:4])
    values = compute_all(metrics)
    assert list(values) == ["mse", "r2", "accuracy"]
    assert values["mse"] == pytest.approx(float(np.square(pred.numpy() - target.numpy()).astype(np.float64).mean()))
    assert values["r2"] == pytest.approx(r2_reference(pred.numpy(), target.numpy()), rel=1e-9)
    assert values["accuracy"] == pytest.approx(float(np.mean(logits[:4].numpy().argmax(1) == labels[:4].numpy())))


def test_update_accepts_tensors_that_require_grad(regression: tuple[torch.Tensor, torch.Tensor]) -> None:
    pred, target = regression
    pred = pred.clone().requires_grad_(True)
    for metric in make_metrics(["mae", "r2"]):
        metric.update(pred, target)
        assert math.isfinite(metric.compute())


def test_update_never_syncs_with_the_host(monkeypatch: pytest.MonkeyPatch, gen: torch.Generator) -> None:
    """update() must keep sums on the device: any .item()/.tolist()/bool()/float() would stall a GPU per batch."""
    logits = torch.randn(N, 4, generator=gen)
    labels = torch.randint(0, 4, (N,), generator=gen)
    single = torch.randn(N, 1, generator=gen)
    values = torch.randn(N, 2, generator=gen)
    metrics = make_metrics(["accuracy", "top2_accuracy", "mae", "mse", "rmse", "r2"])
    binary = make_metrics(["accuracy", "top2_accuracy"])

    def no_sync(*args: object, **kwargs: object) -> None:
        raise AssertionError("host synchronisation inside update()")

    with monkeypatch.context() as patch:
        for method in ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__"):
            patch.setattr(torch.Tensor, method, no_sync)
        for _ in range(2):
            for metric in metrics:
                metric.update(*((logits, labels) if "accuracy" in metric.name else (values * 0.5, values)))
            for metric in binary:
                metric.update(single, labels.remainder(2))
    # and the sums are still right once compute() may read them
    assert metrics[0].compute() == pytest.approx(float(np.mean(logits.numpy().argmax(1) == labels.numpy())))
    assert binary[1].compute() == 1.0


# ----------------------------------------------------------------------------- names


def test_make_metrics_names_and_directions() -> None:
    made = make_metrics(["accuracy", "top3_accuracy", "mae", "mse", "rmse", "r2"])
    assert [m.name for m in made] == ["accuracy", "top3_accuracy", "mae", "mse", "rmse", "r2"]
    assert [m.higher_is_better for m in made] == [True, True, False, False, False, True]


def test_metric_names_all_parse() -> None:
    assert {m.name for m in make_metrics(METRIC_NAMES)} == set(METRIC_NAMES)


@pytest.mark.parametrize("spelling", ["top3_accuracy", "top3", "top_3", "TOP3_Accuracy"])
def test_top_k_spellings(spelling: str) -> None:
    (metric,) = make_metrics([spelling])
    assert metric.name == "top3_accuracy"
    assert getattr(metric, "k") == 3  # noqa: B009


def test_a_single_name_is_one_metric() -> None:
    # a bare string must not be iterated character by character
    assert [m.name for m in make_metrics("top3_accuracy")] == ["top3_accuracy"]
    assert [m.name for m in make_metrics("r2")] == ["r2"]


def test_metric_instances_pass_through() -> None:
    mine = R2Score()
    assert make_metrics([mine, "mae"])[0] is mine
    assert make_metrics(mine) == [mine]


def test_unknown_metric_names_it() -> None:
    with pytest.raises(ConfigError, match=r"unknown metric 'f1'.*accuracy.*top5_accuracy"):
        make_metrics(["accuracy", "f1"])


def test_top_zero_is_rejected() -> None:
    with pytest.raises(ConfigError, match="top0"):
        make_metrics(["top0_accuracy"])


@pytest.mark.parametrize("names", [["mae", "mae"], ["top5", "top5_accuracy"], ["R2", "r2"]])
def test_duplicates_name_the_metric(names: list[str]) -> None:
    expected = make_metrics([names[0]])[0].name
    with pytest.raises(ConfigError, match=rf"'{expected}' is listed twice"):
        make_metrics(names)


def test_base_metric_is_abstract() -> None:
    metric = Metric()
    with pytest.raises(NotImplementedError):
        metric.update(torch.zeros(1), torch.zeros(1))
    with pytest.raises(NotImplementedError):
        metric.compute()
