"""Does what the model learns carry over to new data?

Code: overfitting. It needs validation losses (fit's validation, or Doctor.record(val_loss=...)).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from trainwise.doctor.registry import check

if TYPE_CHECKING:
    from trainwise.doctor.core import Doctor

# As early stopping's usual patience: three validations in a row above the best, by more than
# the 5% that validation noise explains, while training keeps improving.
PATIENCE = 3
RISE = 0.05


@check("validation")
def check_overfitting(doctor: Doctor) -> None:
    values = [v for _, v in doctor.obs.val_losses]
    if len(values) < PATIENCE + 2 or not all(math.isfinite(v) for v in values):
        return
    best_index = min(range(len(values)), key=values.__getitem__)
    best = values[best_index]
    recent = values[-PATIENCE:]
    if best_index >= len(values) - PATIENCE or min(recent) <= best * (1 + RISE) or best <= 0:
        return
    train = doctor.obs.epoch_losses
    if len(train) == len(values):
        train_then, train_now = train[best_index], train[-1]
    else:  # a user loop: compare the training losses around the two moments
        losses = [v for v in doctor.obs.losses if math.isfinite(v)]
        if len(losses) < 10:
            return
        share = (best_index + 1) / len(values)
        cut = max(1, int(len(losses) * share))
        train_then = sum(losses[max(0, cut - 10) : cut]) / len(losses[max(0, cut - 10) : cut])
        train_now = sum(losses[-10:]) / 10
    if not train_now < train_then:
        return
    epoch = doctor.obs.val_losses[best_index][0] + 1
    doctor.raise_finding(
        "overfitting",
        f"The validation loss rose {values[-1] / best - 1:.0%} above its best ({best:.4g}, epoch {epoch}) while "
        f"the training loss kept falling ({train_then:.4g} -> {train_now:.4g}): the model memorizes the training "
        "data.",
        evidence={"best_val_loss": best, "val_loss": values[-1], "best_epoch": epoch, "train_loss": train_now},
        suggestion=f"stop near epoch {epoch} (EarlyStopping(patience={PATIENCE})), add weight decay or dropout, "
        "or get more data",
    )
