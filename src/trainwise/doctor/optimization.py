"""Is the optimizer wired to the model? Missing parameters, missing gradients, missing zero_grad,
and regularization strong enough to stop learning.

Codes: params-not-optimized, no-gradient, missing-zero-grad, over-regularized.

- params-not-optimized also covers layers that run in forward() but are not the model's submodules (kept in
  a plain list or dict instead of nn.ModuleList/ModuleDict, or created inside forward()): the first training
  forward runs under a global module hook (torch.nn.modules.module.register_module_forward_hook) that notes
  every module with parameters that ran; those the model does not register are outside model.parameters(),
  so outside the optimizer, and never train. The attribute holding them is found in the modules' __dict__.
- no-gradient: at optimizer.step() no optimized parameter has a gradient (the loss was cut off from
  the graph, backward() was not called, or zero_grad() ran between backward() and step()), or every
  gradient is exactly zero on several sampled steps (zero_grad(set_to_none=False) between backward()
  and step(); a real loss practically never has an exactly zero gradient for every parameter at once),
  or some parameters never get one (a layer not used in forward()).
- over-regularized by weight decay needs two things: (1) at the start the decay pulls the weights
  harder than the data does. With L2 added to the gradient (SGD, Adam, RMSprop, ...) that is
  weight_decay * |w| against |grad|; healthy settings (1e-5..1e-2) are far below 1. With decoupled decay
  (AdamW) each step shrinks the weights by lr * weight_decay * |w| while Adam moves them by about lr per
  coordinate, lr * sqrt(n): the decay wins when weight_decay * rms(w) exceeds 1. (2) the decay did win:
  the weights shrank below half their starting norm (healthy training grows them) while the loss
  stopped falling. Long runs whose weights shrink slowly under a mild decay (BatchNorm nets) fail (1).
  A penalty written into the loss (loss + lam * sum of squared weights) is invisible in the optimizer's
  settings; there (1) reads from the gradient itself: over the first PENALTY_SAMPLES sampled steps the
  hidden weight matrices' gradient (all matrices but the last, the output layer's) points along the
  matrices (median cosine at least PENALTY_COSINE: the penalty's gradient, 2 lam w, is at least the
  data's, which is unrelated to random hidden weights), and (2) the weights shrank (healthy training
  grows them) while the loss stopped falling. Later the two gradients balance, so only the start tells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import median
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trainwise.doctor.core import whole_norm
from trainwise.doctor.registry import runs_on

if TYPE_CHECKING:
    from trainwise.doctor.core import Doctor

# A parameter that got no gradient on this many sampled steps is not part of the computation
# (one unlucky batch or a randomly skipped layer, as in W3's dynamic net, recovers well before).
STEPS_WITHOUT_GRADIENT = 10
ZERO_GRADIENT_STEPS = 3
CONVERGED_LOSS = 0.01  # of the first loss: saturated softmax or fitted targets give zero gradients
MISSED_ZERO_GRADS = 2
DECAY_DOMINATES = 1.0
# the penalty's gradient 2 lam w at least as large as the data's (cosine 0.5 and more: about 1:1), while
# the data's gradient is unrelated to random weights at the start (cosine 0 +- 0.1)
PENALTY_COSINE = 0.5
PENALTY_SAMPLES = 5
SHRUNK_WEIGHTS = 0.5
HEAVY_DROPOUT = 0.8  # p is the share dropped; 0.1-0.5 is the usual range, 0.8+ is keep_prob mixed up
DROPOUT_LAYERS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


def _names(names: list[str]) -> str:
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")


@runs_on("setup")
def check_optimizer_params(doctor: Doctor) -> None:
    missing = [info.name for info in doctor.params if not info.in_optimizer]
    model_ids = {id(p) for p in doctor.model.parameters()}  # frozen ones too
    foreign = sum(1 for group in doctor.optimizer.param_groups for p in group["params"] if id(p) not in model_ids)
    optimizer = type(doctor.optimizer).__name__
    if not doctor.params and model_ids:
        doctor.raise_finding(
            "no-gradient",
            f"Every one of the model's {len(model_ids)} parameter tensors is frozen (requires_grad=False): "
            "backward() gives none of them a gradient, so step() changes nothing (a loss made to require grad "
            "by hand hides this).",
            evidence={"frozen_params": len(model_ids)},
            suggestion="unfreeze what should train (model.requires_grad_(True), or requires_grad_(True) on the "
            "head only)",
        )
    elif missing and len(missing) == len(doctor.params):
        doctor.raise_finding(
            "params-not-optimized",
            "The optimizer holds none of this model's parameters (it was made for another model instance, or "
            "before the model was rebuilt), so step() changes nothing here.",
            evidence={"model_params": len(doctor.params), "optimizer_params": foreign},
            suggestion=f"create the optimizer from this model: torch.optim.{optimizer}(model.parameters(), ...)",
        )
    elif missing:
        replaced = (
            f"; the optimizer holds {foreign} tensors that are not in the model, so it was made before those "
            "layers were replaced"
            if foreign
            else ""
        )
        doctor.raise_finding(
            "params-not-optimized",
            f"{len(missing)} trainable parameters are not in the optimizer ({_names(missing)}): they get "
            f"gradients but never change{replaced}.",
            evidence={"not_optimized": len(missing), "model_params": len(doctor.params), "foreign_params": foreign},
            suggestion=f"create the optimizer after changing the model (torch.optim.{optimizer}"
            "(model.parameters(), ...)), or freeze those parameters with requires_grad_(False) if that is intended",
            subject=missing[0],
        )
    for name, module in doctor.modules.items():
        if isinstance(module, DROPOUT_LAYERS) and module.p >= HEAVY_DROPOUT:
            doctor.raise_finding(
                "over-regularized",
                f"Dropout {name} drops {module.p:.0%} of its inputs: p is the share dropped, not kept, so "
                "almost nothing gets through.",
                evidence={"dropout": module.p},
                suggestion=f"use p = {1 - module.p:.2g} (or 0.1-0.5, the usual range)",
                subject=name,
            )


@dataclass
class _ForwardCensus:
    """The modules with parameters that ran during the first training forward, and the global hook doing it."""

    ran: dict[int, nn.Module] = field(default_factory=dict)
    handle: Any = None
    done: bool = False


@runs_on("setup")
def watch_first_forward(doctor: Doctor) -> None:
    """Around the first training forward, note every module with parameters that runs (a global module hook
    sees the ones the model does not register too); afterwards, report those that are not the model's."""
    census = doctor.family_state(_ForwardCensus)

    def note(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if next(module.parameters(recurse=False), None) is not None:
            census.ran.setdefault(id(module), module)

    def start(module: nn.Module, args: tuple[Any, ...]) -> None:
        if not census.done and census.handle is None and torch.is_grad_enabled():
            census.handle = torch.nn.modules.module.register_module_forward_hook(doctor.guard(note, "module census"))
            doctor._handles.append(census.handle)  # removed by close() whatever happens in between

    def finish(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if census.handle is None:
            return
        census.handle.remove()
        census.handle, census.done = None, True
        report_unregistered(doctor, list(census.ran.values()))

    for register, fn, what in (
        (doctor.model.register_forward_pre_hook, start, "module census start"),
        (doctor.model.register_forward_hook, finish, "module census end"),
    ):
        guarded = doctor.guard(fn, what)
        guarded.register = register
        doctor._first_forward_handles.append(guarded.attach())


def _holders(doctor: Doctor, module: nn.Module) -> str | None:
    """The attribute that keeps `module` out of the model: 'self.blocks (a list)' or 'encoder.heads (a dict)'."""
    for owner_name, owner in doctor.modules.items():
        for attr, value in vars(owner).items():
            if attr.startswith("_") or not isinstance(value, list | tuple | dict):
                continue
            items = list(value.values()) if isinstance(value, dict) else list(value)
            if any(item is module or (isinstance(item, nn.Module) and module in item.modules()) for item in items):
                where = f"{owner_name}.{attr}" if owner_name else f"self.{attr}"
                return f"{where} (a plain {type(value).__name__})"
    return None


def report_unregistered(doctor: Doctor, ran: list[nn.Module]) -> None:
    registered = {id(m) for m in doctor.modules.values()}
    optimized = {id(p) for group in doctor.optimizer.param_groups for p in group["params"]}
    outside = [
        m
        for m in ran
        if id(m) not in registered and any(p.requires_grad and id(p) not in optimized for p in m.parameters())
    ]
    if not outside:
        return
    holders: dict[str, list[nn.Module]] = {}
    for module in outside:
        holders.setdefault(_holders(doctor, module) or "created inside forward()", []).append(module)
    for holder, modules in holders.items():
        count = sum(p.numel() for m in modules for p in m.parameters(recurse=False))
        kinds = _names(sorted({type(m).__name__ for m in modules}))
        layers = f"{len(modules)} layer{'s' if len(modules) > 1 else ''} ({kinds})"
        if holder.startswith("created"):
            what = f"{layers} created inside forward() run there"
            fix = "create layers once in __init__ and assign them to self (self.fc = nn.Linear(...))"
        else:
            what = f"{holder} holds {layers} that run in forward() but are not registered submodules"
            wrapper = "nn.ModuleDict({...})" if "dict" in holder else "nn.ModuleList([...])"
            fix = f"wrap it in {wrapper}, then make the optimizer from model.parameters() again"
        doctor.raise_finding(
            "params-not-optimized",
            f"{what}: model.parameters() leaves out their {count:,} parameters, so the optimizer never updates "
            "them (and state_dict() and .to(device) miss them too).",
            evidence={"layers": len(modules), "parameters": count},
            suggestion=fix,
            subject=holder.split(" ")[0],
        )


@runs_on("step")
def check_gradients_arrive(doctor: Doctor) -> None:
    obs = doctor.obs
    optimized = [info for info in doctor.params if info.in_optimizer]
    if not optimized or obs.grad_checks == 0:
        return
    never = [info.name for info in optimized if obs.params_without_grad.get(info.name, 0) >= obs.grad_checks]
    if len(never) == len(optimized):
        doctor.raise_finding(
            "no-gradient",
            "No parameter had a gradient at optimizer.step(): the loss is cut off from the model (.item(), "
            ".detach(), .data, numpy, or torch.tensor(loss) break the graph), backward() was not called, or "
            "zero_grad() ran between backward() and step().",
            evidence={"steps_checked": obs.grad_checks, "parameters": len(optimized)},
            suggestion="compute the loss from the model's output tensors directly, and call "
            "optimizer.zero_grad(), loss.backward(), optimizer.step() in that order",
        )
    elif never and obs.grad_checks >= STEPS_WITHOUT_GRADIENT:
        doctor.raise_finding(
            "no-gradient",
            f"{len(never)} parameters never received a gradient in {obs.grad_checks} checked steps "
            f"({_names(never)}): they are not used in the forward pass, or their output is detached.",
            evidence={"steps_checked": obs.grad_checks, "parameters_without_gradient": len(never)},
            suggestion="use those layers in forward() (or delete them), and do not detach their outputs",
            subject=never[0],
        )
    check_zero_gradients(doctor)
    if obs.zero_grad_missed >= MISSED_ZERO_GRADS:
        doctor.raise_finding(
            "missing-zero-grad",
            "Gradients are not cleared between optimizer steps: each step's gradient still contains all the "
            "earlier ones, so the updates grow and point the wrong way.",
            evidence={"steps_with_stale_gradient": obs.zero_grad_missed, "steps_checked": obs.zero_grad_checked},
            suggestion="call optimizer.zero_grad() once per step, before loss.backward()",
        )


def check_zero_gradients(doctor: Doctor) -> None:
    """Gradients present but exactly zero everywhere, step after step: cleared before step() ran."""
    samples = doctor.obs.samples
    if doctor.has("no-gradient") or len(samples) < ZERO_GRADIENT_STEPS:
        return
    recent = samples[-ZERO_GRADIENT_STEPS:]
    if not all(s.grad_norms and not any(v != 0 for v in s.grad_norms.values()) for s in recent):
        return
    finite = doctor.obs.finite_losses
    losses = finite[-ZERO_GRADIENT_STEPS:]
    if losses and max(abs(v) for v in losses) <= CONVERGED_LOSS * abs(finite[0]):
        return  # a (nearly) minimized loss can have an exactly zero gradient: nothing left to learn
    doctor.raise_finding(
        "no-gradient",
        f"Every gradient was exactly zero at optimizer.step() on {len(recent)} sampled steps in a row, while the "
        "loss was not: the gradients were cleared after backward() (zero_grad() between backward() and step()), "
        "so step() changes nothing.",
        evidence={"steps_with_zero_gradient": len(recent), "loss": losses[-1] if losses else math.nan},
        suggestion="call optimizer.zero_grad() before loss.backward(), not between backward() and step()",
    )


def _decay_pull(doctor: Doctor) -> tuple[float, float, bool] | None:
    """(weight decay, its pull on the weights relative to the data's at the start, decoupled?)."""
    names = {id(info.param): info.name for info in doctor.params}
    first_w, first_g = doctor.obs.first_weight_norms, doctor.obs.first_grad_norms
    strongest: tuple[float, float, bool] | None = None
    for group in doctor.optimizer.param_groups:
        decay = float(group.get("weight_decay", 0.0) or 0.0)
        if decay <= 0:
            continue
        decoupled = bool(group.get("decoupled_weight_decay", False)) or doctor.optimizer_name == "adamw"
        params = [(names[id(p)], p.numel()) for p in group["params"] if id(p) in names]
        weights = whole_norm(first_w.get(name, 0.0) for name, _ in params)
        if decoupled:
            size = math.sqrt(sum(n for _, n in params))
        else:
            size = math.sqrt(sum(first_g.get(name, 0.0) ** 2 for name, _ in params))
        if weights == 0 or size == 0:
            continue
        pull = decay * weights / size
        if strongest is None or pull > strongest[1]:
            strongest = (decay, pull, decoupled)
    return strongest


@runs_on("step")
def check_weight_decay(doctor: Doctor) -> None:
    if len(doctor.obs.samples) < 10 or doctor.has("over-regularized") or not doctor.obs.first_weight_norms:
        return
    decay_pull = _decay_pull(doctor)
    if decay_pull is None or decay_pull[1] < DECAY_DOMINATES:
        return
    decay, pull, decoupled = decay_pull
    shrunk = _shrunk_while_stuck(doctor)
    if shrunk is None or shrunk[0] > SHRUNK_WEIGHTS:
        return
    shrinkage, loss = shrunk
    against = "Adam's own step size" if decoupled else "the data's gradient"
    doctor.raise_finding(
        "over-regularized",
        f"weight_decay {decay:g} pulls the weights toward zero {pull:.3g}x as hard as {against} at the start, and "
        f"has shrunk them to {shrinkage:.0%} of their initial size while the loss stopped improving: the "
        "penalty outweighs the data.",
        evidence={"weight_decay": decay, "decay_pull": pull, "weight_norm_vs_start": shrinkage, "loss": loss},
        suggestion="lower weight_decay to about 0.01 (AdamW's usual range is 1e-4 to 0.1)"
        if decoupled
        else "lower weight_decay to about 1e-4 (the usual range is 1e-5 to 1e-2)",
    )


def _shrunk_while_stuck(doctor: Doctor) -> tuple[float, float] | None:
    """(the weights' norm now over at the start, the last loss) once the loss has stopped falling (the mean of
    the last quarter of the recent losses less than 2% below the quarter before, 20 losses or more)."""
    from trainwise.doctor.learning_rate import _loss_falling

    start = whole_norm(doctor.obs.first_weight_norms.values())
    now = whole_norm(doctor.obs.samples[-1].weight_norms.values())
    losses = doctor.obs.finite_losses[-400:]  # the recent record is what _loss_falling compares
    if start == 0 or len(losses) < 20 or _loss_falling(losses, 0.02):
        return None
    return now / start, losses[-1]


@runs_on("step")
def check_penalty_in_loss(doctor: Doctor) -> None:
    """over-regularized by a penalty on the weights added to the loss by hand (see the module docstring)."""
    samples = doctor.obs.samples
    if len(samples) < 10 or doctor.has("over-regularized") or not doctor.obs.first_weight_norms:
        return
    cosines = [s.grad_weight_cosine for s in samples[:PENALTY_SAMPLES]]
    cosine = median(c if c is not None else -1.0 for c in cosines)  # not measured: no evidence of a penalty
    if cosine < PENALTY_COSINE:
        return
    shrunk = _shrunk_while_stuck(doctor)
    if shrunk is None or shrunk[0] >= 1:
        return  # healthy training grows the weights; a penalty that won shrinks them
    shrinkage, loss = shrunk
    doctor.raise_finding(
        "over-regularized",
        f"At the start the gradient points along the weights themselves (cosine {cosine:.2f} over the first "
        f"{len(cosines)} sampled steps; the data's gradient is unrelated to random weights): a penalty on the "
        f"weights' size in the loss pulls harder than the data. It has shrunk them to {shrinkage:.0%} of their "
        "initial size, and the loss stopped improving.",
        evidence={"gradient_weight_cosine": cosine, "weight_norm_vs_start": shrinkage, "loss": loss},
        suggestion="make the penalty's coefficient 100x smaller, or drop it and use the optimizer's weight_decay=1e-4",
    )
