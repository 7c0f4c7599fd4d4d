"""Checks of the data as the model sees it: scale, class balance, order, and validation leaks.

Codes: unscaled-inputs, class-imbalance, unshuffled-data, train-val-overlap.

Thresholds, and why:
- unscaled-inputs: see the constants below. Judged on the whole training set (fit) or on the batches of the
  first step onward (a hand-written loop), so it is reported before its symptoms (a huge first loss).
- class-imbalance: the largest class is at least IMBALANCE_RATIO times the smallest.
- unshuffled-data: classification batches hold far fewer classes than shuffled batches would, or the mean
  regression target rises (or falls) from each batch to the next. From the batches the loss sees, so it
  works for DataLoaders and for fit alike.
- train-val-overlap: more than LEAK_FRACTION of the validation rows are exact copies of training rows (rows
  oversampled or augmented before the split, a set concatenated twice, validating on the training set).
  Rows of a few discrete features repeat by nature (the features' distinct values allow fewer than
  NATURAL_REPEATS x as many rows as were trained on): there only half or more counts.
"""

from __future__ import annotations

import collections
import itertools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from trainwise.doctor.registry import runs_on

if TYPE_CHECKING:
    from trainwise.doctor.core import Doctor

BINARY_LOSSES = ("bce_with_logits", "bce")

# Plain SGD steps are proportional to the inputs: a feature whose root-mean-square is 20x the bias's
# implicit input of 1 gets ~20x larger gradient steps, so any lr that is stable for it crawls for the
# rest (W1: t_u has RMS 54, its gradient is 55x b's). Adaptive optimizers rescale each parameter, so
# only extreme scales hurt them, through the initialization (pre-activations start at ~RMS/sqrt(3)):
# RMS > 100, e.g. raw 0..255 photographs (CIFAR-10's channels have RMS ~130-140).
SGD_MAX_RMS = 20.0
SGD_MAX_SPREAD = 50.0  # largest feature RMS over the median RMS of the features that vary at all
ADAPTIVE_MAX_RMS = 100.0
MIN_ROWS_FOR_SCALE = 16  # rows before a per-feature RMS is trusted (a 20x excess is not a fluke of 16 rows)
# At 10:1 a model that ignores the rare class already scores 91% accuracy (two classes), so accuracy
# and the mean loss no longer show whether the rare class is learned at all.
IMBALANCE_RATIO = 10.0
# In a hand-written loop the balance is estimated from the labels of sampled batches: with 500 of them, a
# 10:1 split's rare class has ~45 samples, so its share is known to about +-30% (two standard deviations).
LABELS_FOR_BALANCE = 500
# Batch order: judged on the first SORTED_BATCHES batches of at least MIN_BATCH samples (smaller
# batches hold few classes anyway). Classification: a shuffled batch of B samples holds on average
# E = sum_k 1 - (1 - p_k)^B distinct classes (p_k: the class shares); sorted data gives about one.
# Raised when the batches hold less than half of the classes beyond the first that shuffling gives,
# and that shortfall is ORDER_Z standard deviations beyond chance, so shuffled data with a rare class
# (most of its batches hold one class anyway) is not mistaken for sorted data. Regression: the mean
# target moves the same way between each of the batches; shuffled, that happens with probability
# 2 / 10! (< 1e-6).
SORTED_BATCHES = 10
MIN_BATCH = 8
VARIETY_SHORTFALL = 0.5
ORDER_Z = 3.0
# A duplicate or two across a split (common in scraped data) bias validation a little; beyond a few percent
# the rows were copied before the split, and the validation loss partly measures memory
LEAK_FRACTION = 0.05
MIN_SHARED_ROWS = 5
NATURAL_REPEATS = 100
# half the validation rows seen in training: memory, even where rows repeat by nature; also what tells a
# training-accuracy pass (all training rows) from validation
OVERLAP_FRACTION = 0.5
MIN_VALIDATION_ROWS = 32  # fewer validation rows than this say little about a split
# A no-gradient pass made only of training rows next to held-out ones is a training-accuracy pass
# when it covers at least this share of the training rows; it is not validation.
TRAIN_PASS_COVERAGE = 0.5


@dataclass
class _Batches:
    """What this family remembers per doctor: the first batches' labels and the current no-gradient pass."""

    calls: int = -1  # the doctor's loss-input call last recorded
    scale_judged_at: int = -1  # the input rows counted when check_input_scale last judged them
    counts: torch.Tensor | None = None  # labels per class: the whole training set (fit) or the batches seen
    classes: list[tuple[int, int]] = field(default_factory=list)  # (distinct labels, batch size) per batch
    means: list[tuple[float, int]] = field(default_factory=list)  # (mean regression target, batch size)
    eval_batches: list[tuple[int, int, int]] = field(default_factory=list)  # (step, rows, rows seen in training)
    natural_repeats: bool = False  # validation rows of so few distinct values that they repeat by nature
    order_settled: bool = False  # the whole dataset known and the first batches in: the order verdict is final


def _state(doctor: Doctor) -> _Batches:
    return doctor.family_state(_Batches)


# ----------------------------------------------------------------------------- scale


def _unscaled(doctor: Doctor, mean: torch.Tensor, std: torch.Tensor, *, images: bool) -> None:
    if doctor.has("unscaled-inputs") or mean.numel() == 0:
        return
    # Python numbers: a few features (or channels) cost a dozen tensor operations more than a loop over them
    means, stds = mean.tolist(), std.tolist()
    rms = [math.sqrt(m * m + s * s) for m, s in zip(means, stds, strict=True)]
    worst = max(range(len(rms)), key=rms.__getitem__)  # the first of the largest, as argmax
    top = rms[worst]
    varying = sorted(r for r, s in zip(rms, stds, strict=True) if s > 0)  # constant features (blank image
    # borders) get no gradient and set no scale; the lower of two middle values, as torch's median
    median = varying[(len(varying) - 1) // 2] if varying else top
    spread = top / max(median, 1e-12) if len(rms) >= 2 else 1.0
    limit = ADAPTIVE_MAX_RMS if doctor.adaptive else SGD_MAX_RMS
    too_large = top > limit
    too_uneven = not doctor.adaptive and spread > SGD_MAX_SPREAD
    if not (too_large or too_uneven):
        return
    name = f"channel {worst}" if images else doctor.feature_name(worst)
    evidence = {"mean": means[worst], "std": stds[worst], "rms": top}
    if len(rms) >= 2:
        evidence["largest_to_median_rms"] = spread
    how = "" if doctor.adaptive else f" With {doctor.optimizer_name}, gradients scale with the inputs: "
    how += "" if doctor.adaptive else "one lr cannot suit a large feature and the bias at once."
    if spread > SGD_MAX_RMS:  # one factor would leave the median feature this far below the bias's scale
        suggestion = (
            f"standardize each {'channel' if images else 'feature'}: (X - mean) / std with the training set's "
            "statistics (fit(..., normalize='standard') does it)"
        )
    else:  # similar features (pixels): the power of ten that brings the RMS under 10, below every limit
        factor = 10.0 ** -math.floor(math.log10(top))
        suggestion = (
            f"scale inputs by {factor:g} (RMS {top * factor:.2g} after), or standardize them: (X - mean) / std "
            "with the training set's statistics (fit(..., normalize='standard'))"
        )
    doctor.raise_finding(
        "unscaled-inputs",
        f"Input {name} has mean {means[worst]:.3g} and std {stds[worst]:.3g} (RMS {top:.3g}), "
        f"far from the ~1 scale the optimizer and the initialization assume.{how}",
        evidence=evidence,
        suggestion=suggestion,
        subject=name,
    )


@runs_on("loss_input", "step")
def check_input_scale(doctor: Doctor) -> None:
    obs = doctor.obs
    if doctor.data is not None or obs.input_dtype is None or not obs.input_dtype.is_floating_point:
        return  # with the whole dataset known, check_dataset judged it already
    state = _state(doctor)
    if obs.input_count < MIN_ROWS_FOR_SCALE or obs.input_count == state.scale_judged_at:
        return  # too few rows, or none since the last verdict (a sampled step's loss input and its end)
    state.scale_judged_at = obs.input_count
    moments = doctor.input_moments()
    last = doctor._last_input
    if moments is not None:
        _unscaled(doctor, *moments, images=last is not None and last.ndim > 2)


# ----------------------------------------------------------------------------- balance


def _as_labels(doctor: Doctor, target: torch.Tensor) -> torch.Tensor | None:
    """Class labels as a 1-D long tensor: class indices, or the 0/1 floats of a binary cross-entropy target
    of one column; None for anything else (regression targets, one-hot or multi-label rows, masks)."""
    if target.numel() == 0:
        return None
    if not target.is_floating_point():  # negative labels are ignore_index markers (or label-out-of-range)
        labels = target[target >= 0].long() if target.ndim == 1 else target.new_empty(0)
        return labels if labels.numel() else None
    if doctor.loss_kind() not in BINARY_LOSSES or target.ndim > 2 or (target.ndim == 2 and target.shape[1] != 1):
        return None  # float targets of other losses are values (a count that is often 0 or 1 is no class)
    flat = target.reshape(-1)
    return flat.long() if bool(((flat == 0) | (flat == 1)).all()) else None


def _label_counts(doctor: Doctor, y: torch.Tensor) -> torch.Tensor | None:
    labels = _as_labels(doctor, y)
    return None if labels is None else torch.bincount(labels.cpu())


def _add_counts(old: torch.Tensor | None, new: torch.Tensor) -> torch.Tensor:
    if old is None:
        return new
    size = max(len(old), len(new))
    return torch.nn.functional.pad(old, (0, size - len(old))) + torch.nn.functional.pad(new, (0, size - len(new)))


def _weighted_for(doctor: Doctor, rare: int, common: int, ratio: float) -> bool:
    """Does the loss already weight the rare class up (a class weight, or BCE's pos_weight for a rare
    positive class) by at least the square root of the imbalance? Then the fix is in place."""
    weight = getattr(doctor.loss_fn, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.ndim == 1 and weight.numel() > max(rare, common):
        boost = float(weight[rare]) / max(float(weight[common]), 1e-12)
    else:
        pos_weight = getattr(doctor.loss_fn, "pos_weight", None)
        if not isinstance(pos_weight, torch.Tensor) or rare != 1:
            return False
        boost = float(pos_weight.float().mean())
    return boost >= math.sqrt(ratio)


def _imbalance(doctor: Doctor, counts: torch.Tensor, where: str = "") -> None:
    present = counts[counts > 0]
    if present.numel() < 2 or doctor.has("class-imbalance"):
        return
    ratio = float(present.max()) / float(present.min())
    if ratio < IMBALANCE_RATIO:
        return
    rare = int(torch.where(counts > 0, counts, counts.max() + 1).argmin())
    common = int(counts.argmax())
    if _weighted_for(doctor, rare, common, ratio):
        return
    total = float(counts.sum())
    share = float(counts[rare]) / total
    # inverse-frequency weights, scaled so the largest class weighs 1
    weight = float(counts[common]) / float(counts[rare])
    doctor.raise_finding(
        "class-imbalance",
        f"Class {rare} has {int(counts[rare])} samples ({share:.1%}) against {int(counts[common])} for class "
        f"{common}{where}: a model can score {float(counts[common]) / total:.0%} accuracy by ignoring the rare "
        "classes.",
        evidence={"largest_to_smallest": ratio, "rare_class": rare, "rare_share": share, "classes": len(present)},
        suggestion=f"weight the loss by inverse class frequency (class {rare} about {weight:.3g}x class {common}: "
        "nn.CrossEntropyLoss(weight=counts.max() / counts)), or resample, and watch per-class recall rather "
        "than accuracy",
    )


@runs_on("data")
def check_dataset(doctor: Doctor) -> None:
    assert doctor.data is not None
    X, y, X_val, _y_val = doctor.data
    if X.is_floating_point() and X.ndim >= 2 and X.shape[0] >= 2:
        # evenly spaced rows estimate a mean and std to about 1%: no need to read all of X. Per feature
        # (N, F): 10,000 rows; per channel (N, C, ...): 1,000 images, each many values of every channel
        rows = 10_000 if X.ndim == 2 else 1_000
        sample = X[:: max(1, X.shape[0] // rows)]
        if sample.dtype in (torch.float16, torch.bfloat16):
            sample = sample.float()
        std, mean = torch.std_mean(sample, dim=(0, *range(2, X.ndim)), correction=0)
        _unscaled(doctor, mean.double().cpu(), std.double().cpu(), images=X.ndim > 2)
    counts = _state(doctor).counts = _label_counts(doctor, y)
    if counts is not None:
        _imbalance(doctor, counts)
    if X_val is not None:
        from trainwise.doctor.core import row_keys

        val = row_keys(X_val)
        shared = int(torch.isin(val, row_keys(X)).sum())
        _overlap(doctor, shared, len(val), bool(shared) and repeats_by_nature(X_val, len(X)))


# ----------------------------------------------------------------------------- order


def record_batch(doctor: Doctor) -> None:
    """Remember the current batch's labels (once per loss call; both label families may ask first)."""
    state = _state(doctor)
    calls = doctor.loss_inputs_seen
    target = doctor.loss_target
    if state.calls == calls or target is None or target.numel() == 0:
        return
    state.calls = calls
    labels = _as_labels(doctor, target)
    if labels is not None and doctor.data is None:  # with the whole dataset known, its counts are set
        state.counts = _add_counts(state.counts, torch.bincount(labels.cpu()))
    size = int(target.shape[0]) if target.ndim else 1
    if size < MIN_BATCH:
        return  # too small to show the order (the last batch of an epoch, or a tiny batch size)
    if labels is not None and len(state.classes) < SORTED_BATCHES:
        state.classes.append((int(labels.unique().numel()), size))
    elif labels is None and target.is_floating_point() and len(state.means) < SORTED_BATCHES:
        state.means.append((float(target.float().mean()), size))


def label_order(doctor: Doctor) -> tuple[float, float, float] | None:
    """(classes per batch, classes per batch if shuffled, z of the shortfall) over the first recorded
    batches; None while there are too few batches or classes to tell."""
    state = _state(doctor)
    counts = state.counts
    pairs = state.classes
    if len(pairs) < SORTED_BATCHES or counts is None or int((counts > 0).sum()) < 2:
        return None
    shares = counts[counts > 0].double() / float(counts.sum())
    seen = float(sum(classes for classes, _ in pairs))
    expected, variance = 0.0, 0.0
    for size, batches in collections.Counter(size for _, size in pairs).items():  # nearly always one size
        present = 1 - (1 - shares) ** size  # chance that each class is in a shuffled batch of this size
        expected += batches * float(present.sum())
        variance += batches * float((present * (1 - present)).sum())  # negatively correlated indicators: a bound
    n = len(pairs)
    z = (expected - seen) / math.sqrt(variance) if variance > 0 else (math.inf if seen < expected - 0.5 else 0.0)
    return seen / n, expected / n, z


def _grouped(order: tuple[float, float, float]) -> bool:
    seen, expected, z = order
    extra = expected - 1  # the classes beyond the first that a shuffled batch holds
    return extra > 0 and (seen - 1) < (1 - VARIETY_SHORTFALL) * extra and z >= ORDER_Z


def looks_sorted(doctor: Doctor) -> bool | None:
    """Do the batches arrive grouped by class? None while it cannot be told yet."""
    if doctor.has("unshuffled-data"):
        return True
    order = label_order(doctor)
    return None if order is None else _grouped(order)


@runs_on("loss_input")
def check_label_stream(doctor: Doctor) -> None:
    state = _state(doctor)
    if state.order_settled:
        return
    record_batch(doctor)
    if doctor.data is not None and SORTED_BATCHES in (len(state.classes), len(state.means)):
        state.order_settled = True  # the counts are the dataset's and no more batches are recorded: judged once
    if not doctor.has("unshuffled-data"):
        order = label_order(doctor)
        if order is not None and _grouped(order):
            seen, expected, _z = order
            doctor.raise_finding(
                "unshuffled-data",
                f"The first {SORTED_BATCHES} batches hold {seen:.2g} classes each on average where shuffled batches "
                f"would hold {expected:.2g}: the data arrives grouped by label, so each step pulls the model toward "
                "one class and undoes the last.",
                evidence={"classes_per_batch": seen, "shuffled_classes_per_batch": expected, "batches": SORTED_BATCHES},
                suggestion="shuffle the training data every epoch (DataLoader(..., shuffle=True), or fit(..., "
                "shuffle=True))",
            )
        means = [mean for mean, _ in state.means]
        if len(means) >= SORTED_BATCHES:
            steps = [b - a for a, b in itertools.pairwise(means)]
            if all(s > 0 for s in steps) or all(s < 0 for s in steps):
                direction = "rises" if steps[0] > 0 else "falls"
                doctor.raise_finding(
                    "unshuffled-data",
                    f"The mean target {direction} from each of the first {len(means)} batches to the next "
                    f"({means[0]:.3g} to {means[-1]:.3g}): the data is sorted by its target, so each step sees "
                    "a different part of the range.",
                    evidence={"batches": len(means), "first_mean": means[0], "last_mean": means[-1]},
                    suggestion="shuffle the training data every epoch (DataLoader(..., shuffle=True), or fit(..., "
                    "shuffle=True))",
                )
    # with the whole dataset known, check_dataset judged the balance; from a stream, only shuffled labels count
    counts = state.counts
    seen_labels = 0 if counts is None or doctor.data is not None else int(counts.sum())
    if counts is not None and seen_labels >= LABELS_FOR_BALANCE and looks_sorted(doctor) is False:
        _imbalance(doctor, counts, f" among the {seen_labels} labels seen so far")


# ----------------------------------------------------------------------------- validation leaks


def repeats_by_nature(x: torch.Tensor, trained_rows: int) -> bool:
    """Can rows like these coincide without being copies? Only when their features take so few distinct
    values that fewer than NATURAL_REPEATS x `trained_rows` different rows exist (one-hot and small integer
    features); continuous features or images practically never repeat by chance."""
    flat = x.detach().flatten(1) if x.ndim > 1 else x.detach().unsqueeze(1)
    if flat.shape[0] < 2:
        return False
    limit = math.log(NATURAL_REPEATS * max(trained_rows, 1))
    combinations = 0.0
    for column in flat.T[:64]:  # 64 columns of many values already allow more rows than any data set has
        combinations += math.log(len(torch.unique(column)))
        if combinations > limit:
            return False
    return True


def _overlap(doctor: Doctor, shared: int, total: int, natural: bool) -> None:
    needed = OVERLAP_FRACTION if natural else LEAK_FRACTION
    if total < 1 or shared < MIN_SHARED_ROWS or shared / total <= needed or doctor.has("train-val-overlap"):
        return
    doctor.raise_finding(
        "train-val-overlap",
        f"{shared} of {total} validation samples ({shared / total:.0%}) are also training samples: the "
        "validation loss measures memory, not generalization.",
        evidence={"shared": shared, "validation_samples": total, "fraction": shared / total},
        suggestion="split once, before training, into disjoint train and validation sets "
        "(torch.utils.data.random_split, or fit(..., val_split=0.2))",
    )


def _rescored(last: torch.Tensor | None, x: torch.Tensor) -> bool:
    """Is x the very batch just trained on (scored again without gradients, e.g. for batch accuracy)?"""
    if last is None or (last.shape, last.dtype, last.device) != (x.shape, x.dtype, x.device):
        return False
    return bool(torch.equal(last, x))


@runs_on("eval_forward")
def collect_eval_batch(doctor: Doctor) -> None:
    """Count, per no-gradient batch, how many of its rows were training rows; judged when a validation loss
    is recorded. Only the batches since the last training step are kept: earlier no-gradient passes were
    not followed by a validation loss, so they were not validation."""
    x = doctor.last_eval_input
    if x is None or x.ndim < 2 or doctor.has("train-val-overlap"):
        return
    if doctor.data is not None and doctor.data[2] is not None:
        return  # check_dataset compared the whole validation set already
    known = doctor.obs.train_rows
    if not len(known) or _rescored(doctor._last_input, x):
        return  # nothing to compare with yet, or the batch just trained on scored again (batch accuracy)
    from trainwise.doctor.core import row_keys

    keys = row_keys(x)
    state = _state(doctor)
    state.eval_batches = [batch for batch in state.eval_batches if batch[0] == doctor.step]
    shared = known.count_known(keys)
    state.natural_repeats = state.natural_repeats or (shared > 0 and repeats_by_nature(x, len(known)))
    state.eval_batches.append((doctor.step, len(keys), shared))


@runs_on("validation")
def check_eval_overlap(doctor: Doctor) -> None:
    """A validation loss was recorded: judge the no-gradient batches since the last training step.

    Batches made only of training rows next to batches of held-out rows are a training-accuracy pass when
    they cover at least TRAIN_PASS_COVERAGE of the training rows, and are left out; the rest is validation."""
    state = _state(doctor)
    batches = [(rows, shared) for step, rows, shared in state.eval_batches if step == doctor.step]
    state.eval_batches = []
    if not batches or doctor.has("train-val-overlap"):
        return
    held_out = any(shared < OVERLAP_FRACTION * rows for rows, shared in batches)
    training_rows = sum(rows for rows, shared in batches if shared == rows)
    if held_out and training_rows >= TRAIN_PASS_COVERAGE * len(doctor.obs.train_rows):
        batches = [(rows, shared) for rows, shared in batches if shared < rows]
    total = sum(rows for rows, _ in batches)
    if total >= MIN_VALIDATION_ROWS:
        _overlap(doctor, sum(shared for _, shared in batches), total, state.natural_repeats)
