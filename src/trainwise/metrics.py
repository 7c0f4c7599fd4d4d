"""Metrics computed exactly over a whole epoch.

Each metric accumulates sums on the device during the epoch (no host synchronisation per step)
and turns them into one number at the end, so accuracy is correct/total over all samples, not an
average of per-batch ratios, and R^2 uses the epoch's own total variance.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any, cast

import torch

from trainwise.errors import ConfigError, describe


def accumulator_dtype(device: torch.device) -> torch.dtype:
    # float64 sums keep epoch totals exact enough; MPS has no float64.
    return torch.float32 if device.type == "mps" else torch.float64


def _class_predictions(pred: torch.Tensor) -> torch.Tensor:
    if pred.ndim >= 2 and pred.shape[-1] > 1:
        return pred.argmax(dim=-1)
    # a single logit per sample: binary classification
    return (pred.reshape(pred.shape[0], -1)[:, 0] > 0).long()


def _class_targets(target: torch.Tensor) -> torch.Tensor:
    if target.ndim >= 2 and target.shape[-1] > 1:  # one-hot or soft labels
        return target.argmax(dim=-1)
    return target.reshape(target.shape[0]).long()


def _matched(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Regression pairs as (N, k) float tensors of the same shape."""
    pred = pred.detach().reshape(pred.shape[0], -1)
    return pred, target.detach().reshape(pred.shape).to(pred.dtype)


class Metric:
    """Base class: `update` once per batch (device tensors only), `compute` once per epoch.

    An update copies nothing from the host: counts go in with torch.full (a fill kernel taking the number as
    its argument), not new_tensor (a host-to-device copy, which waits on the device every step)."""

    name = "metric"
    higher_is_better = True

    def __init__(self) -> None:
        self._sums: torch.Tensor | None = None

    def reset(self) -> None:
        self._sums = None

    def state_dict(self) -> dict[str, torch.Tensor | None]:
        """The running sums of an unfinished epoch, for a mid-epoch checkpoint."""
        return {"sums": self._sums}

    def load_state_dict(self, state: dict[str, torch.Tensor | None]) -> None:
        sums = state["sums"]
        self._sums = None if sums is None else sums.to(accumulator_dtype(sums.device))

    def all_reduce(self) -> None:
        """Sum the running sums over the processes of a distributed run (each has seen its own samples)."""
        import torch.distributed as dist

        if self._sums is not None:
            # into a copy: a state_dict() taken before (distributed.epoch_logs keeps the process's own sums
            # that way) must not change with it
            self._sums = self._sums.clone()
            dist.all_reduce(self._sums)

    def _add(self, values: torch.Tensor) -> None:
        values = values.to(accumulator_dtype(values.device))
        self._sums = values if self._sums is None else self._sums + values

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        raise NotImplementedError

    def compute(self) -> float:
        raise NotImplementedError


class Accuracy(Metric):
    name = "accuracy"

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        correct = (_class_predictions(pred.detach()) == _class_targets(target)).sum()
        self._add(torch.stack([correct, torch.full_like(correct, target.shape[0])]))

    def compute(self) -> float:
        if self._sums is None:
            return float("nan")
        correct, total = self._sums.tolist()
        return correct / total if total else float("nan")


class TopKAccuracy(Accuracy):
    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k
        self.name = f"top{k}_accuracy"

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.ndim < 2 or pred.shape[-1] == 1:
            # a single logit: two classes, so the top 1 is plain accuracy and the top 2+ always hit
            # (topk over the last dim of an (N,) tensor would rank samples, not classes)
            if self.k == 1:
                super().update(pred, target)
                return
            total = torch.full((), float(target.shape[0]), device=pred.device)
            self._add(torch.stack([total, total]))
            return
        k = min(self.k, pred.shape[-1])
        top = pred.detach().topk(k, dim=-1).indices
        correct = (top == _class_targets(target).unsqueeze(-1)).any(dim=-1).sum()
        self._add(torch.stack([correct, torch.full_like(correct, target.shape[0])]))


class MeanAbsoluteError(Metric):
    name = "mae"
    higher_is_better = False

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        pred, target = _matched(pred, target)
        err = (pred - target).abs().sum()
        self._add(torch.stack([err, torch.full_like(err, target.numel())]))

    def compute(self) -> float:
        if self._sums is None:
            return float("nan")
        total, count = self._sums.tolist()
        return total / count if count else float("nan")


class MeanSquaredError(MeanAbsoluteError):
    name = "mse"

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        pred, target = _matched(pred, target)
        err = (pred - target).square().sum()
        self._add(torch.stack([err, torch.full_like(err, target.numel())]))


class RootMeanSquaredError(MeanSquaredError):
    name = "rmse"

    def compute(self) -> float:
        return super().compute() ** 0.5


class R2Score(Metric):
    """Coefficient of determination, averaged over outputs (as scikit-learn's default).

    Targets are summed relative to the first target row seen in the epoch: sum(t^2) - sum(t)^2 / n on
    raw values cancels catastrophically when the mean is large next to the spread (and gives a
    tiny non-zero variance for constant targets), while about a point inside the data it stays exact.
    """

    name = "r2"

    def __init__(self) -> None:
        super().__init__()
        self._origin: torch.Tensor | None = None

    def reset(self) -> None:
        super().reset()
        self._origin = None

    def state_dict(self) -> dict[str, torch.Tensor | None]:
        return {**super().state_dict(), "origin": self._origin}

    def load_state_dict(self, state: dict[str, torch.Tensor | None]) -> None:
        super().load_state_dict(state)
        self._origin = state["origin"]

    def all_reduce(self) -> None:
        """Each process summed about its own first target: move the sums to process 0's, then add them."""
        import torch.distributed as dist

        if self._sums is None or self._origin is None:
            return
        origin = self._origin.clone()
        dist.broadcast(origin, src=0)
        count, total, total_sq, residual = self._sums
        shift = self._origin - origin  # t - origin = (t - own origin) + shift
        total_sq = total_sq + 2 * shift * total + count * shift.square()
        self._sums = torch.stack([count, total + count * shift, total_sq, residual])
        self._origin = origin
        dist.all_reduce(self._sums)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        pred, target = _matched(pred, target)
        acc = accumulator_dtype(pred.device)
        pred, target = pred.to(acc), target.to(acc)
        if self._origin is None:
            self._origin = target[0].clone()
        centred = target - self._origin
        count = torch.full_like(target[0], target.shape[0])
        self._add(torch.stack([count, centred.sum(0), centred.square().sum(0), (target - pred).square().sum(0)]))

    def compute(self) -> float:
        if self._sums is None:
            return float("nan")
        count, total, total_sq, residual = self._sums
        if float(count[0]) < 2:  # as scikit-learn: not defined for fewer than two samples
            return float("nan")
        variance = (total_sq - total.square() / count).clamp(min=0.0)
        # constant targets: 1 for a perfect fit, else 0 (scikit-learn's force_finite default)
        perfect = (residual == 0).to(residual.dtype)
        scores = torch.where(variance > 0, 1.0 - residual / variance, perfect)
        return float(scores.mean())


# ----------------------------------------------------------------------------- torchmetrics

# torchmetrics is an optional extra (trainwise[torchmetrics]): never imported here. An object can only be a
# torchmetrics.Metric if torchmetrics is already imported, so sys.modules answers without importing it.
_RESERVED = ("loss", "lr", "epoch", "epoch_seconds")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _torchmetrics() -> Any:
    """The torchmetrics module if something imported it, else None."""
    return sys.modules.get("torchmetrics")


def _is_torchmetric(obj: object) -> bool:
    tm = _torchmetrics()
    return tm is not None and isinstance(obj, tm.Metric)


def _is_torchmetric_class(obj: type) -> bool:
    tm = _torchmetrics()
    return tm is not None and issubclass(obj, tm.Metric)


def _is_metric_collection(obj: object) -> bool:
    tm = _torchmetrics()
    return tm is not None and isinstance(obj, tm.MetricCollection)


def snake_case(name: str) -> str:
    """A class name in snake_case, as the history key of a torchmetrics metric: MulticlassF1Score ->
    multiclass_f1_score, MulticlassAUROC -> multiclass_auroc, R2Score -> r2_score.

    Args:
        name: a CamelCase name (already snake_case names come back lower-cased).
    """
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)  # lower or digit, then upper: a new word
    name = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", "_", name)  # an acronym, then a word: AUROCScore
    return name.strip("_").lower()  # a private class (_MyMetric) still gives a valid name


def _task(metric: Any) -> str | None:
    """'binary', 'multiclass' or 'multilabel' for torchmetrics' classification metrics (a subclass of one
    too), else None."""
    for cls in type(metric).__mro__:
        if cls.__module__.startswith("torchmetrics.classification"):
            for task in ("binary", "multiclass", "multilabel"):
                if cls.__name__.lower().startswith(task):
                    return task
    return None


class TorchMetric(Metric):
    """A `torchmetrics.Metric` as a trainwise metric: `fit(..., metrics=["accuracy", MulticlassF1Score(
    num_classes=10)])` wraps each torchmetrics metric it is given in one. Wrap one yourself to choose its
    name (the history key; `val_` is put before it for the validation split) or its direction.

    The torchmetrics metric keeps its own states and computes the value as torchmetrics does. trainwise
    moves it to the device of the first predictions it sees, hands it the model's outputs detached, and
    converts targets the way trainwise's own metrics read them: one-hot or soft (N, C) targets become class
    indices for a multiclass metric, 0/1 floats (a BCE target) integer labels for a binary or multilabel one,
    and a regression target of another shape with as many values is reshaped to the predictions' shape.

    Under torch.distributed, trainwise gathers its states over the processes at the end of each training
    epoch (all_reduce, which uses torchmetrics' own sync) and turns off torchmetrics' sync inside compute,
    so each value is computed once over all the samples, and the validation split (evaluated whole by
    every process) is not counted once per process.
    """

    def __init__(self, metric: Any, *, name: str | None = None, higher_is_better: bool | None = None) -> None:
        """
        Args:
            metric: a torchmetrics.Metric instance whose compute() gives one number (e.g.
                `MulticlassF1Score(num_classes=10)`, `BinaryAUROC()`, `MeanAbsolutePercentageError()`).
            name: its name in the history, metrics.csv and the logs; default its class name in snake_case
                (`multiclass_f1_score`). Letters, digits and underscores, starting with a letter.
            higher_is_better: whether larger values are better; default the metric's own
                `higher_is_better`, or True where torchmetrics leaves it None.
        """
        super().__init__()
        if not _is_torchmetric(metric):
            raise ConfigError(f"metrics: TorchMetric wraps a torchmetrics.Metric instance, not {type(metric).__name__}")
        self.metric = metric
        self.name = _checked_name(name if name is not None else snake_case(type(metric).__name__), metric)
        direction = higher_is_better if higher_is_better is not None else getattr(metric, "higher_is_better", None)
        self.higher_is_better = True if direction is None else bool(direction)
        self._task = _task(metric)
        # curves and per-class or per-sample settings give many values: say so now, not after an epoch of training
        base = next((c.__name__ for c in type(metric).__mro__ if c.__module__.startswith("torchmetrics.")), "")
        if base.endswith("Curve") or re.search(r"(?<!AU)ROC$", base):
            raise ConfigError(
                f"metrics: {self.name} ({type(metric).__name__}) computes a curve, and trainwise records one number "
                "per metric; use the area under it (e.g. MulticlassAUROC, MulticlassAveragePrecision)"
            )
        average = getattr(metric, "average", "")
        if self._task is not None and (average is None or average == "none"):
            raise ConfigError(
                f"metrics: {self.name} ({type(metric).__name__} with average={average!r}) computes one value per "
                "class, and trainwise records one number per metric; use a scalar average: average='macro', "
                "'micro' or 'weighted' (the run report shows per-class precision, recall and F1)"
            )
        if getattr(metric, "multidim_average", "global") == "samplewise":
            raise ConfigError(
                f"metrics: {self.name} ({type(metric).__name__} with multidim_average='samplewise') computes one "
                "value per sample, and trainwise records one number per metric; use multidim_average='global'"
            )

    def __repr__(self) -> str:
        return f"TorchMetric({self.metric!r}, name={self.name!r})"

    def reset(self) -> None:
        self.metric.reset()

    def _targets(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The targets as torchmetrics takes them for this metric (shapes only: nothing is read on the host)."""
        if self._task == "multiclass":
            if target.is_floating_point() and pred.ndim >= 2 and target.shape == pred.shape:
                return target.argmax(dim=1)  # one-hot or soft labels; torchmetrics' class dimension is 1
            if pred.ndim == 2 and target.ndim == 2 and target.shape[1] == 1:
                target = target.reshape(-1)
            return target.long() if target.is_floating_point() else target
        if target.numel() == pred.numel() and target.shape != pred.shape:
            target = target.reshape(pred.shape)  # (N,) against (N, 1), as the losses broadcast them
        if self._task is not None and target.is_floating_point():
            return target.round().long()  # BCE's 0/1 floats (or smoothed labels) as class labels
        return target

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        pred = pred.detach()
        if self.metric.device != pred.device:  # lazily: the device is known at the first batch
            self.metric.to(pred.device)
        self.metric.update(pred, self._targets(pred, target.detach().to(pred.device)))

    def compute(self) -> float:
        metric = self.metric
        if metric.update_count == 0:  # as trainwise's metrics: no samples, no value (and no torchmetrics warning)
            return float("nan")
        # trainwise decides when states are reduced over processes (all_reduce): no sync inside compute
        to_sync = getattr(metric, "_to_sync", None)
        if to_sync is not None:
            metric._to_sync = False
        try:
            value = metric.compute()
        finally:
            if to_sync is not None:
                metric._to_sync = to_sync
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            return float(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(
            f"metrics: {self.name} ({type(metric).__name__}) computes {describe(value)}, and trainwise records one "
            "number per metric; use a scalar form of it (e.g. average='macro' rather than average=None, or an "
            "area such as MulticlassAUROC rather than a curve)"
        )

    def state_dict(self) -> dict[str, torch.Tensor | None]:
        """The torchmetrics states (copies) and its update count. A list state ("cat", e.g. AUROC's
        predictions) is saved as one concatenated tensor (None while empty): compute() concatenates it anyway."""
        metric = self.metric
        state: dict[str, torch.Tensor | None] = {"_update_count": torch.tensor(metric.update_count)}
        for key in metric._defaults:
            value = getattr(metric, key)
            if isinstance(value, list):
                parts = [part.reshape(1) if part.ndim == 0 else part for part in value]
                state[key] = torch.cat(parts).detach().clone() if parts else None
            else:
                state[key] = value.detach().clone()
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor | None]) -> None:
        metric = self.metric
        missing = [key for key in ("_update_count", *metric._defaults) if key not in state]
        if missing:
            raise ConfigError(
                f"metrics: the saved state of {self.name} has no {', '.join(missing)}: it was saved from another "
                "metric; resume with the same metrics, in the same order"
            )
        device = next((value.device for value in state.values() if value is not None), None)
        if device is not None and metric.device != device:
            metric.to(device)
        for key, default in metric._defaults.items():
            value = state[key]
            if isinstance(default, list):
                setattr(metric, key, [] if value is None else [value.to(metric.device)])
            else:
                setattr(metric, key, (default if value is None else value).to(metric.device).clone())
        count = state["_update_count"]
        metric._update_count = 0 if count is None else int(count)
        # torchmetrics' caches describe the states just replaced
        metric._computed, metric._cache, metric._is_synced = None, None, False

    def all_reduce(self) -> None:
        """The states over every process (torchmetrics' sync: each state reduced by its own rule, sum, cat,
        max...), and the update counts summed, so that compute() gives the value over all the samples."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        metric = self.metric
        count = torch.tensor([float(metric.update_count)], dtype=torch.float64, device=metric.device)
        dist.all_reduce(count)
        metric.sync(dist_sync_fn=metric.dist_sync_fn, should_sync=True, distributed_available=lambda: True)
        metric._update_count = int(count.item())
        metric._computed = None


def _checked_name(name: str, metric: Any) -> str:
    if not _NAME.fullmatch(name) or name in _RESERVED:
        raise ConfigError(
            f"metrics: {name!r} cannot name {type(metric).__name__}: a metric name is letters, digits and "
            f"underscores, starting with a letter, and not one of {', '.join(_RESERVED)}"
        )
    return name


_NAMED: dict[str, type[Metric]] = {
    "accuracy": Accuracy,
    "mae": MeanAbsoluteError,
    "rmse": RootMeanSquaredError,
    "mse": MeanSquaredError,
    "r2": R2Score,
}
_TOPK = re.compile(r"top_?(\d+)(_accuracy)?$")
METRIC_NAMES = (*_NAMED, "top5_accuracy")


def make_metrics(metrics: str | Metric | Any | Iterable[str | Metric | Any]) -> list[Metric]:
    """Metric objects from names ("accuracy", "top5_accuracy", "mae", "rmse", "mse", "r2"), Metric instances,
    and torchmetrics.Metric instances (each wrapped in a TorchMetric named after its class, e.g.
    multiclass_f1_score; a torchmetrics.MetricCollection gives one per member, named by its keys).

    A single name or metric counts as a list of one (a bare string would otherwise be iterated by character).

    Args:
        metrics: a name, a metric, or an iterable of them.
    """
    if isinstance(metrics, str | Metric) or _is_torchmetric(metrics) or _is_metric_collection(metrics):
        metrics = [metrics]
    made: list[Metric] = []
    for metric in metrics:
        if isinstance(metric, Metric):
            made.append(metric)
            continue
        if _is_torchmetric(metric):
            made.append(TorchMetric(metric))
            continue
        if _is_metric_collection(metric):
            # copy_state: members of one compute group share states until copied, and each is updated alone here
            members = cast(Any, metric).items(keep_base=False, copy_state=True)
            made.extend(TorchMetric(member, name=snake_case(key)) for key, member in members)
            continue
        if isinstance(metric, type) and _is_torchmetric_class(metric):
            raise ConfigError(f"metrics: {metric.__name__} is a class; pass an instance, e.g. {metric.__name__}(...)")
        key = str(metric).strip().lower()
        if key in _NAMED:
            made.append(_NAMED[key]())
        elif match := _TOPK.match(key):
            k = int(match.group(1))
            if k < 1:
                raise ConfigError(f"metrics: {metric!r} asks for the top {k}; k must be at least 1")
            made.append(TopKAccuracy(k))
        else:
            allowed = ", ".join((*_NAMED, "topK_accuracy (e.g. top5_accuracy)", "a torchmetrics.Metric"))
            raise ConfigError(f"metrics: unknown metric {metric!r}; choose from {allowed}")
    names = [m.name for m in made]
    for name in names:
        if names.count(name) > 1:
            hint = ""
            if any(isinstance(m, TorchMetric) for m in made if m.name == name):
                hint = " (name a torchmetrics metric yourself: TorchMetric(metric, name=...))"
            raise ConfigError(f"metrics: {name!r} is listed twice (in {names}); list each metric once{hint}")
    return made


def compute_all(metrics: Sequence[Metric]) -> dict[str, float]:
    return {metric.name: metric.compute() for metric in metrics}
