"""The learning-rate finder: an exponential sweep of the learning rate, then short trial runs.

The sweep trains from the model's current weights while the learning rate grows geometrically from
`start_lr` to `end_lr`, one minibatch per step, and stops when the loss diverges. Its losses are
smoothed with a running median over a window a fixed fraction of a decade wide (not a fixed number
of steps), so the curve does not depend on the sweep's resolution and one noisy minibatch cannot
move it. Where that curve is lowest, `min_lr`, the steps start to overshoot.

The best lr for a whole training run lies below `min_lr`, but how far below depends on the
optimizer and the problem (gradient descent on a quadratic is best just below its stability edge;
RMSprop's steps are about lr in size whatever the gradient, so its final loss floor grows with lr).
So the finder does not guess a fixed factor: going down a fixed quarter-decade grid from half a
decade below `min_lr`, it trains `trial_steps` steps from the same start at each lr, until two lrs
in a row end worse than the best so far, and suggests the best (the middle one of those within 10%
of it). Trials long enough to show a late instability matter: RMSprop on W4 looks best at 1e-2
after 200 steps and oscillates out of it after 500. Afterwards the model, the optimizer, the random
number generators and the batch order are restored exactly as they were. docs/lr-find.md compares
the suggestion with a grid search on every recipe.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainwise import data as data_lib
from trainwise import rng
from trainwise._display import brief_repr, html_table
from trainwise.errors import ConfigError, TrainingError
from trainwise.losses import LossFn, make_loss, model_loss
from trainwise.optim import make_optimizer

SAFETY = 10.0  # the suggestion sits a decade below the loss minimum of the sweep
WINDOW_DECADES = 0.25  # the running median spans this much of the lr axis (both sides together)
DIVERGE_FACTOR = 4.0  # stop once the loss exceeds 4x its lowest running median (as fastai does)
MIN_DROP = 0.1  # a minimum less than 10% below the starting loss says little
TRIAL_STEPS = 1000  # steps of each trial run at a candidate lr (fewer when training is shorter)
TIE = 0.1  # trial losses within 10% of the lowest count as equally good
CONVERGED = 1e-6  # losses below a millionth of the starting loss count as equal
MAX_CANDIDATES = 16  # at most 16 trial runs


@dataclass
class LRFindResult:
    """The sweep's learning rates, raw and smoothed losses, and the suggested learning rate.

    lr_find makes it; its fields are attributes of the same names.

    Args:
        lrs, losses: the sweep's learning rates and the minibatch loss at each (up to where the sweep stopped).
        smoothed: the losses as a running median over a quarter of a decade of lr (NaN where none was finite).
        suggestion: the suggested learning rate.
        min_lr: the learning rate where the smoothed loss was lowest.
        confidence: "high", "medium" or "low".
        explanation: how the suggestion was found and why the confidence is what it is, in words.
        diverged_at: the learning rate at which the sweep stopped on divergence; None if it did not diverge.
        settings: the sweep's settings (start_lr, end_lr, steps, trial_steps, optimizer); empty by default.
        trials: candidate lr -> the loss its trial run ended at (inf: ended above its start); empty by default.
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    min_lr: float
    confidence: str  # "high", "medium" or "low"
    explanation: str
    diverged_at: float | None = None  # the lr at which the sweep stopped on divergence
    settings: dict[str, Any] = field(default_factory=dict)
    trials: dict[float, float] = field(default_factory=dict)  # candidate lr -> where its trial run ended

    def plot(self, path: str | Path | None = None) -> Any:
        """Loss against learning rate (log axis) with the suggestion marked; saved as a PNG with a path."""
        from trainwise.plots import plot_lr_find

        return plot_lr_find(self.lrs, self.losses, self.smoothed, self.suggestion, path, min_lr=self.min_lr)

    def to_dict(self) -> dict[str, Any]:
        return {
            "suggestion": self.suggestion,
            "min_lr": self.min_lr,
            "confidence": self.confidence,
            "explanation": self.explanation,
            "diverged_at": self.diverged_at,
            "settings": self.settings,
            "trials": [{"lr": lr, "loss": v if math.isfinite(v) else None} for lr, v in self.trials.items()],
            "lrs": self.lrs,
            "losses": [v if math.isfinite(v) else None for v in self.losses],
            "smoothed": [v if math.isfinite(v) else None for v in self.smoothed],
        }

    def __str__(self) -> str:
        return f"suggested lr {self.suggestion:.3g} ({self.confidence} confidence): {self.explanation}"

    def __rich__(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        fields = {
            "suggestion": self.suggestion,
            "confidence": self.confidence,
            "min_lr": self.min_lr,
            "diverged_at": self.diverged_at,
            "lrs": self.lrs,
            "losses": self.losses,
            "smoothed": self.smoothed,
            "trials": self.trials or None,
        }
        return brief_repr("LRFindResult", fields)

    def _rows(self) -> list[tuple[str, str]]:
        steps = self.settings.get("steps", len(self.lrs))
        rows = [
            ("suggested lr", f"{self.suggestion:.3g}"),
            ("confidence", self.confidence),
            ("lowest smoothed loss at lr", f"{self.min_lr:.3g}"),
            ("sweep diverged at lr", f"{self.diverged_at:.3g}" if self.diverged_at is not None else "no"),
            ("sweep steps", f"{len(self.losses)} of {steps}"),
        ]
        if self.trials:
            best = min(self.trials.values())
            rows.append(("trial runs", f"{len(self.trials)}, lowest loss {best:.4g}"))
        return rows

    def _repr_html_(self) -> str:
        return html_table(None, self._rows(), title="LR finder", caption=self.explanation)


def lr_find(
    model: nn.Module,
    data: Any,
    *,
    loss: str | LossFn | None,
    optimizer: str | torch.optim.Optimizer = "sgd",
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    trial_steps: int = TRIAL_STEPS,
    budget_steps: int | None = None,
    batch_size: int | None = None,
    normalize: data_lib.Normalize = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    **optimizer_kwargs: Any,
) -> LRFindResult:
    """Sweep the learning rate from start_lr to end_lr over `steps` steps and suggest one.

    data: (X, y), a Dataset or DataLoader, like fit. batch_size None sweeps on the full batch (one
    gradient-descent step per lr). optimizer: a name (built with optimizer_kwargs, e.g. momentum=0.9)
    or an optimizer object, whose state is restored afterwards like the model's. Then trial runs of
    trial_steps steps (at most budget_steps, the length of the training to come) pick among lrs below
    the sweep's minimum; trial_steps=0 skips them and suggests a decade below the minimum.

    Args:
        model: the model to sweep; it is moved to `device`, and its weights and train/eval mode are restored after.
        data: (X, y) tensors or arrays, a trainwise or torch Dataset, a DataLoader, or a built-in dataset name.
        loss: a loss name ("mse", "cross_entropy", ...) or a loss function; None: the model computes its own loss
            from the inputs and the target, as with fit(loss=None).
        optimizer: an optimizer name ("sgd", "adam", ...) built with `optimizer_kwargs`, or a torch optimizer
            over the model's parameters; default "sgd".
        start_lr, end_lr: the sweep's first and last learning rate (0 < start_lr < end_lr; default 1e-7 to 10).
        steps: the sweep's length in optimizer steps, one minibatch each, lrs spaced geometrically (at least 10).
        trial_steps: optimizer steps of each trial run (default 1000); 0 skips the trials.
        budget_steps: the number of steps of the training the lr is for; trials are never longer. None: no cap.
        batch_size: the minibatch size; None sweeps on the full batch.
        normalize: scale the inputs: "standard", "minmax", a factor, or None / "none" to leave them as they are.
        seed: seeds the batch order and torch's generator before the sweep and each trial run.
        device: "auto" (CUDA, then MPS, then the CPU), a device name such as "cuda:1", or a torch.device.
        **optimizer_kwargs: settings of a named optimizer (momentum=0.9, weight_decay=1e-4, ...).

    Returns:
        An LRFindResult: `suggestion` is the learning rate to use, `confidence` and `explanation` say why.

    Raises:
        ConfigError: start_lr, end_lr, steps or trial_steps out of range, or an unknown loss or optimizer.
    """
    target = data_lib.resolve_device(device)
    model.to(target)
    prepared = data_lib.prepare_data(data, batch_size=batch_size, normalize=normalize, seed=seed, device=target)
    return sweep(
        model,
        prepared.train,
        loss=make_loss(loss) if loss is not None else None,
        optimizer=optimizer,
        start_lr=start_lr,
        end_lr=end_lr,
        steps=steps,
        trial_steps=trial_steps,
        budget_steps=budget_steps,
        seed=seed,
        **optimizer_kwargs,
    )


def sweep(
    model: nn.Module,
    batches: data_lib.BatchSource,
    *,
    loss: LossFn | None,
    optimizer: str | torch.optim.Optimizer,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    trial_steps: int = TRIAL_STEPS,
    budget_steps: int | None = None,
    seed: int = 0,
    **optimizer_kwargs: Any,
) -> LRFindResult:
    """The sweep on batches already prepared (fit's lr="auto" comes here with its training batches).
    budget_steps: the length of the training the lr is for; trials are never longer."""
    if not (0 < start_lr < end_lr) or not math.isfinite(end_lr):
        raise ConfigError(f"lr_find: need 0 < start_lr < end_lr, got start_lr={start_lr:g}, end_lr={end_lr:g}")
    if steps < 10:
        raise ConfigError(f"lr_find: steps must be at least 10 to read a curve, got {steps}")
    if trial_steps < 0:
        raise ConfigError(f"lr_find: trial_steps must be 0 (no trials) or more, got {trial_steps}")
    if budget_steps is not None:
        trial_steps = min(trial_steps, max(budget_steps, 1))
    lrs = np.geomspace(start_lr, end_lr, steps).tolist()
    opt = make_optimizer(optimizer, model.parameters(), start_lr, **optimizer_kwargs)
    settings = {
        "start_lr": start_lr,
        "end_lr": end_lr,
        "steps": steps,
        "trial_steps": trial_steps,
        "optimizer": optimizer if isinstance(optimizer, str) else type(optimizer).__name__,
    }
    with _restoring(model, opt, batches):
        torch.manual_seed(seed)
        losses, diverged = _train(model, opt, batches, loss, lrs)
    diverged_at = lrs[len(losses) - 1] if diverged else None
    result = suggest(lrs[: len(losses)], losses, diverged_at=diverged_at, settings=settings)
    if trial_steps == 0:
        result.explanation += f" Without trial runs, the suggestion is a decade lower: {result.suggestion:.3g}."
        return result
    # a fixed quarter-decade grid, so a small shift of min_lr changes no candidate's value
    start = math.floor(4 * math.log10(result.min_lr / 10**0.5) + 1e-9)
    highest = 4 * math.log10(diverged_at or end_lr)

    def trial(quarter: int) -> float:
        lr = 10 ** (quarter / 4)
        with _restoring(model, opt, batches):
            torch.manual_seed(seed)
            losses, _ = _train(model, opt, batches, loss, [lr] * trial_steps, stop_on_divergence=False)
        result.trials[lr] = _settled(losses, start=result.losses[0])
        return result.trials[lr]

    # walk down from half a decade below min_lr until two lrs in a row end worse than the best; if the
    # start stays the best, walk up the same way (a noisy sweep can put min_lr too low)
    for step in (-1, 1):
        quarter, worse_in_a_row = (start if step < 0 else start + 1), 0
        while worse_in_a_row < 2 and len(result.trials) < MAX_CANDIDATES and quarter <= highest:
            value = trial(quarter)
            best = min(result.trials.values())
            if math.isfinite(value) or step > 0:  # lrs that diverge going down: the good ones lie below
                worse_in_a_row = worse_in_a_row + 1 if value > _tie_bound(best, result) else 0
            quarter += step
        if step < 0 and min(result.trials, key=lambda lr: result.trials[lr]) != 10 ** (start / 4):
            break
    return _choose(result)


def _settled(losses: list[float], *, start: float) -> float:
    """Where a trial run ended: the mean of its last fifth, inf if it ended above where it started.
    A mean, not a median: a run that keeps jumping out of its minimum (an lr at the edge) must pay
    for the jumps. Single jumps are no divergence here: some losses are noisy by nature (W3's
    dynamic net changes its depth every step)."""
    tail = losses[-max(1, len(losses) // 5) :]
    settled = sum(tail) / len(tail)
    return settled if math.isfinite(settled) and settled <= abs(start) else math.inf


def _choose(result: LRFindResult) -> LRFindResult:
    finite = {lr: value for lr, value in result.trials.items() if math.isfinite(value)}
    if not finite:
        result.explanation += (
            " No trial run ended below its starting loss, so the suggestion stays a decade below the sweep's "
            f"minimum: {result.suggestion:.3g}."
        )
        result.confidence = "low"
        return result
    lowest = min(finite.values())
    # trials that ended as low as the best (within TIE): their middle lr is as good and furthest from
    # both edges (too slow below, overshooting above), so it varies least from run to run
    tied = sorted(lr for lr, value in finite.items() if value <= _tie_bound(lowest, result))
    best = tied[len(tied) // 2]
    result.suggestion = best
    steps = result.settings["trial_steps"]
    result.explanation = (
        f"{result.explanation} Then {len(result.trials)} trial runs of {steps} steps from the same start, at lr "
        f"{min(result.trials):.3g} to {max(result.trials):.3g}: {_ended(tied, finite)}; the suggestion is {best:.3g}."
    )
    return result


def _tie_bound(lowest: float, result: LRFindResult) -> float:
    """Trial losses up to this count as good as the lowest: within TIE of it, or all below a millionth of
    the starting loss (float32 rounding, not training, tells those apart)."""
    start = next((v for v in result.losses if math.isfinite(v)), 0.0)
    return lowest + TIE * abs(lowest) + CONVERGED * abs(start)


def _ended(tied: list[float], finite: dict[float, float]) -> str:
    if len(tied) == 1:
        return f"the lowest loss ({finite[tied[0]]:.4g}) at lr {tied[0]:.3g}"
    return f"losses within {TIE:.0%} of the lowest at lr {tied[0]:.3g} to {tied[-1]:.3g}, the middle one"


def _train(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    batches: data_lib.BatchSource,
    loss: LossFn | None,
    lrs: list[float],
    *,
    stop_on_divergence: bool = True,
) -> tuple[list[float], bool]:
    """Train one step per lr (one minibatch each). Returns the losses and whether they diverged: turned
    non-finite or (with stop_on_divergence) rose DIVERGE_FACTOR x above their lowest running median."""
    model.train()
    batch_iter = _cycle(batches)
    losses: list[float] = []
    best = math.inf
    for lr in lrs:
        for group in opt.param_groups:
            group["lr"] = lr
        xb, yb = next(batch_iter)
        batch_loss = model_loss(model, xb, yb, loss)[1]
        opt.zero_grad(set_to_none=True)
        batch_loss.backward()
        opt.step()
        value = float(batch_loss.detach())  # read every loss: the sweep stops on divergence
        losses.append(value)
        recent = [v for v in losses[-5:] if math.isfinite(v)]
        if recent:
            best = min(best, float(np.median(recent)))
        if not math.isfinite(value) or (stop_on_divergence and len(losses) > 5 and value > DIVERGE_FACTOR * best):
            return losses, True
    return losses, False


@contextmanager
def _restoring(model: nn.Module, opt: torch.optim.Optimizer, batches: data_lib.BatchSource) -> Iterator[None]:
    """Put back everything a trial changes: weights, optimizer state and lrs, train/eval mode, the
    random states and the batch order (fit's epochs afterwards see the order they would have seen)."""
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(opt.state_dict())
    saved_rng = rng.capture(model)
    order = batches.state_dict(mid_epoch=False)
    was_training = model.training
    try:
        yield
    finally:
        model.load_state_dict(saved_model)
        opt.load_state_dict(saved_optimizer)
        model.train(was_training)
        batches.load_state_dict(order)
        rng.restore(saved_rng, model)


def _cycle(batches: data_lib.BatchSource) -> Iterator[data_lib.Batch]:
    """Batches without end: a new epoch (a new permutation) whenever one runs out."""
    while True:
        empty = True
        for batch in batches.iterate():
            empty = False
            yield batch
        if empty:
            raise TrainingError("lr_find: the data has no batches")


def smooth(lrs: list[float], losses: list[float], window_decades: float = WINDOW_DECADES) -> list[float]:
    """Running median of the finite losses within +-window/2 decades of each lr (NaN where none)."""
    log_lrs = np.log10(np.asarray(lrs))
    values = np.asarray(losses, dtype=np.float64)
    half = window_decades / 2
    smoothed = []
    for log_lr in log_lrs:
        near = values[(np.abs(log_lrs - log_lr) <= half + 1e-12) & np.isfinite(values)]
        smoothed.append(float(np.median(near)) if near.size else math.nan)
    return smoothed


def suggest(
    lrs: list[float],
    losses: list[float],
    *,
    diverged_at: float | None = None,
    settings: dict[str, Any] | None = None,
) -> LRFindResult:
    """Read the suggestion off a sweep's (lr, loss) pairs."""
    smoothed = smooth(lrs, losses)
    finite = [(lr, value) for lr, value in zip(lrs, smoothed, strict=True) if math.isfinite(value)]
    if len(finite) < 3:
        raise TrainingError(
            f"lr_find: the loss was finite for only {len(finite)} step(s) of the sweep; lower start_lr "
            "(and check the data and model with `trainwise check`)"
        )
    min_lr, min_loss = min(finite, key=lambda pair: pair[1])
    start_loss = finite[0][1]
    suggestion = min_lr / SAFETY
    drop = (start_loss - min_loss) / abs(start_loss) if start_loss else 0.0
    at_low_edge = math.log10(min_lr / lrs[0]) < WINDOW_DECADES
    at_high_edge = diverged_at is None and math.log10(lrs[-1] / min_lr) < WINDOW_DECADES
    how = (
        f"the smoothed loss was lowest ({min_loss:.4g}, from {start_loss:.4g} at the start) at lr {min_lr:.3g}; "
        "above it the steps overshoot"
    )
    if at_low_edge:
        confidence = "low"
        why = f"the loss only rose during the sweep: lower start_lr below {lrs[0]:.3g} and sweep again"
    elif at_high_edge:
        confidence = "low"
        why = f"the loss was still falling at the end of the sweep: raise end_lr above {lrs[-1]:.3g}"
    elif drop < MIN_DROP:
        confidence = "low"
        why = f"the loss fell only {drop:.0%} during the sweep, so its minimum says little"
    elif diverged_at is None:
        confidence = "medium"
        why = "the loss turned up but the sweep did not reach divergence"
    else:
        confidence = "high"
        why = f"the loss fell {drop:.0%} and diverged at lr {diverged_at:.3g}"
    planned = (settings or {}).get("steps", len(losses))
    explanation = f"{how}; {confidence} confidence: {why} (sweep of {len(losses)} of {planned} steps)."
    return LRFindResult(
        lrs=list(lrs),
        losses=list(losses),
        smoothed=smoothed,
        suggestion=suggestion,
        min_lr=min_lr,
        confidence=confidence,
        explanation=explanation,
        diverged_at=diverged_at,
        settings=dict(settings or {}),
    )
