"""Checks of the data as the model sees it: scale, class balance, order, and validation leaks.

Codes: unscaled-inputs, class-imbalance, unshuffled-data, train-val-overlap.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

import torch

from trainwise.doctor.registry import check

if TYPE_CHECKING:
    from trainwise.doctor.core import Doctor

# Plain SGD steps are proportional to the inputs: a feature whose root-mean-square is 20x the bias's
# implicit input of 1 gets ~20x larger gradient steps, so any lr that is stable for it crawls for the
# rest (W1: t_u has RMS 51, its gradient is 55x b's). Adaptive optimizers rescale each parameter,
# so only extreme scales (RMS > 100, e.g. raw 0..255 pixels) hurt them.
SGD_MAX_RMS = 20.0
SGD_MAX_SPREAD = 50.0  # largest feature RMS over the median feature RMS
ADAPTIVE_MAX_RMS = 100.0
IMBALANCE_RATIO = 10.0
LABELS_FOR_BALANCE = 1000
SORTED_BATCHES = 10
OVERLAP_FRACTION = 0.5


def _unscaled(doctor: Doctor, mean: torch.Tensor, std: torch.Tensor) -> None:
    if doctor.has("unscaled-inputs") or mean.numel() == 0:
        return
    rms = (mean.square() + std.square()).sqrt()
    worst = int(rms.argmax())
    top = float(rms[worst])
    spread = top / max(float(rms.median()), 1e-12) if rms.numel() >= 2 else 1.0
    limit = ADAPTIVE_MAX_RMS if doctor.adaptive else SGD_MAX_RMS
    too_large = top > limit
    too_uneven = not doctor.adaptive and spread > SGD_MAX_SPREAD
    if not (too_large or too_uneven):
        return
    name = doctor.feature_name(worst)
    factor = 10.0 ** -math.floor(math.log10(top)) if top >= 10 else 1.0
    evidence = {"mean": float(mean[worst]), "std": float(std[worst]), "rms": top}
    if rms.numel() >= 2:
        evidence["largest_to_median_rms"] = spread
    how = "" if doctor.adaptive else f" With {doctor.optimizer_name}, gradients scale with the inputs: "
    how += "" if doctor.adaptive else "one lr cannot suit a large feature and the bias at once."
    doctor.raise_finding(
        "unscaled-inputs",
        f"Input {name} has mean {float(mean[worst]):.3g} and std {float(std[worst]):.3g} (RMS {top:.3g}), "
        f"far from the ~1 scale the optimizer and the initialization assume.{how}",
        evidence=evidence,
        suggestion=(
            f"scale inputs by {factor:g} or standardize them (normalize = 'standard')"
            if factor != 1
            else "standardize the inputs (normalize = 'standard')"
        ),
        subject=name,
    )


@check("step")
def check_input_scale(doctor: Doctor) -> None:
    if len(doctor.obs.samples) < 2 or doctor.obs.input_dtype is None or not doctor.obs.input_dtype.is_floating_point:
        return
    moments = doctor.input_moments()
    if moments is not None:
        _unscaled(doctor, *moments)


def _label_counts(y: torch.Tensor) -> torch.Tensor | None:
    if y.is_floating_point() or y.ndim != 1 or y.numel() == 0 or int(y.min()) < 0:
        return None
    return torch.bincount(y.long().cpu())


def _imbalance(doctor: Doctor, counts: torch.Tensor) -> None:
    present = counts[counts > 0]
    if present.numel() < 2 or doctor.has("class-imbalance"):
        return
    ratio = float(present.max()) / float(present.min())
    if ratio < IMBALANCE_RATIO:
        return
    rare = int(torch.where(counts > 0, counts, counts.max() + 1).argmin())
    common = int(counts.argmax())
    share = float(counts[rare]) / float(counts.sum())
    doctor.raise_finding(
        "class-imbalance",
        f"Class {rare} has {int(counts[rare])} samples ({share:.1%}) against {int(counts[common])} for class "
        f"{common}: a model can score {float(counts[common]) / float(counts.sum()):.0%} accuracy by ignoring the "
        "rare classes.",
        evidence={"largest_to_smallest": ratio, "rare_class": rare, "rare_share": share},
        suggestion="weight the loss by inverse class frequency (nn.CrossEntropyLoss(weight=...)), resample, "
        "and watch per-class recall rather than accuracy",
    )


@check("data")
def check_dataset(doctor: Doctor) -> None:
    assert doctor.data is not None
    X, y, X_val, _y_val = doctor.data
    if X.is_floating_point() and X.ndim >= 2 and X.shape[0] >= 2:
        values = X.reshape(X.shape[0], -1) if X.ndim == 2 else X.transpose(0, 1).reshape(X.shape[1], -1).T
        values = values.double()
        _unscaled(doctor, values.mean(0).cpu(), values.std(0, correction=0).cpu())
    counts = _label_counts(y)
    if counts is not None:
        _imbalance(doctor, counts)
    if X_val is not None:
        from trainwise.doctor.core import row_keys

        train = set(row_keys(X))
        val = list(row_keys(X_val))
        _overlap(doctor, sum(key in train for key in val), len(val))


@check("loss_input")
def check_label_stream(doctor: Doctor) -> None:
    obs = doctor.obs
    if obs.label_counts is not None and obs.labels_seen >= LABELS_FOR_BALANCE and doctor.data is None:
        _imbalance(doctor, obs.label_counts)
    if doctor.has("unshuffled-data") or (obs.batch_size or 0) < 8:
        return
    single = obs.batch_label_classes
    if len(single) >= SORTED_BATCHES and obs.label_counts is not None and int((obs.label_counts > 0).sum()) >= 2:
        one_class = sum(n == 1 for n in single) / len(single)
        if one_class >= 0.8:
            doctor.raise_finding(
                "unshuffled-data",
                f"{one_class:.0%} of the first {len(single)} batches hold a single class: the data arrives sorted "
                "by label, so each step pulls the model toward one class and undoes the last.",
                evidence={"single_class_batches": one_class, "batches": len(single)},
                suggestion="shuffle the training data every epoch (DataLoader(..., shuffle=True))",
            )
            return
    means = obs.batch_target_means
    if len(means) >= SORTED_BATCHES:
        steps = [b - a for a, b in itertools.pairwise(means)]
        if all(s > 0 for s in steps) or all(s < 0 for s in steps):
            doctor.raise_finding(
                "unshuffled-data",
                f"The mean target rises or falls in every one of the first {len(means)} batches: the data is "
                "sorted by its target, so each step sees a different part of the range.",
                evidence={"batches": len(means), "first_mean": means[0], "last_mean": means[-1]},
                suggestion="shuffle the training data every epoch (DataLoader(..., shuffle=True))",
            )


def _overlap(doctor: Doctor, shared: int, total: int) -> None:
    if total == 0 or shared / total < OVERLAP_FRACTION:
        return
    doctor.raise_finding(
        "train-val-overlap",
        f"{shared} of {total} validation samples ({shared / total:.0%}) are also training samples: the "
        "validation loss measures memory, not generalization.",
        evidence={"shared": shared, "validation_samples": total, "fraction": shared / total},
        suggestion="split once, before training, into disjoint train and validation sets (val_split=0.2)",
    )


@check("eval_forward")
def check_eval_overlap(doctor: Doctor) -> None:
    x = doctor.last_eval_input
    if x is None or doctor.has("train-val-overlap") or doctor.data is not None or not doctor.obs.train_keys:
        return
    from trainwise.doctor.core import row_keys

    keys = list(row_keys(x))
    doctor.obs.val_keys.update(keys)
    val = doctor.obs.val_keys
    if len(val) >= 32:
        _overlap(doctor, sum(key in doctor.obs.train_keys for key in val), len(val))
