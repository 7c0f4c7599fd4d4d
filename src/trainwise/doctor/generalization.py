"""Does what the model learns carry over to new data?

Code: overfitting. It needs validation losses (fit's validation, or Doctor.record(val_loss=...)).

Overfitting is memorization: the training loss keeps falling while the validation loss rises, and the
model fits its training data far better than new data. All of these must hold:
- a sustained rise: the mean of the last PATIENCE validations (early stopping's usual patience) lies
  above the best mean of PATIENCE consecutive validations, with no overlap between the two windows.
  Means of windows, not single values: one lucky validation is not a best to measure against;
- beyond noise: the rise is more than RISE (5%) of the best, and more than NOISE_Z standard errors of a
  difference of two window means, the noise taken from the validations themselves (the median absolute
  change between consecutive validations is 0.95 standard deviations for pure noise; a trend only
  makes it larger, so the test errs on the side of silence). A validation loss that plateaus and
  jitters is therefore not overfitting;
- the training loss fell between the two windows (else the run is unstable, not memorizing);
- a real generalization gap: the recent validation loss is at least GAP times the training loss. A
  classifier on overlapping classes whose validation loss creeps up while it grows more confident
  (training loss 0.45, validation 0.8, accuracy unchanged) is calibrating, not memorizing; a model that
  memorizes drives its training loss far below what it scores on new data. Early in training, when
  the training loss is still above the validation loss, a rise is instability, not overfitting.
In trainwise's loop the training loss of each epoch is used; in a user loop, the mean of the training
losses recorded since the previous validation.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from statistics import median
from typing import TYPE_CHECKING

from trainwise.doctor.registry import runs_on

if TYPE_CHECKING:
    from trainwise.doctor.core import Doctor

PATIENCE = 3
RISE = 0.05
NOISE_Z = 3.0
GAP = 2.0
HALF_NORMAL_MEDIAN = 0.954  # median |x_i - x_(i-1)| / sigma for independent noise: 0.674 * sqrt(2)


@dataclass
class _Validations:
    """A user loop's training loss at each validation: the mean of the losses recorded since the one before."""

    losses_seen: int = 0
    train_means: list[float | None] = field(default_factory=list)


def _train_losses(doctor: Doctor, count: int) -> list[float | None] | None:
    """The training loss belonging to each validation, or None when it is not known yet."""
    epoch_losses = doctor.obs.epoch_losses
    if len(epoch_losses) == count:
        return list(epoch_losses)
    if doctor.driven:
        return None  # fit validates before it ends the epoch: wait for the epoch's training loss
    state = doctor.family_state(_Validations)
    losses = doctor.obs.losses
    while len(state.train_means) < count:  # the mean training loss since the previous validation
        recent = [v for v in losses[state.losses_seen : len(losses)] if math.isfinite(v)]
        state.train_means.append(sum(recent) / len(recent) if recent else None)
        state.losses_seen = len(losses)
    return state.train_means[:count]


def _window_means(values: list[float]) -> list[float]:
    return [sum(values[i - PATIENCE + 1 : i + 1]) / PATIENCE for i in range(PATIENCE - 1, len(values))]


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if len(known) == len(values) and known else None


@runs_on("validation", "epoch")
def check_overfitting(doctor: Doctor) -> None:
    values = [v for _, v in doctor.obs.val_losses]
    train = _train_losses(doctor, len(values))
    if train is None or doctor.has("overfitting") or len(values) < 2 * PATIENCE:
        return
    if not all(math.isfinite(v) for v in values):
        return
    means = _window_means(values)
    best_end = min(range(len(means)), key=means.__getitem__) + PATIENCE - 1  # last validation of the best window
    best, now = means[best_end - PATIENCE + 1], means[-1]
    if best_end > len(values) - 1 - PATIENCE or best <= 0:
        return  # the best window is among (or overlaps) the latest validations
    noise = median(abs(b - a) for a, b in itertools.pairwise(values)) / HALF_NORMAL_MEDIAN
    rise = now - best
    if rise <= RISE * best or rise <= NOISE_Z * noise * math.sqrt(2 / PATIENCE):
        return
    train_then = _mean(train[best_end - PATIENCE + 1 : best_end + 1])
    train_now = _mean(train[-PATIENCE:])
    if train_then is None or train_now is None or not train_now < train_then:
        return
    gap = now - train_now
    if gap < (GAP - 1) * abs(train_now):  # val >= GAP x train (for a positive training loss)
        return
    window = range(best_end - PATIENCE + 1, best_end + 1)
    best_index = min(window, key=values.__getitem__)
    epochs = [epoch for epoch, _ in doctor.obs.val_losses]
    if len(set(epochs)) == len(epochs):
        when, stop = f"epoch {epochs[best_index] + 1}", f"stop near epoch {epochs[best_index] + 1}"
    else:
        when, stop = f"validation {best_index + 1}", f"stop near validation {best_index + 1}"
    doctor.raise_finding(
        "overfitting",
        f"The validation loss rose {rise / best:.0%} above its best over the last {PATIENCE} validations "
        f"({best:.4g} around {when}, {now:.4g} now) while the training loss kept falling "
        f"({train_then:.4g} -> {train_now:.4g}), far below it: the model memorizes its training data instead of "
        "learning what carries over.",
        evidence={
            "best_val_loss": best,
            "val_loss": now,
            "best_validation": best_index + 1,
            "train_loss": train_now,
            "val_noise": noise,
        },
        suggestion=f"{stop} (EarlyStopping(patience={PATIENCE}) and keep the best weights), add weight decay "
        "(weight_decay=1e-4) or dropout, use a smaller model, or get more training data",
    )
