"""Is the learning rate right? Divergence, oscillation, crawling, and runs that do not learn.

Codes: lr-too-high, lr-too-low, not-learning.

The thresholds combine signals so that one noisy statistic cannot raise a finding. The loss's level is
the median of its last LEVEL_WINDOW values: a median ignores the odd hard minibatch (an outlier moves an
average by 1/n of its size, a median not at all), so noisy minibatch losses do not look like divergence.
- lr-too-high, from the loss:
  * it rose RISING_STEPS times in a row, by MIN_GROWTH per step on average, to DIVERGENCE_FACTOR x its
    best level (geometric growth: gradient descent overshooting a minimum multiplies the error each step);
  * or its level climbed to DIVERGENCE_FACTOR x the first loss: ten times worse than the untrained model
    (oscillating divergence, e.g. Adam at lr 1: the loss jumps up and down far above where it started).
    The first loss is only trusted as a reference when it is a mean over MIN_STABLE_BATCH samples or
    more (a single sample's squared error can be near zero by chance);
  * or its level ran RUNAWAY_FACTOR x above its best level (floored at FITTED_FRACTION of the first loss:
    rebounds of a loss that is already a thousandth of its start are noise, not divergence);
  * or the loss turned non-finite after its last finite value had grown to DIVERGENCE_FACTOR x its best;
  * or it jumped to JUMP_FACTOR x the first loss and then stayed no better than the start for STUCK_STEPS
    steps (LEVEL_WINDOW when the ReLUs died), at a level JUMP_FACTOR x below the jump (noisy minibatch
    losses that merely start low reach that high again and again): the jump threw the weights where
    nothing learns any more, and the loss sits at the untrained model's level instead of diverging further.
  It is raised once per run of losses (again after fit's repair rolls back and clears them).
- lr-too-high, from the updates: they move weights by more than 10% per step while the loss stops
  falling (TheDeepChecker's and DeepDiagnosis's upper bound on update/weight is 1e-1).
- lr-too-low: updates move weights by less than 1e-4 of their size per step (the lower bound of
  TheDeepChecker's healthy band, 1e-4..1e-1), while the gradient is still at least a tenth of its size
  at the start (so the run is not simply converged), and either it points the same way step after step
  (so a bigger step would go further down the same slope), or - when minibatch noise hides its
  direction - the loss has not improved by FLAT_IMPROVEMENT since the start and the steps are below
  1e-5 too (DeepDiagnosis's wider band, 1e-5..1e-1, ends there). W5 with SGD at lr 1e-3 moves its
  weights by 4e-5 per step with noisy gradients: slow, but inside the wider band, so not flagged.
  A warmup that is raising the lr is left alone. Adam-like optimizers step each weight by about lr
  whatever the gradient's noise, so for them steps below 1e-4 and a flat loss suffice. Never after a jump
  of the loss, nor with dead ReLUs or vanishing gradients: those make the steps tiny, not the lr.
- not-learning: after NOT_LEARNING_STEPS steps (and a whole epoch) the loss is no better than the best
  constant prediction (the label distribution's entropy for cross-entropy, the targets' variance for
  MSE) by more than NEAR_BASELINE (R^2, or the share of label entropy explained, below 0.1), and the
  gradients of successive minibatches point in unrelated directions (mean cosine below NO_SIGNAL_COSINE),
  so no direction in the data lowers the loss: the targets do not depend on the inputs (labels shuffled
  apart from their inputs) or the model cannot see them. A slow but real start (W5 with SGD at lr 1e-3
  gains <1% in its first 100 steps) has consistent gradients and is not flagged. Without a known
  baseline (a custom loss), the loss must have improved by less than 1% over NOT_LEARNING_STEPS steps.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from dataclasses import dataclass, field
from statistics import median
from typing import TYPE_CHECKING

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from trainwise.doctor.core import SameBatch, whole_norm
from trainwise.doctor.findings import nice_number
from trainwise.doctor.registry import runs_on

if TYPE_CHECKING:
    from trainwise.doctor.core import Doctor, Sample

DIVERGENCE_FACTOR = 10.0
RISING_STEPS = 5
MIN_GROWTH = 1.5  # per step, over the rising run: noise rarely compounds this fast
RUNAWAY_FACTOR = 100.0  # the level this far above its best is divergence however it got there
FITTED_FRACTION = 1e-3
LEVEL_WINDOW = 9
RECENT = 200  # the losses most checks read: the recent past, so a check costs the same at step 100 and 100000
BULK_LEVELS = 32  # new losses from which the levels are moved along in numpy, not one by one
MIN_LEVEL_OF = 3  # a median of two values is their mean: not robust yet
MIN_STABLE_BATCH = 8
HIGH_UPDATE_RATIO = 1e-1
LOW_UPDATE_RATIO = 1e-4
VERY_LOW_UPDATE_RATIO = 1e-5  # DeepDiagnosis's lower bound (its healthy band is 1e-5..1e-1)
TARGET_UPDATE_RATIO = 1e-3
STILL_STEEP = 0.1
CONSISTENT_DIRECTION = 0.8
SAMPLES_FOR_LOW = 5
FLAT_IMPROVEMENT = 0.1
# the loss is within this share of where the current slope ends: converged, however small the steps
NEAR_FLOOR = 0.01
SLOPE_SAMPLES = 5
# long enough that a slow but real start (W5 with SGD at lr 1e-3 gains <1% in its first 100 steps)
# is not mistaken for a run that does not learn
NOT_LEARNING_STEPS = 500
# lr-too-low from the validation loss: this many validations, each lower than the one before
CRAWL_EPOCHS = 5
STILL_STEEP_CRAWL = 0.5
STUCK_STEPS = 20  # after a jump, this long no better than the start: stuck, not recovering
JUMP_FACTOR = 3.0
NOT_LEARNING_IMPROVEMENT = 0.01
# findings that do not explain a loss stuck at the constant prediction's: units dying because nothing is
# learnt, a validation loss climbing because the training rows are memorised
SYMPTOMS_ONLY = ("dead-relu", "overfitting")
NEAR_BASELINE = 0.1
# two independent gradients, seen through the doctor's 32-number projection, have cosine 0 +- 0.18;
# averaged over 8 or more pairs, +- 0.06: a mean below 0.2 is no consistent direction at all
NO_SIGNAL_COSINE = 0.2
MIN_COSINE_PAIRS = 8


@dataclass
class _Episode:
    """The loss statistics of one run of recorded losses (fit's repair clears the losses and starts anew)."""

    start: float | None = None  # the first finite loss
    level: float | None = None  # median of the last LEVEL_WINDOW finite losses
    level_of: int = 0  # how many losses that median is of
    best_level: float = math.inf
    raised: bool = False  # lr-too-high already raised from these losses
    peak: float = -math.inf  # the highest finite loss, and how many losses were read before it
    peak_at: int = 0
    seen: int = 0  # losses read
    window: deque[float] = field(default_factory=lambda: deque(maxlen=LEVEL_WINDOW))  # the last losses
    finite_sorted: list[float] = field(default_factory=list)  # the finite ones among them, sorted


@dataclass
class _Targets:
    """Running sums of float targets per output, for the best constant prediction's loss."""

    count: int = 0
    total: torch.Tensor | None = None
    squares: torch.Tensor | None = None
    sums_of: SameBatch[tuple[torch.Tensor, torch.Tensor, int] | None] = field(
        default_factory=lambda: SameBatch(_target_sums)
    )


def _target_sums(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    """Per output: the sums and sums of squares of a batch of float targets, and its rows; None if any is not
    finite."""
    values = target.detach().reshape(target.shape[0], -1).double() if target.ndim else target.reshape(1, 1).double()
    if not bool(torch.isfinite(values).all()):
        return None
    return values.sum(0).cpu(), values.square().sum(0).cpu(), values.shape[0]


@dataclass
class _State:
    """This family's state for one doctor (Doctor.family_state)."""

    episode: _Episode | None = None  # None before the first losses are read
    lrs: list[float] = field(default_factory=list)  # the lr at recent sampled steps
    targets: _Targets = field(default_factory=_Targets)
    not_learning_due: tuple[int, int] = (0, 0)  # (losses at the last check, losses at the next one)


def _state(doctor: Doctor) -> _State:
    return doctor.family_state(_State)


def _episode(doctor: Doctor) -> _Episode:
    state = _state(doctor)
    if doctor.flushed_from == 0 or state.episode is None:  # the first losses, or losses cleared by a repair
        state.episode = _Episode()
    return state.episode


def _update_levels(doctor: Doctor, episode: _Episode) -> None:
    """Move the median level along the newly read losses (this runs on every recorded loss, so the
    window's finite values are kept sorted rather than sorted each time)."""
    new = doctor.obs.losses[doctor.flushed_from :]
    window = episode.window
    if len(new) >= BULK_LEVELS and len(window) == LEVEL_WINDOW and math.isfinite(sum(window) + sum(new)):
        _update_levels_in_bulk(episode, new)
        return
    ordered = episode.finite_sorted
    for value in new:
        episode.seen += 1
        if value > episode.peak and math.isfinite(value):
            episode.peak, episode.peak_at = value, episode.seen
        if len(window) == LEVEL_WINDOW and math.isfinite(window[0]):
            del ordered[bisect.bisect_left(ordered, window[0])]
        window.append(value)
        if not math.isfinite(value):
            continue
        bisect.insort(ordered, value)
        if episode.start is None:
            episode.start = value
        count = len(ordered)
        episode.level, episode.level_of = (ordered[(count - 1) // 2] + ordered[count // 2]) / 2, count
        if count >= MIN_LEVEL_OF:
            episode.best_level = min(episode.best_level, episode.level)


def _update_levels_in_bulk(episode: _Episode, new: list[float]) -> None:
    """_update_levels' result for many finite losses after a full window of finite ones, as one sliding
    median in numpy (a Python loop costs about a hundred bytecodes a loss: the doctor's largest per-step
    cost in a loop of tiny steps). A median of an odd count is one of the values: the same numbers."""
    values = np.array([*episode.window, *new])
    levels = np.median(sliding_window_view(values, LEVEL_WINDOW)[1:], axis=1)
    top = max(new)
    if top > episode.peak:
        episode.peak, episode.peak_at = top, episode.seen + new.index(top) + 1
    episode.seen += len(new)
    episode.window.extend(new)
    episode.finite_sorted = sorted(episode.window)
    episode.level, episode.level_of = float(levels[-1]), LEVEL_WINDOW
    episode.best_level = min(episode.best_level, float(levels.min()))


def _stable_start(doctor: Doctor, episode: _Episode) -> bool:
    """Is the first loss a trustworthy reference: a mean over enough samples to not be near zero by chance?"""
    return episode.start is not None and episode.start > 0 and (doctor.batch_size or 0) >= MIN_STABLE_BATCH


def _best(doctor: Doctor, episode: _Episode | None, finite: list[float]) -> float:
    """The loss's best level so far: the lowest median, or the first loss where that is trustworthy."""
    candidates = [math.inf] if episode is None else [episode.best_level]
    if episode is not None and _stable_start(doctor, episode) and episode.start is not None:
        candidates.append(episode.start)
    best = min(candidates)
    return max(best if math.isfinite(best) else min(finite, default=0.0), 1e-12)


def _is_linear(doctor: Doctor) -> bool:
    """One weight matrix: the loss is (close to) quadratic in the parameters, as in linear regression."""
    return sum(1 for info in doctor.params if info.param.ndim >= 2) == 1


def diverged_before(doctor: Doctor, index: int) -> bool:
    """Had the loss grown to DIVERGENCE_FACTOR x its best level before losses[index]? Raises lr-too-high if so."""
    finite = [v for v in doctor.obs.losses[:index] if math.isfinite(v)]
    if len(finite) < 2:
        # non-finite within two steps: a rise we cannot see, but nothing else explains it either
        return False
    best = _best(doctor, _state(doctor).episode, finite)
    if finite[-1] < DIVERGENCE_FACTOR * best:
        return False
    _raise_too_high(doctor, finite, "grew from {best:.4g} to {last:.4g} and then became non-finite", best)
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


def _raise_too_high(doctor: Doctor, finite: list[float], what: str, best: float) -> None:
    episode = _state(doctor).episode
    if episode is not None:
        if episode.raised:
            return
        episode.raised = True
    last = finite[-1]
    lr = doctor.lrs()[0]
    growth = _growth_per_step(finite)
    if not doctor.adaptive and growth > 1 and _is_linear(doctor):
        # gradient descent on a quadratic: the error is multiplied by |1 - lr*curvature| per step,
        # the loss by its square; the step is stable below lr = 2/curvature and fastest near 1/curvature
        amplification = math.sqrt(growth)
        suggested = nice_number(lr / (1 + amplification))
        how = f"the loss grew {growth:.3g}x per step, so steps overshoot by about {amplification:.3g}x"
    else:
        # a deep net's curvature changes as it diverges, so the growth rate does not say how far to go:
        # the usual remedy (and what fit's repair does) is a factor of ten
        suggested = nice_number(lr / 10)
        how = "the steps are too large for the loss surface" if growth <= 1 else f"the loss grew {growth:.3g}x per step"
    doctor.raise_finding(
        "lr-too-high",
        f"The learning rate {lr:g} is too high: the loss {what.format(best=best, last=last)}; {how}.",
        evidence={"lr": lr, "best_loss": best, "last_finite_loss": last, "growth_per_step": growth},
        suggestion=f"lower lr to about {suggested:g}",
    )


@runs_on("losses")
def check_divergence(doctor: Doctor) -> None:
    episode = _episode(doctor)
    _update_levels(doctor, episode)
    losses = doctor.obs.losses
    if episode.raised or doctor.has("exploding-gradients") or episode.level is None or episode.start is None:
        return
    finite = doctor.obs.finite_losses[-RECENT:]  # a tail: this runs at every read of the losses
    best = _best(doctor, episode, finite)
    window = losses[-RISING_STEPS - 1 :]
    if len(window) == RISING_STEPS + 1 and all(math.isfinite(v) for v in window):
        rising = all(b > a for a, b in itertools.pairwise(window))
        if rising and window[-1] > DIVERGENCE_FACTOR * best and _growth_per_step(finite) >= MIN_GROWTH:
            _raise_too_high(doctor, finite, "grew steadily from its best {best:.4g} to {last:.4g}", best)
            return
    if episode.level_of < MIN_LEVEL_OF:
        return
    if _spiked_then_stuck(doctor, episode):
        return
    level = f"{episode.level:.4g} (the median of its last {episode.level_of} values)"
    if _stable_start(doctor, episode) and episode.level > DIVERGENCE_FACTOR * episode.start:
        _raise_too_high(doctor, finite, f"rose from {episode.start:.4g} at the start to {level}", best)
    elif episode.level > RUNAWAY_FACTOR * max(best, FITTED_FRACTION * episode.start):
        _raise_too_high(doctor, finite, f"ran away from its best {{best:.4g}} to {level}", best)


def spiked(doctor: Doctor) -> bool:
    """Did a loss jump to JUMP_FACTOR x the (trustworthy) first loss at some point? The first loss is the
    untrained model's, near the worst a fresh model scores; training that works never goes far above it."""
    episode = _state(doctor).episode
    if episode is None or episode.start is None or not _stable_start(doctor, episode):
        return False
    return episode.peak > JUMP_FACTOR * episode.start


def _spiked_then_stuck(doctor: Doctor, episode: _Episode) -> bool:
    """A jump to JUMP_FACTOR x the first loss, after which the loss stays no better than at the start for
    STUCK_STEPS steps (or the ReLUs died), at a level the jump was JUMP_FACTOR x above: the jump threw the
    weights where nothing learns any more (dead units, saturated outputs), so the loss sits at the untrained
    model's level instead of diverging further. The steps now are tiny, which would read as a too-low lr:
    the cause is the jump."""
    if not spiked(doctor) or episode.level is None or episode.start is None:
        return False
    since = episode.seen - episode.peak_at
    stuck_for = LEVEL_WINDOW if doctor.has("dead-relu") else STUCK_STEPS  # the level is all after the jump
    if since < stuck_for or episode.level < (1 - FLAT_IMPROVEMENT) * episode.start:
        return False
    if episode.peak < JUMP_FACTOR * episode.level:
        return False  # the level it sits at reaches near the peak: minibatch noise around a high loss, no jump
    lr = doctor.lrs()[0]
    dead = " and the ReLUs died" if doctor.has("dead-relu") else ""
    doctor.raise_finding(
        "lr-too-high",
        f"The learning rate {lr:g} is too high: the loss jumped from {episode.start:.4g} at the start to "
        f"{episode.peak:.4g}{dead}, and in the {since} steps since it has stayed at {episode.level:.4g}, no better "
        "than the untrained model: the jump threw the weights where they no longer learn.",
        evidence={
            "lr": lr,
            "start_loss": episode.start,
            "peak_loss": episode.peak,
            "loss": episode.level,
            "steps_since_peak": since,
        },
        suggestion=f"lower lr to about {nice_number(lr / 10):g} and start again from fresh weights",
    )
    episode.raised = True
    return True


def _update_ratios(doctor: Doctor, n: int) -> list[float]:
    """|update| / |weights| over all parameters together, for each of the last n samples.

    Taken over the whole model, not per tensor: a bias near zero would otherwise show a huge ratio."""
    return [ratio for sample in doctor.recent_samples(n) if (ratio := sample.update_to_weight) is not None]


def _remaining_drop(samples: list[Sample]) -> float | None:
    """How much further the loss can fall along the slope it is on: the gradient's norm shrank from |g0| to |g|
    while the weights moved a distance D, so on a quadratic slope (curvature (|g0| - |g|) / D) it reaches zero
    after another |g| D / (|g0| - |g|), and the loss drops by |g|^2 D / (2 (|g0| - |g|)) on the way. Read over
    the latest samples whose norm never grew (at least SLOPE_SAMPLES, and it must have shrunk): a deterministic
    slope, not minibatch noise (whose norms rise and fall: 5 in order by chance is 1 in 120, and that only
    delays the finding to the next sample); None otherwise. A converged run trained further (fit again, or
    resumed) starts with a small gradient that keeps shrinking (or stands still once the steps fall below float
    precision): its loss is at the floor, and small steps are no evidence of a too-low lr."""
    norms = [whole_norm(s.grad_norms.values()) for s in samples]
    start = len(norms) - 1
    while start > 0 and norms[start - 1] >= norms[start]:
        start -= 1
    if len(norms) - start < SLOPE_SAMPLES or not norms[-1] < norms[start]:
        return None
    samples, norms = samples[start:], norms[start:]
    updates = [whole_norm(s.update_norms.values()) for s in samples]
    # the distance moved between samples: their steps apart times the mean update (trapezoid rule)
    moves = itertools.pairwise(zip(samples, updates, strict=True))
    distance = sum((b.step - a.step) * (ua + ub) / 2 for (a, ua), (b, ub) in moves)
    if not math.isfinite(distance) or distance <= 0:
        return None
    return norms[-1] ** 2 * distance / (2 * (norms[0] - norms[-1]))


def _loss_falling(losses: list[float], fraction: float = 0.05) -> bool:
    """Did the mean of the last quarter drop by `fraction` below the mean of the quarter before it?"""
    quarter = len(losses) // 4
    if quarter < 3:
        return True
    before = sum(losses[-2 * quarter : -quarter]) / quarter
    after = sum(losses[-quarter:]) / quarter
    return after < before * (1 - fraction)


@runs_on("step")
def check_update_sizes(doctor: Doctor) -> None:
    explained = ("lr-too-high", "lr-too-low", "exploding-gradients", "over-regularized", "params-not-optimized")
    if any(doctor.has(code) for code in explained):
        return  # decay-shrunk weights make every step look large; weights that never move say nothing
    ratios = _update_ratios(doctor, SAMPLES_FOR_LOW)
    if len(ratios) < SAMPLES_FOR_LOW or doctor.step < 2 * doctor.warmup:
        return
    lr = doctor.lrs()[0]
    recorded = len(doctor.obs.losses)
    losses = doctor.obs.finite_losses[-RECENT:]
    if min(ratios) > HIGH_UPDATE_RATIO and recorded >= 40 and not _loss_falling(losses, 0.0):
        doctor.raise_finding(
            "lr-too-high",
            f"Each step changes the weights by {median(ratios):.0%} of their size and the loss has stopped "
            f"falling: with lr {lr:g} the optimizer jumps around the minimum instead of settling into it.",
            evidence={"lr": lr, "update_to_weight": median(ratios)},
            suggestion=f"lower lr to about {nice_number(lr * TARGET_UPDATE_RATIO * 10 / median(ratios)):g}",
        )
        if (episode := _state(doctor).episode) is not None:
            episode.raised = True
        return
    if max(ratios) >= LOW_UPDATE_RATIO:
        return
    if spiked(doctor) or doctor.has("dead-relu") or doctor.has("vanishing-gradients"):
        return  # tiny steps of dead units, vanished gradients or weights thrown far by a jump: not a timid lr
    samples = doctor.recent_samples(SAMPLES_FOR_LOW)
    lrs = _state(doctor).lrs
    if len(lrs) >= SAMPLES_FOR_LOW and lr > lrs[-SAMPLES_FOR_LOW]:
        return  # a warmup is raising the lr: small steps are its plan
    first_total = whole_norm(doctor.obs.first_grad_norms.values())
    now_total = whole_norm(samples[-1].grad_norms.values())
    if first_total == 0 or now_total < STILL_STEEP * first_total:
        return  # the gradient has mostly vanished: converged, not crawling
    directions = [s.grad_direction for s in samples if s.grad_direction is not None]
    cosines = [float(torch.nn.functional.cosine_similarity(a, b, dim=0)) for a, b in itertools.pairwise(directions)]
    # the typical pair: one noisy minibatch does not make the direction inconsistent
    consistent = bool(cosines) and median(cosines) >= CONSISTENT_DIRECTION
    head = [v for v in doctor.obs.losses[:LEVEL_WINDOW] if math.isfinite(v)]
    initial = median(head) if head else math.nan
    recent = median(losses[-LEVEL_WINDOW:]) if losses else math.nan
    # a loss still near its start has not converged, though minibatch noise may hide the gradient's direction:
    # then the steps must be below the wider band's lower edge too
    tiny = LOW_UPDATE_RATIO if doctor.adaptive else VERY_LOW_UPDATE_RATIO
    flat = initial > 0 and recent > (1 - FLAT_IMPROVEMENT) * initial and max(ratios) < tiny
    if not (consistent or flat):
        return
    remaining = _remaining_drop(doctor.obs.samples)
    if remaining is not None and math.isfinite(recent) and remaining < NEAR_FLOOR * abs(recent):
        return  # the loss is at the floor of its slope: converged (a run trained further), not crawling
    ratio = median(ratios)
    evidence = {"lr": lr, "update_to_weight": ratio, "gradient_vs_start": now_total / first_total}
    if remaining is not None:
        evidence["remaining_loss_drop"] = remaining
    if consistent:
        evidence["direction_cosine"] = median(cosines)
        why = (
            f"while the gradient still points the same way (cosine {median(cosines):.2f} between steps) and is "
            f"{now_total / first_total:.0%} of its initial size"
        )
    else:
        evidence.update({"initial_loss": initial, "loss": recent})
        why = (
            f"while the loss has not improved by {FLAT_IMPROVEMENT:.0%} since the start ({initial:.4g} -> "
            f"{recent:.4g}) and the gradient is {now_total / first_total:.0%} of its initial size"
        )
    doctor.raise_finding(
        "lr-too-low",
        f"The learning rate {lr:g} is too low: each step changes the weights by only {ratio:.2g} of their size "
        f"{why}, so training crawls.",
        evidence=evidence,
        suggestion=f"raise lr to about {nice_number(lr * TARGET_UPDATE_RATIO / max(ratio, 1e-12)):g}, or use lr='auto'",
    )


@runs_on("validation")
def check_crawling(doctor: Doctor) -> None:
    """lr-too-low from the validation loss: it fell at every one of CRAWL_EPOCHS or more validations (steady
    progress, not noise around a floor), yet by less than FLAT_IMPROVEMENT in all, while the gradient is still
    at least STILL_STEEP_CRAWL of its initial size (far from a minimum), the steps are at most half the
    healthy TARGET_UPDATE_RATIO (so a higher lr is the remedy) and the lr is not being warmed up."""
    values = [value for _, value in doctor.obs.val_losses]
    if len(values) < CRAWL_EPOCHS or doctor.has("lr-too-low") or doctor.has("lr-too-high") or spiked(doctor):
        return
    if not all(b < a for a, b in itertools.pairwise(values)) or values[0] <= 0 or not all(map(math.isfinite, values)):
        return
    improvement = 1 - values[-1] / values[0]
    samples = doctor.obs.samples
    lrs = _state(doctor).lrs
    if improvement >= FLAT_IMPROVEMENT or not samples or not doctor.obs.first_grad_norms or lrs[-1:] > lrs[:1]:
        return
    first = whole_norm(doctor.obs.first_grad_norms.values())
    now = whole_norm(samples[-1].grad_norms.values())
    ratios = _update_ratios(doctor, SAMPLES_FOR_LOW)
    if first <= 0 or now < STILL_STEEP_CRAWL * first or not ratios:
        return
    lr, ratio = doctor.lrs()[0], median(ratios)
    if ratio > TARGET_UPDATE_RATIO / 2:
        return  # steps of a healthy size: slow progress is the task's (a noise floor near), not the lr's
    doctor.raise_finding(
        "lr-too-low",
        f"The learning rate {lr:g} is too low: the validation loss fell at each of the last {len(values)} "
        f"validations, but only by {improvement:.1%} in all ({values[0]:.4g} -> {values[-1]:.4g}), while the "
        f"gradient is still {now / first:.0%} of its initial size: training moves the right way, too slowly to "
        "get anywhere.",
        evidence={
            "lr": lr,
            "val_improvement": improvement,
            "gradient_vs_start": now / first,
            "update_to_weight": ratio,
        },
        suggestion=f"raise lr to about {nice_number(lr * TARGET_UPDATE_RATIO / max(ratio, 1e-12)):g}, or use lr='auto'",
    )


@runs_on("step")
def remember_lr(doctor: Doctor) -> None:
    """The lr at each sampled step (a warmup schedule raises it on purpose)."""
    lrs = _state(doctor).lrs
    lrs.append(doctor.lrs()[0])
    del lrs[: -2 * SAMPLES_FOR_LOW]


# ---------------------------------------------------------------------------------------------- not learning


@runs_on("loss_input")
def collect_targets(doctor: Doctor) -> None:
    """Per-output sums of float targets on sampled steps: their variance is what a constant prediction scores."""
    target = doctor.loss_target
    if doctor.data is not None or target is None or not target.is_floating_point() or target.numel() == 0:
        return
    stats = _state(doctor).targets
    sums = stats.sums_of(target)
    if sums is None:
        return
    total, squares, rows = sums
    if stats.total is None or stats.squares is None or stats.total.shape != total.shape:
        stats.count, stats.total, stats.squares = 0, total, squares
    else:
        stats.total, stats.squares = stats.total + total, stats.squares + squares
    stats.count += rows


def _constant_loss(doctor: Doctor) -> tuple[float, str] | None:
    """The loss of the best constant prediction, and what it is, for the losses where it is known."""
    kind = doctor.loss_kind()
    if doctor.loss_reduction() != "mean":
        return None
    if kind in ("cross_entropy", "nll"):
        counts = doctor.obs.label_counts
        if counts is None or int(counts.sum()) == 0:
            return None
        p = counts.double() / counts.sum()
        p = p[p > 0]
        return float(-(p * p.log()).sum()), "the entropy of the labels"
    if kind not in ("mse", "bce", "bce_with_logits"):
        return None
    if doctor.data is not None and doctor.data[1].is_floating_point():
        y = doctor.data[1]
        values = y.detach().reshape(y.shape[0], -1).double()
        mean, count = values.mean(0), values.shape[0]
        squares = values.square().mean(0)
    elif (totals := doctor.obs.targets.totals()) is not None and doctor.obs.targets.count >= 2:
        count = doctor.obs.targets.count  # every target passed to record()
        total, total_squares = totals
        mean, squares = total / count, total_squares / count
        if not bool(torch.isfinite(squares).all()):
            return None
    else:  # the targets the loss module received on sampled steps
        stats = _state(doctor).targets
        if stats.total is None or stats.squares is None or stats.count < 2:
            return None
        count = stats.count
        mean, squares = stats.total / count, stats.squares / count
    if count < 2:
        return None
    if kind == "mse":
        return float((squares - mean.square()).clamp(min=0).mean()), "the variance of the targets"
    if bool(((mean < 0) | (mean > 1)).any()):
        return None
    p = mean.clamp(1e-12, 1 - 1e-12)
    return float((-(p * p.log() + (1 - p) * (1 - p).log())).mean()), "the entropy of the targets"


def _mean_cosine(doctor: Doctor) -> tuple[float, int]:
    """Mean cosine between the gradients of consecutive sampled steps (the doctor samples them in pairs)."""
    directions = [(s.step, s.grad_direction) for s in doctor.obs.samples[-40:] if s.grad_direction is not None]
    cosines = [
        float(torch.nn.functional.cosine_similarity(a, b, dim=0))
        for (step_a, a), (step_b, b) in itertools.pairwise(directions)
        if step_b == step_a + 1
    ]
    cosines = [c for c in cosines if math.isfinite(c)]
    return (sum(cosines) / len(cosines), len(cosines)) if cosines else (math.nan, 0)


@runs_on("losses", "epoch", fallback=True)
def check_not_learning(doctor: Doctor) -> None:
    recorded = len(doctor.obs.losses)
    if recorded < NOT_LEARNING_STEPS or doctor.has("not-learning"):
        return
    # it reads every loss: run it each time the record has grown by a tenth (fit's repair shrinks it)
    state = _state(doctor)
    seen, due = state.not_learning_due
    if seen <= recorded < due:
        return
    state.not_learning_due = (recorded, recorded + max(NOT_LEARNING_STEPS // 10, recorded // 10))
    losses = doctor.obs.finite_losses
    if len(losses) < NOT_LEARNING_STEPS:
        return
    if doctor.steps_per_epoch and doctor.step < doctor.steps_per_epoch:
        return  # at least one whole epoch
    if any(f.severity != "info" and f.code not in SYMPTOMS_ONLY for f in doctor.findings):
        return  # another finding already explains it
    tenth = max(len(losses) // 10, 5)
    start = sum(losses[:tenth]) / tenth
    end = sum(losses[-tenth:]) / tenth
    evidence = {"first_losses_mean": start, "last_losses_mean": end, "steps": len(losses)}
    baseline = _constant_loss(doctor)
    if baseline is not None:
        constant, what = baseline
        if constant <= 0 or end < (1 - NEAR_BASELINE) * constant:
            return
        cosine, pairs = _mean_cosine(doctor)
        if pairs < MIN_COSINE_PAIRS:
            return
        if not cosine < NO_SIGNAL_COSINE:
            return  # the gradients agree from batch to batch: learning, however slowly
        evidence.update({"constant_prediction_loss": constant, "gradient_cosine": cosine})
        message = (
            f"The loss is {end:.4g} after {len(losses)} steps, within {NEAR_BASELINE:.0%} of what a constant "
            f"prediction scores ({constant:.4g}, {what}), and the gradients of successive batches are unrelated "
            f"(mean cosine {cosine:.2f}): nothing in the inputs predicts the targets."
        )
    else:
        if start <= 0 or end < start * (1 - NOT_LEARNING_IMPROVEMENT):
            return
        width = doctor.output_width or 0
        chance = ""
        if doctor.loss_kind() in ("cross_entropy", "nll") and width >= 2:
            evidence["chance_loss"] = math.log(width)
            chance = f" (chance level for {width} classes is {math.log(width):.3g})"
        message = f"The loss has not improved in {len(losses)} steps: {start:.4g} at the start, {end:.4g} now{chance}."
    doctor.raise_finding(
        "not-learning",
        message,
        evidence=evidence,
        suggestion="check that the targets belong to the inputs (same order, same shuffle: shuffle X and y with "
        "one permutation), that the model can represent the task, and try overfitting a single batch first",
    )
