"""Is the optimizer wired to the model? Missing parameters, missing gradients, missing zero_grad,
and regularization strong enough to stop learning.

Codes: params-not-optimized, no-gradient, missing-zero-grad, over-regularized.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from torch import nn

from trainwise.doctor.registry import check

if TYPE_CHECKING:
    from trainwise.doctor.core import Doctor

# A parameter that got no gradient on this many sampled steps is not part of the computation
# (one unlucky batch or a randomly skipped layer, as in W3's dynamic net, recovers well before).
STEPS_WITHOUT_GRADIENT = 10
MISSED_ZERO_GRADS = 2
# Weights shrunk below this share of their starting norm while the loss stalls: decay wins over data.
SHRUNK_WEIGHTS = 0.2
HEAVY_DROPOUT = 0.8


def _names(names: list[str]) -> str:
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")


@check("setup")
def check_optimizer_params(doctor: Doctor) -> None:
    missing = [info.name for info in doctor.params if not info.in_optimizer]
    if missing and len(missing) == len(doctor.params):
        doctor.raise_finding(
            "params-not-optimized",
            "The optimizer holds none of this model's parameters (it was made for another model instance, or "
            "before the model was rebuilt), so step() changes nothing here.",
            evidence={"model_params": len(doctor.params), "optimizer_params": doctor.extra_optimizer_params},
            suggestion="create the optimizer from this model: torch.optim.SGD(model.parameters(), lr=...)",
        )
    elif missing:
        doctor.raise_finding(
            "params-not-optimized",
            f"{len(missing)} trainable parameters are not in the optimizer ({_names(missing)}): they get "
            "gradients but never change.",
            evidence={"not_optimized": len(missing), "model_params": len(doctor.params)},
            suggestion="pass model.parameters() to the optimizer, or freeze those parameters with "
            "requires_grad_(False) if that is intended",
            subject=missing[0],
        )
    for name, module in doctor.modules.items():
        if isinstance(module, nn.Dropout | nn.Dropout1d | nn.Dropout2d | nn.Dropout3d) and module.p >= HEAVY_DROPOUT:
            doctor.raise_finding(
                "over-regularized",
                f"Dropout {name} drops {module.p:.0%} of its inputs: p is the share dropped, not kept, so "
                "almost nothing gets through.",
                evidence={"dropout": module.p},
                suggestion=f"use p = {1 - module.p:.2g} (or 0.1-0.5, the usual range)",
                subject=name,
            )


@check("step")
def check_gradients_arrive(doctor: Doctor) -> None:
    obs = doctor.obs
    optimized = [info for info in doctor.params if info.in_optimizer]
    if not optimized or obs.grad_checks == 0:
        return
    never = [info.name for info in optimized if obs.params_without_grad.get(info.name, 0) >= obs.grad_checks]
    if len(never) == len(optimized):
        doctor.raise_finding(
            "no-gradient",
            "No parameter received a gradient at optimizer.step(): the loss is cut off from the model "
            "(.item(), .detach(), .data, numpy, or torch.tensor(loss) break the graph), or backward() was not "
            "called before step().",
            evidence={"steps_checked": obs.grad_checks, "parameters": len(optimized)},
            suggestion="compute the loss from the model's output tensors directly and call loss.backward() "
            "before optimizer.step()",
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
    if obs.zero_grad_missed >= MISSED_ZERO_GRADS:
        doctor.raise_finding(
            "missing-zero-grad",
            "Gradients are not cleared between optimizer steps: each step's gradient still contains all the "
            "earlier ones, so the updates grow and point the wrong way.",
            evidence={"steps_with_stale_gradient": obs.zero_grad_missed, "steps_checked": obs.zero_grad_checked},
            suggestion="call optimizer.zero_grad() once per step, before loss.backward()",
        )


@check("step")
def check_weight_decay(doctor: Doctor) -> None:
    decays = [float(group.get("weight_decay", 0.0) or 0.0) for group in doctor.optimizer.param_groups]
    if max(decays, default=0.0) <= 0 or len(doctor.obs.samples) < 10 or doctor.has("over-regularized"):
        return
    start = math.sqrt(sum(v * v for v in doctor.obs.first_weight_norms.values()))
    now = math.sqrt(sum(v * v for v in doctor.obs.samples[-1].weight_norms.values()))
    losses = [v for v in doctor.obs.losses if math.isfinite(v)]
    if start == 0 or now > SHRUNK_WEIGHTS * start or len(losses) < 20:
        return
    from trainwise.doctor.learning_rate import _loss_falling

    if _loss_falling(losses, 0.02):
        return
    decay = max(decays)
    doctor.raise_finding(
        "over-regularized",
        f"weight_decay {decay:g} has shrunk the weights to {now / start:.0%} of their initial size while the loss "
        "stopped improving: the penalty outweighs the data.",
        evidence={"weight_decay": decay, "weight_norm_vs_start": now / start, "loss": losses[-1]},
        suggestion="lower weight_decay to about 1e-4 (the usual range is 1e-5 to 1e-2)",
    )
