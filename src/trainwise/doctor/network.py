"""Checks of the network itself: its start (initialization), its ReLUs, and its train/eval mode.

Codes: bad-init, dead-relu, eval-mode-missing.

- bad-init (a) symmetric start: every unit (output row) of a hidden Linear/Conv layer starts with the
  same weights, as `nn.init.zeros_` / `constant_` give. Rows are units only for Linear and Conv layers
  (an Embedding's rows are tokens), and the last such layer is the output, which may start at zero (a
  known good trick: its units are told apart by the loss). (b) a classifier's first loss far above the
  ln(C) a fresh classifier starts at (TheDeepChecker's initial-loss check). When no loss module is
  given (watch() without loss_fn), integer class targets with one output per class mark a classifier;
  the recorded loss's reduction is then unknown, so the first batch's cross-entropy is computed from
  the outputs and targets the doctor saw.
  (c) activation scale drifting over depth at the first forward pass.
- dead-relu: AutoTrainer and DeepDiagnosis call a ReLU layer dead at 70% of its units never active;
  we require it on three sampled batches in a row so one odd batch does not count. nn.ReLU modules
  are watched directly (zero output for every sample). Models that call F.relu / torch.relu in
  forward() have no module to watch, so there the hidden Linear/Conv layers are: a unit is dead when its
  output is <= 0 for every sample of the batch AND its weight row gets exactly zero gradient (what a
  ReLU after it does to such a unit). Either alone misleads: negative everywhere is fine before a tanh,
  and a live unit gets no gradient when the loss is already satisfied on the samples it fires for.
- eval-mode-missing: a forward pass without gradients (validation) while the model is in training
  mode, or optimizer steps taken while it is in eval mode. The latter is read at optimizer.step(), not
  from forward passes with gradients in eval mode, because validating under model.eval() without
  torch.no_grad() is wasteful but correct and must not be mistaken for training in eval mode.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from trainwise.doctor.core import WEIGHT_LAYERS
from trainwise.doctor.registry import runs_on

if TYPE_CHECKING:
    from trainwise.doctor.core import Doctor

DEAD_FRACTION = 0.7
DEAD_SAMPLES = 3
MIN_DEAD_BATCH = 8  # "zero for every sample" means nothing on a handful of samples
# A fresh classifier should start near chance, loss ln(C); far above it means huge initial logits.
INITIAL_LOSS_FACTOR = 3.0
# Activation scale drifting this much over the layers at the first forward pass.
ACTIVATION_DRIFT = 100.0
MIN_DEPTH = 4
# Training in eval mode: seen at this many optimizer steps (not a one-off).
EVAL_MODE_STEPS = 3


@dataclass
class _State:
    """What this family remembers between events, per doctor."""

    off_units: dict[str, torch.Tensor] = field(default_factory=dict)  # layer -> units <= 0 on the last batch
    functional_dead: dict[str, list[float]] = field(default_factory=dict)  # layer -> dead unit share per sample
    initial_ce: float | None = None  # first batch's cross-entropy, when no loss module was given
    dead_logits: list[int] = field(default_factory=list)  # classes whose logit is 0 for every sample, per check
    logit_classes: int = 0  # the logits' width, when they were last counted


def _state(doctor: Doctor) -> _State:
    return doctor.family_state(_State)


def _unit_layers(doctor: Doctor) -> list[tuple[str, nn.Module, torch.Tensor]]:
    """Trainable Linear/Conv layers, in registration order, with their weights."""
    layers: list[tuple[str, nn.Module, torch.Tensor]] = []
    for name, module in doctor.modules.items():
        weight = getattr(module, "weight", None)
        if (
            isinstance(module, WEIGHT_LAYERS)
            and isinstance(weight, torch.Tensor)
            and weight.requires_grad
            and weight.numel()
        ):
            layers.append((name, module, weight))
    return layers


def _rows(weight: torch.Tensor) -> torch.Tensor:
    return weight.detach().reshape(weight.shape[0], -1)


@runs_on("setup")
def check_symmetric_init(doctor: Doctor) -> None:
    """Hidden units that all start with the same weights compute the same feature."""
    layers = _unit_layers(doctor)
    for index, (name, module, weight) in enumerate(layers[:-1]):  # the output layer may start at zero
        w = _rows(weight)
        if w.shape[0] < 2 or not bool((w == w[0]).all()):
            continue
        # exact copies forever when the biases match too and the next layer weighs them alike (equal columns)
        bias = getattr(module, "bias", None)
        same_bias = bias is None or bool((bias == bias[0]).all())
        after = layers[index + 1][2]
        outgoing = after.detach().transpose(0, 1).reshape(after.shape[1], -1)
        stuck = same_bias and outgoing.shape[0] == w.shape[0] and bool((outgoing == outgoing[0]).all())
        value = float(w[0, 0])
        if stuck:
            how = (
                " and biases, and the next layer weighs them alike: they get identical gradients and stay copies of "
                "each other forever, so the layer acts like a single unit"
            )
        else:
            how = (
                ": they all compute the same feature of the input (up to their biases), so the layer starts with "
                f"one feature instead of {w.shape[0]} and its units drift apart slowly, if at all"
            )
            if value == 0:
                how += ", and with zero weights a unit whose bias is negative outputs zero for every input"
        doctor.raise_finding(
            "bad-init",
            f"All {w.shape[0]} units of {name}.weight start with identical weights ({value:g}){how}.",
            evidence={"units": w.shape[0], "value": value, "stuck": float(stuck)},
            suggestion="keep PyTorch's default (random, fan-in scaled) initialization or use "
            "nn.init.kaiming_uniform_; only biases (and the output layer) may start constant",
            subject=f"{name}.weight",
        )


def _initial_loss(doctor: Doctor, width: int) -> float | None:
    """The first step's mean classification loss; None when the run is not a softmax classifier."""
    kind = doctor.loss_kind()
    if kind in ("cross_entropy", "nll"):
        return doctor.obs.losses[0] if doctor.loss_reduction() == "mean" else None
    if kind:
        return None
    # no loss module, so its reduction is unknown: compute the first batch's cross-entropy from the
    # outputs and integer class targets the doctor saw (one output per class marks a classifier)
    state = _state(doctor)
    if state.initial_ce is None and doctor.flushed_from == 0:
        output, target = doctor.loss_output, doctor.loss_target
        state.initial_ce = math.nan
        if (
            output is not None
            and target is not None
            and output.ndim == 2
            and output.shape[1] == width
            and target.ndim == 1
            and target.shape[0] == output.shape[0]
            and not target.is_floating_point()
            and 0 <= int(target.min()) <= int(target.max()) < width
        ):
            state.initial_ce = float(F.cross_entropy(output.float(), target.long()))
    return None if state.initial_ce is None or math.isnan(state.initial_ce) else state.initial_ce


@runs_on("losses")
def check_initial_loss(doctor: Doctor) -> None:
    obs = doctor.obs
    if doctor.has("bad-init") or doctor.has("unscaled-inputs") or not obs.losses or len(obs.losses) > 20:
        return
    width = doctor.output_width or 0
    first = _initial_loss(doctor, width) if width >= 2 else None
    if first is None:
        return
    chance = math.log(width)
    if not math.isfinite(first) or first <= INITIAL_LOSS_FACTOR * chance + 1:
        return
    doctor.raise_finding(
        "bad-init",
        f"The first loss is {first:.4g}, far above the {chance:.3g} (= ln {width}) a fresh classifier should "
        "start at: the initial outputs are huge, so the first steps go to shrinking them.",
        evidence={"initial_loss": first, "chance_loss": chance},
        suggestion="use PyTorch's default init (weights ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))) instead of "
        "N(0, 1) weights, or a smaller init scale for the last layer",
    )


@runs_on("step")
def check_activation_scale(doctor: Doctor) -> None:
    stds = doctor.obs.layer_stds
    if len(stds) < MIN_DEPTH or doctor.has("bad-init") or doctor.step > doctor.warmup:
        return
    first, last = stds[0][1], stds[-2][1]  # the last hidden layer, not the output
    # a layer whose outputs are all equal (std 0: a zero layer, or one sample) or NaN has no scale to compare
    if not (math.isfinite(first) and math.isfinite(last) and first > 0 and last > 0):
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


@runs_on("setup")
def watch_functional_relus(doctor: Doctor) -> None:
    """Models without nn.ReLU modules (F.relu in forward): watch their hidden layers' outputs instead."""
    if any(isinstance(m, nn.ReLU | nn.ReLU6) for m in doctor.modules.values()):
        return  # the doctor watches ReLU modules directly
    for name, module, _ in _unit_layers(doctor):
        if module is not doctor.model:
            doctor.hook(module.register_forward_hook, _off_units_hook(doctor, name), f"unit hook of {name}",
                        sampled=True)  # fmt: skip


def _off_units_hook(doctor: Doctor, name: str) -> Callable[..., None]:
    def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if not isinstance(output, torch.Tensor) or output.ndim < 2 or output.shape[0] < MIN_DEAD_BATCH:
            return
        if not output.numel():  # units without positions (a conv's empty feature map)
            return
        if not torch.is_grad_enabled() or not doctor.sampled:
            return
        out = output.detach()
        # units: a Linear's last dimension, a Conv's channels
        per_unit = out.reshape(-1, out.shape[-1]).T if isinstance(module, nn.Linear) else out.transpose(0, 1)
        _state(doctor).off_units[name] = (per_unit.reshape(per_unit.shape[0], -1) <= 0).all(dim=1)

    return hook


def _sample_functional_dead_units(doctor: Doctor) -> None:
    """Units that were <= 0 for every sample of the batch and got exactly zero gradient: a ReLU cut them off.

    Either signal alone misleads: a unit that is negative everywhere is fine before a tanh or a linear
    layer, and a unit without gradient may be alive but only active on samples the loss is already
    satisfied with. Both together is what a dead ReLU looks like."""
    state = _state(doctor)
    order = [name for name, _ in doctor.obs.layer_stds]
    output_layer = order[-1] if order else None
    layers = []
    for name, off in state.off_units.items():
        weight = getattr(doctor.modules.get(name), "weight", None)
        grad = weight.grad if isinstance(weight, torch.Tensor) else None
        if name != output_layer and grad is not None and grad.shape[0] == off.shape[0]:
            layers.append((name, off & (_rows(grad) == 0).all(dim=1)))
    state.off_units.clear()
    if not layers:
        return
    shares = torch.stack([dead.float().mean() for _, dead in layers]).tolist()
    for (name, _), share in zip(layers, shares, strict=True):
        history = state.functional_dead.setdefault(name, [])
        history.append(share)
        del history[:-DEAD_SAMPLES]  # only the latest samples are ever read


@runs_on("step")
def check_dead_relus(doctor: Doctor) -> None:
    if doctor.has("bad-init"):
        return  # units dead from a bad start: the init's fix is the one that helps
    fix = (
        "lower the learning rate, start biases at zero (or slightly positive), or use nn.LeakyReLU / "
        "BatchNorm before the activation"
    )
    _sample_functional_dead_units(doctor)
    watched = [(name, fractions, "after") for name, fractions in doctor.obs.dead_fractions.items()]
    watched += [(name, fractions, "of") for name, fractions in _state(doctor).functional_dead.items()]
    for name, fractions, where in watched:
        recent = fractions[-DEAD_SAMPLES:]
        if len(recent) < DEAD_SAMPLES or min(recent) < DEAD_FRACTION:
            continue
        doctor.raise_finding(
            "dead-relu",
            f"{min(recent):.0%} of the units {where} {name} output zero for every sample: dead ReLUs get no "
            "gradient and never recover.",
            evidence={"dead_fraction": min(recent), "batches": len(recent)},
            suggestion=fix,
            subject=name,
        )


@runs_on("loss_input")
def count_clipped_logits(doctor: Doctor) -> None:
    """How many classes get a logit of exactly 0 for every sample while no logit is negative (0 otherwise),
    read with the step's statistics (check_clipped_logits judges)."""
    output = doctor.loss_output
    if doctor.loss_kind() != "cross_entropy" or output is None or output.ndim != 2 or doctor.has("dead-relu"):
        return
    if output.shape[0] < MIN_DEAD_BATCH or output.shape[1] < 2:
        return
    state = _state(doctor)
    state.logit_classes = int(output.shape[1])
    dead = torch.where((output >= 0).all(), (output == 0).all(dim=0).sum(), 0)
    doctor.defer(dead, lambda count: state.dead_logits.append(int(count)))


@runs_on("step")
def check_clipped_logits(doctor: Doctor) -> None:
    """A ReLU on the logits: cross-entropy's inputs are all >= 0, and some classes' are exactly 0 for every
    sample of the batch, on DEAD_SAMPLES checked batches in a row. Those output units are dead ReLUs whose
    classes can never win (their logit cannot rise above the others' zeros)."""
    history = _state(doctor).dead_logits
    del history[:-DEAD_SAMPLES]
    if doctor.has("dead-relu") or len(history) < DEAD_SAMPLES or min(history) < 1:
        return
    classes = _state(doctor).logit_classes
    doctor.raise_finding(
        "dead-relu",
        f"The logits pass through a ReLU: they are never negative, and {min(history)} of the {classes} classes "
        "get a logit of exactly 0 for every sample, so those output units are dead and their classes are never "
        "predicted.",
        evidence={"dead_classes": min(history), "classes": classes, "batches": len(history)},
        suggestion="remove the activation after the last layer: cross-entropy takes raw logits",
        subject="output",
    )


@runs_on("eval_forward", "step")
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


@runs_on("step")
def check_training_in_eval_mode(doctor: Doctor) -> None:
    """Optimizer steps while the model is in eval mode: the training forward passes ran in eval mode."""
    steps = doctor.obs.steps_in_eval_mode  # counted at every optimizer step by the core
    if steps >= EVAL_MODE_STEPS:
        doctor.raise_finding(
            "eval-mode-missing",
            "The model trained in eval mode: dropout and batchnorm are off while learning (model.train() "
            "was not called again after validation).",
            evidence={"steps_in_eval_mode": steps},
            suggestion="call model.train() at the start of every training epoch",
            subject="training",
        )
