"""Tests for trainwise.metrics: epoch-exact accumulation, edge shapes, names, and no host sync per batch."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


# ----------------------------------------------------------------------------- torchmetrics

tm = pytest.importorskip("torchmetrics")
from torchmetrics.classification import (  # noqa: E402  (after the skip: torchmetrics is an optional extra)
    BinaryAUROC,
    BinaryF1Score,
    MulticlassAccuracy,
    MulticlassF1Score,
)
from torchmetrics.regression import MeanSquaredError  # noqa: E402

import trainwise  # noqa: E402
from trainwise.checkpoint import _decode, _encode  # noqa: E402
from trainwise.metrics import TorchMetric, snake_case  # noqa: E402

CLASSES = 4


@pytest.fixture
def classification(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train and validation splits of 4 overlapping classes (some mistakes in each): X, y, X_val, y_val."""
    X = torch.randn(150, 5, generator=gen)
    y = torch.randint(0, CLASSES, (150,), generator=gen)
    X[torch.arange(150), y] += 1.0
    return X[:110], y[:110], X[110:], y[110:]


def _fit(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, **kwargs: object) -> dict[str, list[float]]:
    options: dict[str, object] = dict(loss="cross_entropy", optimizer="sgd", batch_size=16, progress=False)
    options.update(doctor="off", device="cpu", **kwargs)
    return trainwise.fit(model, (X, y), **options).history  # type: ignore[arg-type]


def test_torchmetrics_over_a_training_epoch_equal_torchmetrics_on_the_same_predictions(
    classification: tuple[torch.Tensor, ...],
) -> None:
    X, y, _, _ = classification
    torch.manual_seed(0)
    model = torch.nn.Linear(5, CLASSES)
    with torch.no_grad():
        logits = model(X)
    # lr=0: the model is the same at every step, so the epoch's predictions are logits, over 7 uneven batches
    f1, micro = MulticlassF1Score(num_classes=CLASSES), MulticlassAccuracy(num_classes=CLASSES, average="micro")
    history = _fit(model, X, y, lr=0.0, epochs=1, metrics=["accuracy", f1, micro])
    expected_f1 = float(MulticlassF1Score(num_classes=CLASSES)(logits, y))
    assert history["multiclass_f1_score"] == [pytest.approx(expected_f1, abs=1e-7)]
    # an independent reference, and the mean of per-batch F1s (what per-step averaging gives) is another number
    from sklearn.metrics import f1_score

    assert expected_f1 == pytest.approx(f1_score(y.numpy(), logits.argmax(1).numpy(), average="macro"), abs=1e-6)
    per_batch = [
        float(MulticlassF1Score(num_classes=CLASSES)(logits[i : i + 16], y[i : i + 16])) for i in range(0, 110, 16)
    ]
    assert abs(float(np.mean(per_batch)) - expected_f1) > 1e-3
    # micro-averaged accuracy is trainwise's own accuracy (float32 in torchmetrics, float64 in trainwise)
    assert history["multiclass_accuracy"] == [pytest.approx(history["accuracy"][0], rel=1e-6)]
    assert history["accuracy"] == [pytest.approx(float(np.mean(logits.argmax(1).numpy() == y.numpy())), abs=1e-12)]


def test_torchmetrics_on_the_validation_split_measure_the_trained_model(
    classification: tuple[torch.Tensor, ...],
) -> None:
    X, y, X_val, y_val = classification
    torch.manual_seed(0)
    model = torch.nn.Linear(5, CLASSES)
    metrics = [
        "accuracy",
        MulticlassF1Score(num_classes=CLASSES),
        MulticlassAccuracy(num_classes=CLASSES, average="micro"),
    ]
    history = _fit(model, X, y, lr=0.5, epochs=3, val_data=(X_val, y_val), metrics=metrics)
    assert len(set(history["val_multiclass_f1_score"])) > 1  # it trained: the values move
    with torch.no_grad():
        logits = model(X_val)
    expected = float(MulticlassF1Score(num_classes=CLASSES)(logits, y_val))
    assert history["val_multiclass_f1_score"][-1] == pytest.approx(expected, abs=1e-7)
    for split in ("", "val_"):
        assert history[f"{split}multiclass_accuracy"] == pytest.approx(history[f"{split}accuracy"], rel=1e-6)


def test_evaluate_with_torchmetrics_metrics(classification: tuple[torch.Tensor, ...]) -> None:
    from sklearn.metrics import f1_score

    _, _, X, y = classification
    torch.manual_seed(1)
    model = torch.nn.Linear(5, CLASSES)
    with torch.no_grad():
        predicted = model(X).argmax(1).numpy()
    weighted = float(f1_score(y.numpy(), predicted, average="weighted"))
    named = TorchMetric(MulticlassF1Score(num_classes=CLASSES, average="weighted"), name="f1")
    logs = trainwise.evaluate(model, (X, y), loss="cross_entropy", metrics=[named], batch_size=8)
    assert list(logs) == ["loss", "f1"]
    assert logs["f1"] == pytest.approx(weighted, abs=1e-6)
    # one-hot targets are read as their classes, as trainwise's accuracy reads them
    one_hot = torch.nn.functional.one_hot(y, CLASSES).float()
    logs = trainwise.evaluate(model, (X, one_hot), loss="cross_entropy", metrics=[named, "accuracy"], batch_size=8)
    assert logs["f1"] == pytest.approx(weighted, abs=1e-6)
    assert logs["accuracy"] == pytest.approx(float(np.mean(predicted == y.numpy())), abs=1e-12)


def test_binary_and_regression_targets_are_shaped_for_torchmetrics(gen: torch.Generator) -> None:
    from sklearn.metrics import roc_auc_score

    logit = torch.randn(N, 1, generator=gen)
    target = torch.randint(0, 2, (N, 1), generator=gen).float()  # BCE-style (N, 1) float targets
    auroc, f1 = TorchMetric(BinaryAUROC()), TorchMetric(BinaryF1Score())
    for pb, tb in batches(logit, target):
        auroc.update(pb, tb)
        f1.update(pb, tb)
    assert auroc.compute() == pytest.approx(roc_auc_score(target.numpy()[:, 0], logit.numpy()[:, 0]), abs=1e-6)
    predicted, labels = (logit[:, 0] > 0).numpy(), target[:, 0].numpy().astype(bool)
    tp = float((predicted & labels).sum())
    assert f1.compute() == pytest.approx(2 * tp / (predicted.sum() + labels.sum()), abs=1e-6)
    # a regression metric: (N, 1) predictions against (N,) targets, as trainwise's mse takes them
    pred, value = torch.randn(N, 1, generator=gen), torch.randn(N, generator=gen)
    mse = TorchMetric(MeanSquaredError())
    for pb, tb in batches(pred, value):
        mse.update(pb, tb)
    assert mse.compute() == pytest.approx(epoch_value("mse", pred, value), rel=1e-6)
    assert (mse.name, mse.higher_is_better, auroc.higher_is_better) == ("mean_squared_error", False, True)


@pytest.mark.parametrize(
    ("cls", "name"),
    [
        ("MulticlassF1Score", "multiclass_f1_score"),
        ("MulticlassAUROC", "multiclass_auroc"),
        ("R2Score", "r2_score"),
        ("MeanAbsolutePercentageError", "mean_absolute_percentage_error"),
        ("BinaryAUROCScore", "binary_auroc_score"),
    ],
)
def test_snake_case_names(cls: str, name: str) -> None:
    assert snake_case(cls) == name


def test_history_keys_of_torchmetrics_metrics(classification: tuple[torch.Tensor, ...]) -> None:
    X, y, X_val, y_val = classification
    metrics = [MulticlassF1Score(num_classes=CLASSES), TorchMetric(MulticlassF1Score(num_classes=CLASSES), name="f1")]
    history = _fit(torch.nn.Linear(5, CLASSES), X, y, lr=0.1, epochs=2, val_data=(X_val, y_val), metrics=metrics)
    assert list(history) == [
        "loss", "multiclass_f1_score", "f1", "val_loss", "val_multiclass_f1_score", "val_f1", "lr", "epoch_seconds"
    ]  # fmt: skip
    assert history["f1"] == pytest.approx(history["multiclass_f1_score"], abs=0)  # the same metric, twice
    assert all(0 < value < 1 for value in history["val_f1"])
    # a MetricCollection gives one metric per member, named by its keys
    collection = tm.MetricCollection(
        {"f1": MulticlassF1Score(num_classes=CLASSES), "acc": MulticlassAccuracy(num_classes=CLASSES)}
    )
    assert [m.name for m in make_metrics(collection)] == ["acc", "f1"]  # in the collection's (sorted) order
    assert [m.name for m in make_metrics(MulticlassAccuracy(num_classes=CLASSES))] == ["multiclass_accuracy"]


def test_torchmetrics_naming_errors() -> None:
    with pytest.raises(ConfigError, match=r"'multiclass_f1_score' is listed twice.*TorchMetric\(metric, name=\.\.\.\)"):
        make_metrics([MulticlassF1Score(num_classes=3), MulticlassF1Score(num_classes=3, average="micro")])
    with pytest.raises(ConfigError, match=r"'val f1' cannot name MulticlassF1Score: a metric name is letters"):
        TorchMetric(MulticlassF1Score(num_classes=3), name="val f1")
    with pytest.raises(ConfigError, match="'loss' cannot name"):
        TorchMetric(MulticlassF1Score(num_classes=3), name="loss")
    with pytest.raises(
        ConfigError, match=r"MulticlassF1Score is a class; pass an instance, e.g. MulticlassF1Score\(\.\.\.\)"
    ):
        make_metrics([MulticlassF1Score])
    with pytest.raises(ConfigError, match=r"TorchMetric wraps a torchmetrics\.Metric instance, not R2Score"):
        TorchMetric(R2Score())


def test_a_per_class_torchmetrics_metric_is_refused_with_the_fix() -> None:
    message = (
        r"metrics: multiclass_f1_score \(MulticlassF1Score with average=None\) computes one value per class, and "
        r"trainwise records one number per metric; use a scalar average: average='macro', 'micro' or 'weighted'"
    )
    with pytest.raises(ConfigError, match=message):
        make_metrics(["accuracy", MulticlassF1Score(num_classes=3, average=None)])
    with pytest.raises(ConfigError, match=r"multidim_average='samplewise'.*use multidim_average='global'"):
        make_metrics([MulticlassAccuracy(num_classes=3, multidim_average="samplewise")])
    for curve in (tm.classification.MulticlassROC(num_classes=3), tm.classification.BinaryPrecisionRecallCurve()):
        with pytest.raises(ConfigError, match=rf"\({type(curve).__name__}\) computes a curve.*area under it"):
            make_metrics([curve])
    # an area is one number, averaged over the classes by default
    assert [m.name for m in make_metrics([tm.classification.MulticlassAUROC(num_classes=3)])] == ["multiclass_auroc"]


class _PerOutputMean(tm.Metric):
    """A custom torchmetrics metric whose value is one number per output column."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.zeros(3), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self.total += pred.sum(0)
        self.count += pred.shape[0]

    def compute(self) -> torch.Tensor:
        return self.total / self.count


def test_a_non_scalar_result_is_a_config_error_naming_the_metric(gen: torch.Generator) -> None:
    (metric,) = make_metrics([_PerOutputMean()])
    assert math.isnan(metric.compute())  # nothing seen yet: nan, as trainwise's own metrics
    metric.update(torch.randn(N, 3, generator=gen), torch.randn(N, 3, generator=gen))
    with pytest.raises(
        ConfigError, match=r"per_output_mean \(_PerOutputMean\) computes a tensor of shape \(3,\).*scalar form"
    ):
        metric.compute()
    X, y = torch.randn(16, 2, generator=gen), torch.randn(16, 3, generator=gen)
    with pytest.raises(ConfigError, match="per_output_mean"):
        trainwise.evaluate(torch.nn.Linear(2, 3), (X, y), loss="mse", metrics=[_PerOutputMean()])


def _through_a_checkpoint(state: dict[str, torch.Tensor | None]) -> dict[str, torch.Tensor | None]:
    """The state as a checkpoint gives it back: its tensors through safetensors, the rest through JSON."""
    from safetensors.torch import load, save

    tensors: dict[str, torch.Tensor] = {}
    tree = json.loads(json.dumps(_encode([state], tensors, "metrics")))
    return _decode(tree, load(save(tensors)))[0]  # type: ignore[no-any-return]


@pytest.mark.parametrize("make", [lambda: MulticlassF1Score(num_classes=CLASSES), BinaryAUROC], ids=["sums", "lists"])
def test_a_mid_epoch_state_survives_a_checkpoint(gen: torch.Generator, make: Callable[[], Any]) -> None:
    logits = torch.randn(N, CLASSES, generator=gen)
    labels = torch.randint(0, CLASSES, (N,), generator=gen)
    if isinstance(make(), BinaryAUROC):  # AUROC keeps every prediction in list ("cat") states
        logits, labels = logits[:, 0], labels.remainder(2)
    whole = TorchMetric(make())
    whole.update(logits, labels)
    first = TorchMetric(make())
    assert _through_a_checkpoint(first.state_dict()).keys() == first.state_dict().keys()  # empty states too
    first.update(logits[:9], labels[:9])
    first.update(logits[9:13], labels[9:13])
    resumed = TorchMetric(make())  # a new process: a new metric object, loaded from the checkpoint
    resumed.load_state_dict(_through_a_checkpoint(first.state_dict()))
    resumed.update(logits[13:], labels[13:])
    assert resumed.metric.update_count == 3
    assert resumed.compute() == pytest.approx(whole.compute(), abs=1e-7)
    resumed.reset()
    assert math.isnan(resumed.compute())


class _StopAt(trainwise.Callback):
    """Raises at a given optimizer step: a run cut short mid-epoch, after a checkpoint."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_batch_end(self, batch: int, logs: dict) -> None:
        if self.state.step == self.step:
            raise RuntimeError("stop here")


def test_a_run_resumed_mid_epoch_gives_the_torchmetrics_values_of_the_uninterrupted_run(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(3)
    X, y = torch.randn(200, 5, generator=generator), torch.randint(0, 3, (200,), generator=generator)

    def train(root: Path, *callbacks: trainwise.Callback, resume: Path | None = None) -> dict[str, list[float]]:
        torch.manual_seed(0)
        # AUROC keeps every prediction (list states); F1 keeps counts (tensor states)
        metrics = [MulticlassF1Score(num_classes=3), tm.classification.MulticlassAUROC(num_classes=3)]
        return trainwise.fit(torch.nn.Linear(5, 3), (X, y), loss="cross_entropy", optimizer="adam", lr=1e-2,
                             epochs=2, batch_size=16, metrics=metrics, progress=False, doctor="off", device="cpu",
                             run_dir=root, callbacks=[trainwise.Checkpoint(every_steps=5), *callbacks],
                             resume=resume).history  # fmt: skip

    full = train(tmp_path / "full")
    with pytest.raises(RuntimeError, match="stop here"):
        train(tmp_path / "cut", _StopAt(20))  # 13 batches an epoch: the checkpoint at step 15 is mid-epoch
    (run,) = [path for path in (tmp_path / "cut").iterdir() if path.is_dir()]
    resumed = train(tmp_path / "cut", resume=run)
    for key in ("multiclass_f1_score", "multiclass_auroc"):
        assert resumed[key] == full[key], key


def _distributed_worker(rank: int, world: int, init_file: str, out: str) -> None:
    """One of two gloo processes: each updates on its half of the samples, then the metrics are reduced."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        gen = torch.Generator().manual_seed(7)
        logits = torch.randn(2 * N, CLASSES, generator=gen)
        labels = torch.randint(0, CLASSES, (2 * N,), generator=gen)
        own = slice(0, 30) if rank == 0 else slice(30, 2 * N)  # uneven shares
        metrics = make_metrics(["accuracy", MulticlassF1Score(num_classes=CLASSES), BinaryAUROC()])
        for metric in metrics:
            binary = isinstance(metric, TorchMetric) and isinstance(metric.metric, BinaryAUROC)
            metric.update(*((logits[own, 0], labels[own].remainder(2)) if binary else (logits[own], labels[own])))
        local = compute_all(metrics)  # as evaluate() computes: each process on its own samples
        saved = [metric.state_dict() for metric in metrics]
        for metric in metrics:  # as distributed.epoch_logs does at the end of a training epoch
            metric.all_reduce()
        reduced = compute_all(metrics)
        for metric, state in zip(metrics, saved, strict=True):
            metric.load_state_dict(state)
        Path(out, f"{rank}.json").write_text(
            json.dumps({"local": local, "reduced": reduced, "after": compute_all(metrics)})
        )
    finally:
        dist.destroy_process_group()


def test_torchmetrics_under_torch_distributed(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    # fork where there is one: a spawned process would import torch and torchmetrics again (seconds)
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(
        _distributed_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, start_method=method
    )
    results = [json.loads((tmp_path / f"{rank}.json").read_text()) for rank in range(2)]
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(2 * N, CLASSES, generator=gen)
    labels = torch.randint(0, CLASSES, (2 * N,), generator=gen)

    def values(part: slice) -> dict[str, float]:
        binary = labels[part].remainder(2)
        return {
            "accuracy": float(np.mean(logits[part].numpy().argmax(1) == labels[part].numpy())),
            "multiclass_f1_score": float(MulticlassF1Score(num_classes=CLASSES)(logits[part], labels[part])),
            "binary_auroc": float(BinaryAUROC()(logits[part, 0], binary)),
        }

    everything = values(slice(None))
    for rank, part in enumerate((slice(0, 30), slice(30, 2 * N))):
        mine = values(part)
        # reduced: the value over both processes' samples, on each process, each state counted once
        assert results[rank]["reduced"] == pytest.approx(everything, abs=1e-6)
        # without all_reduce (validation, evaluated whole by every process) and after the own states come
        # back, each process has its own samples' value: torchmetrics' compute did not sync by itself
        assert results[rank]["local"] == pytest.approx(mine, abs=1e-6)
        assert results[rank]["after"] == pytest.approx(mine, abs=1e-6)
    assert results[0]["local"]["multiclass_f1_score"] != pytest.approx(everything["multiclass_f1_score"], abs=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_torchmetrics_metric_moves_to_the_predictions_device(gen: torch.Generator) -> None:
    logits = torch.randn(N, CLASSES, generator=gen)
    labels = torch.randint(0, CLASSES, (N,), generator=gen)
    metric = TorchMetric(MulticlassF1Score(num_classes=CLASSES))
    metric.update(logits.cuda(), labels.cuda())
    assert metric.metric.device.type == "cuda"
    assert metric.compute() == pytest.approx(float(MulticlassF1Score(num_classes=CLASSES)(logits, labels)), abs=1e-6)
    state = metric.state_dict()
    restored = TorchMetric(MulticlassF1Score(num_classes=CLASSES))
    restored.load_state_dict(state)
    assert restored.metric.device.type == "cuda" and restored.compute() == metric.compute()
