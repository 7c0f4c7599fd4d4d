"""The registry of checks: each family module registers its functions for the events they need.

Events, in the order they happen in a training step:
    setup        once, when the doctor starts watching (static checks of model, optimizer, loss)
    data         once, when fit hands over the whole dataset (trainwise's own loop only)
    loss_input   when the loss sees (output, target): the first steps, then sampled
    step         after an optimizer step on a sampled step (gradient, update and activation statistics)
    losses       after newly recorded training losses are read (every sampled step and epoch end)
    eval_forward after a forward pass without gradients (validation or inference)
    validation   after a validation loss is recorded
    epoch        at the end of an epoch (trainwise's loop) or every steps_per_epoch steps
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from trainwise.errors import TrainingError

if TYPE_CHECKING:
    from trainwise.doctor.core import Doctor

EVENTS = ("setup", "data", "loss_input", "step", "losses", "eval_forward", "validation", "epoch")
CheckFn = Callable[["Doctor"], None]
REGISTRY: dict[str, list[CheckFn]] = {event: [] for event in EVENTS}
FALLBACKS: dict[str, list[CheckFn]] = {event: [] for event in EVENTS}


def runs_on(*events: str, fallback: bool = False) -> Callable[[CheckFn], CheckFn]:
    """Register a check for one or more events. Fallbacks (not-learning) run after all other checks,
    so they can stay silent when a specific cause was found."""

    def register(fn: CheckFn) -> CheckFn:
        for event in events:
            if event not in REGISTRY:
                raise ValueError(f"unknown doctor event {event!r}")
            (FALLBACKS if fallback else REGISTRY)[event].append(fn)
        return fn

    return register


def check_name(fn: CheckFn) -> str:
    """'check network.check_activation_scale': how doctor-error names a check."""
    return f"check {fn.__module__.rsplit('.', 1)[-1]}.{getattr(fn, '__name__', repr(fn))}"


def run(event: str, doctor: Any) -> None:
    """Run the event's checks. A check that raises is switched off for the rest of this doctor's run and
    reported once as doctor-error: a bug in one check must not break the user's training (TrainingError, the
    doctor's deliberate stop, passes through)."""
    for fn in (*REGISTRY[event], *FALLBACKS[event]):
        if fn in doctor.disabled_checks:
            continue
        try:
            fn(doctor)
        except TrainingError:
            raise
        except Exception as exc:
            doctor.disabled_checks.add(fn)
            doctor.internal_error(check_name(fn), exc)
