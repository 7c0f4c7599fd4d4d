"""Is the learning rate right? Divergence, oscillation, crawling, and runs that do not learn.

Codes: lr-too-high, lr-too-low, not-learning.

The thresholds combine signals so that one noisy statistic cannot raise a finding:
- lr-too-high: the loss grows steadily to 10x its best (or turns non-finite after growing), or
  updates move weights by more than 10% per step while the loss stops falling (TheDeepChecker's and
  DeepDiagnosis's upper bound on update/weight is 1e-1).
- lr-too-low: updates move weights by less than 1e-4 of their size per step (the lower bound of the
  same tools' healthy band, 1e-4..1e-1), while the gradient is still at least a tenth of its size at
  the start (so the run is not simply converged) and points the same way step after step (so a
  bigger step would go further down the same slope).
"""

from __future__ import annotations

import itertools
import math
from statistics import median
from typing import TYPE_CHECKING

import torch

from trainwise.doctor.findings import nice_number
from trainwise.doctor.registry import check

if TYPE_CHECKING:
    from trainwise.doctor.core import Doctor

DIVERGENCE_FACTOR = 10.0
RISING_STEPS = 5
MIN_GROWTH = 1.5  # per step, over the rising run: noise rarely compounds this fast
RUNAWAY_FACTOR = 100.0  # the smoothed loss this far above its best is divergence however it got there
SMOOTHING = 0.1
HIGH_UPDATE_RATIO = 1e-1
LOW_UPDATE_RATIO = 1e-4
TARGET_UPDATE_RATIO = 1e-3
STILL_STEEP = 0.1
CONSISTENT_DIRECTION = 0.8
SAMPLES_FOR_LOW = 5
# long enough that a slow but real start (W5 with SGD at lr 1e-3 gains <1% in its first 100 steps)
# is not mistaken for a run that does not learn
NOT_LEARNING_STEPS = 500
NOT_LEARNING_IMPROVEMENT = 0.01


def diverged_before(doctor: Doctor, index: int) -> bool:
    """Did the loss grow to DIVERGENCE_FACTOR x its best before losses[index]? Raises lr-too-high if so."""
    finite = [v for v in doctor.obs.losses[:index] if math.isfinite(v)]
    if len(finite) < 2:
        # non-finite within two steps: a rise we cannot see, but nothing else explains it either
        return False
    if finite[-1] < DIVERGENCE_FACTOR * max(min(finite), 1e-12):
        return False
    _raise_too_high(doctor, finite, "grew from {best:.4g} to {last:.4g} and then became non-finite")
    return True


def _growth_per_step(losses: list[float]) -> float:
    """Geometric mean of loss ratios over the final rising run (how fast it diverges)."""
    run = [losses[-1]]
    for value in reversed(losses[:-1]):
        if value >= run[-1] or value <= 0:
            break
        run.append(value)
    if len(run) < 2:
        return 1.0
    return (run[0] / run[-1]) ** (1.0 / (len(run) - 1))


def _raise_too_high(doctor: Doctor, finite: list[float], what: str) -> None:
    best, last = min(finite), finite[-1]
    lr = doctor.lrs()[0]
    growth = _growth_per_step(finite)
    if not doctor.adaptive and growth > 1:
        # gradient descent on a quadratic: the error is multiplied by |1 - lr*curvature| per step,
        # the loss by its square; the step is stable below lr = 2/curvature and fastest near 1/curvature
        amplification = math.sqrt(growth)
        suggested = nice_number(lr / (1 + amplification))
        how = f"the loss grew {growth:.3g}x per step, so steps overshoot by about {amplification:.3g}x"
    else:
        suggested = nice_number(lr / 10)
        how = "the loss rose instead of falling"
    doctor.raise_finding(
        "lr-too-high",
        f"The learning rate {lr:g} is too high: the loss {what.format(best=best, last=last)}; {how}.",
        evidence={"lr": lr, "best_loss": best, "last_finite_loss": last, "growth_per_step": growth},
        suggestion=f"lower lr to about {suggested:g}",
    )


@check("losses")
def check_divergence(doctor: Doctor) -> None:
    obs = doctor.obs
    losses = obs.losses
    for value in losses[doctor.flushed_from :]:
        if math.isfinite(value):
            obs.smoothed_loss = (
                value if obs.smoothed_loss is None else ((1 - SMOOTHING) * obs.smoothed_loss + SMOOTHING * value)
            )
            obs.best_smoothed_loss = min(obs.best_smoothed_loss, obs.smoothed_loss)
    if len(losses) < RISING_STEPS + 1 or not all(math.isfinite(v) for v in losses[-RISING_STEPS - 1 :]):
        return
    window = losses[-RISING_STEPS - 1 :]
    finite = [v for v in losses if math.isfinite(v)]
    best = max(min(finite), 1e-12)
    rising = all(b > a for a, b in itertools.pairwise(window))
    if rising and window[-1] > DIVERGENCE_FACTOR * best and _growth_per_step(finite) >= MIN_GROWTH:
        _raise_too_high(doctor, finite, "grew steadily from its best {best:.4g} to {last:.4g}")
    elif obs.smoothed_loss is not None and obs.smoothed_loss > RUNAWAY_FACTOR * max(obs.best_smoothed_loss, 1e-12):
        _raise_too_high(doctor, finite, "ran away from its best {best:.4g} to {last:.4g}")


def _update_ratios(doctor: Doctor, n: int) -> list[float]:
    """|update| / |weights| over all parameters together, for each of the last n samples.

    Taken over the whole model, not per tensor: a bias near zero would otherwise show a huge ratio."""
    values = []
    for sample in doctor.recent_samples(n):
        weights = math.sqrt(sum(v * v for v in sample.weight_norms.values()))
        updates = math.sqrt(sum(v * v for v in sample.update_norms.values()))
        if weights > 1e-6 and math.isfinite(updates):
            values.append(updates / weights)
    return values


def _loss_falling(losses: list[float], fraction: float = 0.05) -> bool:
    """Did the mean of the last quarter drop by `fraction` below the mean of the quarter before it?"""
    quarter = len(losses) // 4
    if quarter < 3:
        return True
    before = sum(losses[-2 * quarter : -quarter]) / quarter
    after = sum(losses[-quarter:]) / quarter
    return after < before * (1 - fraction)


@check("step")
def check_update_sizes(doctor: Doctor) -> None:
    if doctor.has("lr-too-high") or doctor.has("lr-too-low"):
        return
    ratios = _update_ratios(doctor, SAMPLES_FOR_LOW)
    if len(ratios) < SAMPLES_FOR_LOW or doctor.step < 2 * doctor.warmup:
        return
    lr = doctor.lrs()[0]
    losses = [v for v in doctor.obs.losses if math.isfinite(v)]
    if min(ratios) > HIGH_UPDATE_RATIO and len(losses) >= 40 and not _loss_falling(losses[-200:], 0.0):
        doctor.raise_finding(
            "lr-too-high",
            f"Each step changes the weights by {median(ratios):.0%} of their size and the loss has stopped "
            f"falling: with lr {lr:g} the optimizer jumps around the minimum instead of settling into it.",
            evidence={"lr": lr, "update_to_weight": median(ratios)},
            suggestion=f"lower lr to about {nice_number(lr * TARGET_UPDATE_RATIO * 10 / median(ratios)):g}",
        )
        return
    if max(ratios) >= LOW_UPDATE_RATIO:
        return
    samples = doctor.recent_samples(SAMPLES_FOR_LOW)
    first_total = math.sqrt(sum(v * v for v in doctor.obs.first_grad_norms.values()))
    now_total = math.sqrt(sum(v * v for v in samples[-1].grad_norms.values()))
    if first_total == 0 or now_total < STILL_STEEP * first_total:
        return  # the gradient has mostly vanished: converged, not crawling
    directions = [s.grad_direction for s in samples if s.grad_direction is not None]
    cosines = [float(torch.nn.functional.cosine_similarity(a, b, dim=0)) for a, b in itertools.pairwise(directions)]
    if not cosines or min(cosines) < CONSISTENT_DIRECTION:
        return
    ratio = median(ratios)
    doctor.raise_finding(
        "lr-too-low",
        f"The learning rate {lr:g} is too low: each step changes the weights by only {ratio:.2g} of their size "
        f"while the gradient still points the same way (cosine {min(cosines):.2f} between steps) and is "
        f"{now_total / first_total:.0%} of its initial size, so training crawls.",
        evidence={
            "lr": lr,
            "update_to_weight": ratio,
            "gradient_vs_start": now_total / first_total,
            "direction_cosine": min(cosines),
        },
        suggestion=f"raise lr to about {nice_number(lr * TARGET_UPDATE_RATIO / ratio):g}, or use lr='auto'",
    )


@check("losses", "epoch", fallback=True)
def check_not_learning(doctor: Doctor) -> None:
    losses = [v for v in doctor.obs.losses if math.isfinite(v)]
    if len(losses) < NOT_LEARNING_STEPS or doctor.has("not-learning"):
        return
    if doctor.steps_per_epoch and doctor.step < doctor.steps_per_epoch:
        return  # at least one whole epoch
    if any(f.severity != "info" for f in doctor.findings):
        return  # another finding already explains it
    tenth = max(len(losses) // 10, 5)
    start = sum(losses[:tenth]) / tenth
    end = sum(losses[-tenth:]) / tenth
    if start <= 0 or end < start * (1 - NOT_LEARNING_IMPROVEMENT):
        return
    evidence = {"first_losses_mean": start, "last_losses_mean": end, "steps": len(losses)}
    width = doctor.obs.output_width or 0
    chance = ""
    if doctor.loss_kind() in ("cross_entropy", "nll") and width >= 2:
        evidence["chance_loss"] = math.log(width)
        chance = f" (chance level for {width} classes is {math.log(width):.3g})"
    doctor.raise_finding(
        "not-learning",
        f"The loss has not improved in {len(losses)} steps: {start:.4g} at the start, {end:.4g} now{chance}.",
        evidence=evidence,
        suggestion="check that the targets belong to the inputs (same order, same shuffle), that the model can "
        "represent the task, and try overfitting a single batch first",
    )
