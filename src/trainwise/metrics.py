"""Metrics computed exactly over a whole epoch.

Each metric accumulates sums on the device during the epoch (no host synchronisation per step)
and turns them into one number at the end, so accuracy is correct/total over all samples, not an
average of per-batch ratios, and R^2 uses the epoch's own total variance.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import torch

from trainwise.errors import ConfigError


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
    """Base class: `update` once per batch (device tensors only), `compute` once per epoch."""

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
        self._add(torch.stack([correct, correct.new_tensor(target.shape[0])]))

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
            total = torch.tensor(float(target.shape[0]), device=pred.device)
            self._add(torch.stack([total, total]))
            return
        k = min(self.k, pred.shape[-1])
        top = pred.detach().topk(k, dim=-1).indices
        correct = (top == _class_targets(target).unsqueeze(-1)).any(dim=-1).sum()
        self._add(torch.stack([correct, correct.new_tensor(target.shape[0])]))


class MeanAbsoluteError(Metric):
    name = "mae"
    higher_is_better = False

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        pred, target = _matched(pred, target)
        err = (pred - target).abs().sum()
        self._add(torch.stack([err, err.new_tensor(target.numel())]))

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
        self._add(torch.stack([err, err.new_tensor(target.numel())]))


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


_NAMED: dict[str, type[Metric]] = {
    "accuracy": Accuracy,
    "mae": MeanAbsoluteError,
    "rmse": RootMeanSquaredError,
    "mse": MeanSquaredError,
    "r2": R2Score,
}
_TOPK = re.compile(r"top_?(\d+)(_accuracy)?$")
METRIC_NAMES = (*_NAMED, "top5_accuracy")


def make_metrics(metrics: str | Metric | Iterable[str | Metric]) -> list[Metric]:
    """Metric objects from names ("accuracy", "top5_accuracy", "mae", "rmse", "mse", "r2") or instances.

    A single name or Metric counts as a list of one (a bare string would otherwise be iterated by character).
    """
    if isinstance(metrics, str | Metric):
        metrics = [metrics]
    made: list[Metric] = []
    for metric in metrics:
        if isinstance(metric, Metric):
            made.append(metric)
            continue
        key = str(metric).strip().lower()
        if key in _NAMED:
            made.append(_NAMED[key]())
        elif match := _TOPK.match(key):
            k = int(match.group(1))
            if k < 1:
                raise ConfigError(f"metrics: {metric!r} asks for the top {k}; k must be at least 1")
            made.append(TopKAccuracy(k))
        else:
            allowed = ", ".join((*_NAMED, "topK_accuracy (e.g. top5_accuracy)"))
            raise ConfigError(f"metrics: unknown metric {metric!r}; choose from {allowed}")
    names = [m.name for m in made]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"metrics: {name!r} is listed twice (in {names}); list each metric once")
    return made


def compute_all(metrics: Sequence[Metric]) -> dict[str, float]:
    return {metric.name: metric.compute() for metric in metrics}
