"""Numbers that went wrong: non-finite losses and data, exploding and vanishing gradients.

Codes: nonfinite-loss, nonfinite-data, exploding-gradients, vanishing-gradients.
A non-finite loss is traced to its cause: bad data (nonfinite-data) or a divergence that the
learning rate caused (lr-too-high, raised by the learning-rate family).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from trainwise.doctor.registry import check

if TYPE_CHECKING:
    from trainwise.doctor.core import Doctor, Sample

# AutoTrainer's thresholds (first/last layer gradient ratio): > 70 exploding, < 1e-3 vanishing.
# We compare gradients relative to their weights (|g|/|w|), which is scale-free, with 100 and 1e-3.
EXPLODING_RATIO = 100.0
VANISHING_RATIO = 1e-3
VANISHING_RELATIVE_GRAD = 1e-4
SAMPLES_TO_CONFIRM = 2


def _all_finite(tensor: torch.Tensor | None) -> bool:
    return tensor is None or not tensor.is_floating_point() or bool(torch.isfinite(tensor).all())


def nonfinite_data(doctor: Doctor, X: torch.Tensor | None, y: torch.Tensor | None, where: str) -> bool:
    """Raise nonfinite-data if X or y hold NaN or inf; True when it did."""
    for name, tensor in (("inputs", X), ("targets", y)):
        if tensor is None or _all_finite(tensor):
            continue
        flat = tensor.detach().reshape(tensor.shape[0], -1) if tensor.ndim else tensor.reshape(1, 1)
        bad_rows = int((~torch.isfinite(flat)).any(dim=1).sum())
        doctor.raise_finding(
            "nonfinite-data",
            f"The {name} {where} contain NaN or inf values ({bad_rows} of {flat.shape[0]} samples): every loss "
            "and gradient they touch becomes NaN.",
            evidence={"bad_samples": bad_rows, "samples": flat.shape[0]},
            suggestion="drop or impute those rows before training (torch.isfinite(X).all(dim=1) finds them)",
            subject=name,
        )
        return True
    return False


@check("data")
def check_dataset_values(doctor: Doctor) -> None:
    assert doctor.data is not None
    X, y, X_val, y_val = doctor.data
    nonfinite_data(doctor, X, y, "of the training data")
    nonfinite_data(doctor, X_val, y_val, "of the validation data")


@check("losses")
def check_nonfinite_loss(doctor: Doctor) -> None:
    losses = doctor.obs.losses
    start = doctor.flushed_from
    index = next((i for i in range(start, len(losses)) if not math.isfinite(losses[i])), None)
    if index is None:
        return
    step = doctor.obs.loss_steps[index]
    bad_data = nonfinite_data(doctor, doctor._last_input, doctor.loss_target, "of the current batch")
    cause = "bad inputs" if bad_data else ""
    if not bad_data:
        from trainwise.doctor.learning_rate import diverged_before

        if diverged_before(doctor, index):
            cause = "a learning rate too high"
    doctor.raise_finding(
        "nonfinite-loss",
        f"The loss became {losses[index]} at step {step}" + (f", caused by {cause}." if cause else "."),
        evidence={
            "step": step,
            "last_finite_loss": next((v for v in reversed(losses[:index]) if math.isfinite(v)), float("nan")),
        },
        suggestion="see the findings about its cause"
        if cause
        else "look for log(0), division by zero or sqrt of negatives in the loss, and clip gradients",
    )


def _relative_grads(sample: Sample, names: list[str]) -> list[float]:
    values = []
    for name in names:
        weight = sample.weight_norms.get(name, 0.0)
        grad = sample.grad_norms.get(name)
        values.append(grad / weight if grad is not None and weight > 0 else float("nan"))
    return values


@check("step")
def check_gradient_flow(doctor: Doctor) -> None:
    """Compare the first layer's relative gradient with the last layer's, on deep enough models."""
    layers = [info.name for info in doctor.params if info.param.ndim >= 2]
    if len(layers) < 3 or doctor.has("lr-too-high") or doctor.has("nonfinite-loss"):
        return
    recent = doctor.recent_samples(SAMPLES_TO_CONFIRM)
    if len(recent) < SAMPLES_TO_CONFIRM:
        return
    ratios, firsts = [], []
    for sample in recent:
        first, last = _relative_grads(sample, [layers[0], layers[-1]])
        if not (math.isfinite(first) and math.isfinite(last)) or last == 0:
            return
        ratios.append(first / last)
        firsts.append(first)
    depth = len(layers)
    if min(ratios) > EXPLODING_RATIO:
        doctor.raise_finding(
            "exploding-gradients",
            f"Gradients grow {min(ratios):.3g}x from the last layer back to the first across {depth} layers: "
            "early layers take huge steps while late ones barely move.",
            evidence={"first_to_last_ratio": min(ratios), "layers": depth},
            suggestion="use a fan-in scaled init (PyTorch's default or kaiming), add normalization "
            "(BatchNorm/LayerNorm) or residual connections, and clip gradients (clip_grad_norm=1.0)",
        )
    elif max(ratios) < VANISHING_RATIO and max(firsts) < VANISHING_RELATIVE_GRAD:
        doctor.raise_finding(
            "vanishing-gradients",
            f"Gradients shrink to {max(ratios):.2g} of the last layer's by the first layer across {depth} layers: "
            "the early layers hardly learn.",
            evidence={"first_to_last_ratio": max(ratios), "first_layer_relative_grad": max(firsts), "layers": depth},
            suggestion="use ReLU-family activations instead of sigmoid/tanh in hidden layers, a fan-in scaled "
            "init, and normalization (BatchNorm) or residual connections",
        )
