"""Checks of what the loss receives: labels, output shapes and the choice of loss.

Codes: label-out-of-range, loss-broadcast, output-class-mismatch, softmax-into-cross-entropy,
nll-without-log-softmax, wrong-loss, sum-reduction.

Most of these are exact facts about one batch (a label >= the number of outputs, shapes that broadcast,
rows that sum to 1). The one statistical claim, output-class-mismatch ("these outputs never get a
label"), needs the whole training set (fit) or, in a hand-written loop, LABELS_PER_CLASS labels per
class seen, from batches that look shuffled: from sorted data the labels seen so far say nothing about the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from trainwise.doctor.findings import nice_number
from trainwise.doctor.inputs import BINARY_LOSSES, looks_sorted, record_batch
from trainwise.doctor.registry import runs_on

if TYPE_CHECKING:
    from trainwise.doctor.core import Doctor

CLASS_LOSSES = ("cross_entropy", "nll")
REGRESSION_LOSSES = ("mse", "l1", "huber", "smooth_l1")
# labels needed per class seen before "the other outputs never get a label" is believable
LABELS_PER_CLASS = 30
# class ids fed to a regression loss: whole numbers 0..K-1, every one of them common (class ids of a
# classification set are near balanced; counts, ratings and ages are skewed, start at 1 or spread wider)
MIN_CLASS_IDS, MAX_CLASS_IDS = 3, 100
SAMPLES_PER_ID = 20
BALANCED_IDS = 4.0  # the most common id at most this many times the least common one


@dataclass
class _WholeTargets:
    """Counts of the whole-number targets a regression loss saw (None once a target was not one)."""

    counts: torch.Tensor | None = field(default_factory=lambda: torch.zeros(MAX_CLASS_IDS, dtype=torch.long))


@runs_on("loss_input")
def check_loss_input(doctor: Doctor) -> None:
    output, target = doctor.loss_output, doctor.loss_target
    if output is None or target is None:
        return
    kind = doctor.loss_kind()
    if kind in CLASS_LOSSES or (not kind and not target.is_floating_point() and output.ndim == 2):
        _class_targets(doctor, output, target, kind)
    elif kind in REGRESSION_LOSSES:
        _regression_targets(doctor, output, target, kind)
    elif kind in BINARY_LOSSES:
        _binary_targets(doctor, output, target, kind)
    _sum_reduction(doctor, output)


def _class_targets(doctor: Doctor, output: torch.Tensor, target: torch.Tensor, kind: str) -> None:
    if output.ndim < 2:
        return
    classes = int(output.shape[1])
    if classes == 1 and kind:
        finding = doctor.raise_finding(
            "wrong-loss",
            f"{kind} over a single output is always zero: with one logit there is only one class to pick.",
            evidence={"outputs": 1},
            suggestion="for a yes/no target use nn.BCEWithLogitsLoss (loss 'bce_with_logits') with float 0/1 "
            "targets of the output's shape, or give the model 2 outputs (one per class)",
        )
        high = doctor.obs.max_label
        crashes_next = not target.is_floating_point() and high is not None and high >= 1
        if doctor.mode in ("warn", "stop") and finding is not None and crashes_next:
            from trainwise.errors import TrainingError

            raise TrainingError(finding.format())  # label 1 of a single output: the loss would crash next
        return
    if not target.is_floating_point():
        _label_range(doctor, classes, kind)
        _unused_outputs(doctor, classes)
    if kind == "cross_entropy":
        _softmax_before_cross_entropy(doctor, output)
    elif kind == "nll":
        _nll_inputs(doctor, output)


def _label_range(doctor: Doctor, classes: int, kind: str) -> None:
    obs = doctor.obs
    ignore = getattr(doctor.loss_fn, "ignore_index", -100)
    low, high = obs.min_label, obs.max_label
    if low is None or high is None:
        return
    if high >= classes or (low < 0 and low != ignore):
        bad = high if high >= classes else low
        if low == 1 and high == classes:  # labels counted from 1 (a common export format)
            fix = f"subtract 1 from the labels (y - 1) to map the labels to 0..{classes - 1}: PyTorch counts from 0"
        elif bad < 0:  # a marker for a missing label
            fix = (
                f"drop the rows labelled {bad}, or label them {ignore} (the loss's ignore_index) so the loss skips them"
            )
        else:
            fix = f"give the output layer {high + 1} outputs, or map the labels to 0..{classes - 1}"
        finding = doctor.raise_finding(
            "label-out-of-range",
            f"A label is {bad} but the model has {classes} outputs, so valid labels are 0..{classes - 1}; "
            f"{kind or 'the loss'} cannot score it (on a GPU this is the 'device-side assert' crash).",
            evidence={"label": bad, "outputs": classes, "max_label": high, "min_label": low},
            suggestion=fix,
        )
        if doctor.mode in ("warn", "stop") and kind in CLASS_LOSSES and finding is not None:
            from trainwise.errors import TrainingError

            # torch's loss would crash on it next, less clearly (a hand-written one indexes on silently)
            raise TrainingError(finding.format())


def _unused_outputs(doctor: Doctor, classes: int) -> None:
    obs = doctor.obs
    if obs.max_label is None or obs.max_label + 1 >= classes or doctor.has("output-class-mismatch"):
        return
    if doctor.data is None:  # from a stream: enough labels per class seen, from batches that look shuffled
        if obs.labels_seen < max(LABELS_PER_CLASS * (obs.max_label + 1), 200):
            return
        record_batch(doctor)
        if looks_sorted(doctor) is not False:
            return
    seen = obs.max_label + 1
    doctor.raise_finding(
        "output-class-mismatch",
        f"The model has {classes} outputs but the labels only go up to {obs.max_label} ({seen} classes): "
        f"outputs {seen}..{classes - 1} can never be right and take probability away from the real classes.",
        evidence={"outputs": classes, "classes": seen, "labels_seen": obs.labels_seen},
        suggestion=f"make the last layer produce {seen} outputs",
    )


def _distribution_rows(values: torch.Tensor) -> torch.Tensor:
    """Is every row in [0, 1] and summing to 1 (a one-element bool tensor, not read: the caller decides when)?"""
    sums = values.float().sum(dim=1)
    # a softmax computed in half precision (autocast) is rounded to the dtype's precision per entry
    tolerance = max(1e-3, 2 * torch.finfo(values.dtype).eps) if values.is_floating_point() else 1e-3
    return (values.min() >= 0) & (values.max() <= 1) & ((sums - 1).abs().max() < tolerance)


def _rows_are_distributions(values: torch.Tensor) -> bool:
    return values.numel() > 0 and bool(_distribution_rows(values))


def _softmax_before_cross_entropy(doctor: Doctor, output: torch.Tensor) -> None:
    if output.shape[1] < 2 or output.numel() == 0:
        return
    values = output.detach()

    def judge(distributions: float) -> None:  # at the step's end, read with its statistics
        if not distributions:
            return
        doctor.raise_finding(
            "softmax-into-cross-entropy",
            "The model's outputs are already probabilities (each row sums to 1) but cross_entropy applies "
            "log-softmax itself: softmax twice squashes the gradients and slows learning.",
            evidence={"min_output": float(values.min()), "max_output": float(values.max()), "row_sum": 1.0},
            suggestion="remove the final softmax and pass raw logits to cross_entropy (apply softmax only for "
            "reporting probabilities)",
        )

    doctor.defer(_distribution_rows(values), judge)


def _nll_inputs(doctor: Doctor, output: torch.Tensor) -> None:
    log_norm = torch.logsumexp(output.float(), dim=1)
    if float(log_norm.abs().max()) < 1e-2 and float(output.max()) <= 1e-4:
        return  # log-probabilities, as nll expects
    if _rows_are_distributions(output):
        what = "probabilities (softmax), not log-probabilities"
    else:
        what = "raw scores, not log-probabilities"
    doctor.raise_finding(
        "nll-without-log-softmax",
        f"nll receives {what}: it only negates the picked entry, so the loss is not a likelihood and "
        "can fall without bound.",
        evidence={"max_output": float(output.max()), "max_abs_logsumexp": float(log_norm.abs().max())},
        suggestion="end the model with log_softmax (nn.LogSoftmax(dim=1)), or use loss 'cross_entropy' on raw logits",
    )


def _regression_targets(doctor: Doctor, output: torch.Tensor, target: torch.Tensor, kind: str) -> None:
    if output.shape != target.shape:
        try:
            broadcast = torch.broadcast_shapes(output.shape, target.shape)
        except RuntimeError:
            return  # torch itself raises on these
        if broadcast.numel() > max(output.numel(), target.numel()):
            doctor.raise_finding(
                "loss-broadcast",
                f"{kind} compares outputs of shape {tuple(output.shape)} with targets of shape "
                f"{tuple(target.shape)}: they broadcast to {tuple(broadcast)}, so every output is compared with "
                "every target and the model learns the mean.",
                evidence={
                    "output_numel": output.numel(),
                    "target_numel": target.numel(),
                    "compared_pairs": broadcast.numel(),
                },
                suggestion="give the targets the output's shape: y.unsqueeze(1) (or y.view(-1, 1)), or squeeze "
                "the output",
            )
        return
    _class_ids_as_values(doctor, output, target, kind)
    # one-hot rows are one-hot in every batch: the first few batches tell
    if target.ndim == 2 and target.shape[1] >= 2 and doctor.loss_inputs_seen <= 3:
        flat = target.float()
        one_hot = bool(((flat == 0) | (flat == 1)).all()) and bool((flat.sum(dim=1) == 1).all())
        if one_hot:
            doctor.raise_finding(
                "wrong-loss",
                f"{kind} on one-hot class labels treats classification as regression: it learns slowly and its "
                "outputs are not probabilities.",
                evidence={"classes": int(target.shape[1])},
                suggestion="use loss 'cross_entropy' with class indices (target.argmax(1)) and raw logits",
            )


def _class_ids_as_values(doctor: Doctor, output: torch.Tensor, target: torch.Tensor, kind: str) -> None:
    """A regression loss on a one-output model whose targets are the class ids 0..K-1 of a classification set:
    it learns the ids as numbers, as if class 3 were between classes 2 and 4, and rounding its outputs is
    a poor classifier."""
    state = doctor.family_state(_WholeTargets)
    if state.counts is None or target.shape[1:].numel() != 1 or target.numel() == 0 or doctor.has("wrong-loss"):
        return
    values = target.detach().reshape(-1)
    ids = values.round()
    if not bool((values == ids).all()) or float(values.min()) < 0 or float(values.max()) >= MAX_CLASS_IDS:
        state.counts = None  # not ids: never again
        return
    state.counts += torch.bincount(ids.long().cpu(), minlength=MAX_CLASS_IDS)
    seen = state.counts.nonzero().flatten()
    classes = int(seen.max()) + 1 if seen.numel() else 0
    present = state.counts[:classes]
    if classes < MIN_CLASS_IDS or len(seen) != classes or int(present.sum()) < SAMPLES_PER_ID * classes:
        return
    if int(present.max()) > BALANCED_IDS * int(present.min()):
        return
    doctor.raise_finding(
        "wrong-loss",
        f"{kind} is fitting class ids as numbers: the targets are the whole numbers 0..{classes - 1}, each about "
        f"equally common, and the model has one output, so it learns to predict, say, {classes // 2} between "
        f"classes {classes // 2 - 1} and {classes // 2 + 1}, as if classes had an order and a distance.",
        evidence={"classes": classes, "targets_seen": int(present.sum())},
        suggestion=f"give the model {classes} outputs and use nn.CrossEntropyLoss with the ids as long targets "
        "(y.long()); predict with output.argmax(1)",
    )


def _binary_targets(doctor: Doctor, output: torch.Tensor, target: torch.Tensor, kind: str) -> None:
    low, high = float(target.min()), float(target.max())
    ids = low == 0 and high >= 2 and high == int(high) and bool((target == target.round()).all())
    if ids and output.shape[1:].numel() == 1:  # one output column, targets 0, 1, 2, ...: class ids
        classes = int(high) + 1
        doctor.raise_finding(
            "wrong-loss",
            f"{kind} is a yes/no loss, but its targets are the class ids 0..{classes - 1} of a {classes}-class "
            "problem: every id above 1 is scored as an impossible probability, so the model cannot learn them.",
            evidence={"classes": classes, "max_target": high},
            suggestion=f"give the model {classes} outputs and use nn.CrossEntropyLoss with the ids as long "
            "targets; keep BCE for 0/1 targets (one column per label for multi-label)",
        )
    elif low < 0 or high > 1:
        doctor.raise_finding(
            "label-out-of-range",
            f"{kind} needs targets in [0, 1] but they range over [{low:g}, {high:g}]: "
            "these look like class indices or unscaled values.",
            evidence={"min_target": low, "max_target": high},
            suggestion="for several classes use 'cross_entropy' with one output per class; for yes/no, "
            "targets must be 0 or 1",
        )
    if kind == "bce_with_logits" and output.numel() >= 8 and float(output.min()) >= 0 and float(output.max()) <= 1:
        doctor.obs.sigmoid_like_outputs += 1
        if doctor.obs.sigmoid_like_outputs >= 3:
            doctor.raise_finding(
                "wrong-loss",
                "bce_with_logits receives values all within [0, 1]: a sigmoid was already applied, so it is "
                "applied twice and the gradients shrink.",
                evidence={"min_output": float(output.min()), "max_output": float(output.max())},
                suggestion="remove the final sigmoid (BCEWithLogitsLoss applies it itself), or use nn.BCELoss "
                "(loss 'bce') on the probabilities",
            )


def _sum_reduction(doctor: Doctor, output: torch.Tensor) -> None:
    # Adam, RMSprop, Adagrad and the like divide the gradient by its own running scale: a loss summed over
    # the batch (the mean times the batch size) gives the same steps up to eps, so there is nothing to say
    if doctor.loss_reduction() != "sum" or doctor.has("sum-reduction") or doctor.adaptive:
        return
    batch = int(output.shape[0]) if output.ndim else 1
    lr = doctor.lrs()[0]
    doctor.raise_finding(
        "sum-reduction",
        f"The loss adds over the {batch} samples of a batch (reduction='sum'), so gradients grow with the batch "
        f"size and the learning rate must shrink with it: lr {lr:g} here acts like lr {lr * batch:.3g} "
        "with a mean.",
        evidence={"batch_size": batch, "lr": lr, "mean_equivalent_lr": lr * batch},
        suggestion=f"use reduction='mean' with lr about {nice_number(lr * batch):g}, so the lr does not depend "
        "on the batch size",
    )
