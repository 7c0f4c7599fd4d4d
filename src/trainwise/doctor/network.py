"""Checks of the network itself: its start (initialization), its ReLUs, and its train/eval mode.

Codes: bad-init, dead-relu, eval-mode-missing.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from trainwise.doctor.registry import check

if TYPE_CHECKING:
    from trainwise.doctor.core import Doctor

# AutoTrainer and DeepDiagnosis call a ReLU layer dead at 70% of its units never active;
# we require it on three sampled batches in a row so one odd batch does not count.
DEAD_FRACTION = 0.7
DEAD_SAMPLES = 3
# A fresh classifier should start near chance, loss ln(C); far above it means huge initial logits.
INITIAL_LOSS_FACTOR = 3.0
# Activation scale drifting this much over the layers at the first forward pass.
ACTIVATION_DRIFT = 100.0
MIN_DEPTH = 4


@check("setup")
def check_symmetric_init(doctor: Doctor) -> None:
    """Hidden layers whose units all start with the same weights stay identical forever."""
    weights = [info for info in doctor.params if info.param.ndim >= 2]
    for info in weights[:-1]:  # the output layer may start at zero (a known good trick)
        w = info.param.detach().reshape(info.param.shape[0], -1)
        if w.shape[0] < 2:
            continue
        if bool((w == w[0]).all()):
            doctor.raise_finding(
                "bad-init",
                f"All {w.shape[0]} units of {info.name} start with identical weights ({float(w[0, 0]):g}): they get "
                "identical gradients and stay copies of each other, so the layer acts like a single unit.",
                evidence={"units": w.shape[0], "value": float(w[0, 0])},
                suggestion="keep PyTorch's default (random, fan-in scaled) initialization or use "
                "nn.init.kaiming_uniform_; only biases may start constant",
                subject=info.name,
            )


@check("losses")
def check_initial_loss(doctor: Doctor) -> None:
    obs = doctor.obs
    if doctor.has("bad-init") or doctor.has("unscaled-inputs") or not obs.losses or len(obs.losses) > 20:
        return
    width = obs.output_width or 0
    if doctor.loss_kind() != "cross_entropy" or width < 2 or doctor.loss_reduction() != "mean":
        return
    first, chance = obs.losses[0], math.log(width)
    if math.isfinite(first) and first > INITIAL_LOSS_FACTOR * chance + 1:
        doctor.raise_finding(
            "bad-init",
            f"The first loss is {first:.4g}, far above the {chance:.3g} (= ln {width}) a fresh classifier should "
            "start at: the initial outputs are huge, so the first steps go to shrinking them.",
            evidence={"initial_loss": first, "chance_loss": chance},
            suggestion="use PyTorch's default init or a smaller init scale for the last layer",
        )


@check("step")
def check_activation_scale(doctor: Doctor) -> None:
    stds = doctor.obs.layer_stds
    if len(stds) < MIN_DEPTH or doctor.has("bad-init") or doctor.step > doctor.warmup:
        return
    first, last = stds[0][1], stds[-2][1]  # the last hidden layer, not the output
    if first <= 0:
        return
    drift = last / first
    if drift > ACTIVATION_DRIFT or drift < 1 / ACTIVATION_DRIFT:
        direction = "grow" if drift > 1 else "shrink"
        doctor.raise_finding(
            "bad-init",
            f"At the start, activations {direction} {max(drift, 1 / drift):.3g}x from {stds[0][0]} to {stds[-2][0]}: "
            "the weights' initial scale does not suit the depth.",
            evidence={"first_layer_std": first, "last_hidden_std": last, "layers": len(stds)},
            suggestion="use a fan-in scaled init matched to the activation (kaiming for ReLU, xavier for "
            "tanh), or add BatchNorm between layers",
        )


@check("step")
def check_dead_relus(doctor: Doctor) -> None:
    for name, fractions in doctor.obs.dead_fractions.items():
        recent = fractions[-DEAD_SAMPLES:]
        if len(recent) < DEAD_SAMPLES or min(recent) < DEAD_FRACTION:
            continue
        cause = " after the loss diverged" if doctor.has("lr-too-high") else ""
        doctor.raise_finding(
            "dead-relu",
            f"{min(recent):.0%} of the units after {name} output zero for every sample{cause}: dead ReLUs get no "
            "gradient and never recover.",
            evidence={"dead_fraction": min(recent), "batches": len(recent)},
            suggestion="lower the learning rate, start biases at zero (or slightly positive), or use "
            "nn.LeakyReLU / BatchNorm before the activation",
            subject=name,
        )


@check("eval_forward", "step")
def check_mode_switching(doctor: Doctor) -> None:
    obs = doctor.obs
    if obs.eval_forwards_in_train_mode >= 1:
        doctor.raise_finding(
            "eval-mode-missing",
            "The model ran without gradients (validation or inference) while in training mode: dropout still "
            "drops units and batchnorm uses and updates batch statistics, so the scores are wrong.",
            evidence={"forwards": obs.eval_forwards_in_train_mode},
            suggestion="call model.eval() before validating and model.train() before training again",
            subject="validation",
        )
    if obs.train_forwards_in_eval_mode >= 3:
        doctor.raise_finding(
            "eval-mode-missing",
            "The model trained in eval mode: dropout and batchnorm are off while learning (model.train() "
            "was not called again after validation).",
            evidence={"forwards": obs.train_forwards_in_eval_mode},
            suggestion="call model.train() at the start of every training epoch",
            subject="training",
        )
