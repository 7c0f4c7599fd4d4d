"""The training loop's state, shared by the loop, the step and every callback (`self.state`): the model,
optimizer, loss, metrics, position (epoch, step, batch), the epoch's running loss, and the flags callbacks
set (`stop_training`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainwise.losses import LossFn
from trainwise.metrics import Metric, accumulator_dtype


@dataclass
class TrainState:
    """What the loop knows, shared with every callback."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: LossFn | None  # None: the model computes its loss (losses.model_loss)
    metrics: list[Metric]
    epochs: int
    steps_per_epoch: int
    device: torch.device
    epoch: int = 0  # the current epoch, counted from 0
    step: int = 0  # optimizer steps taken so far
    max_steps: int | None = None  # training ends after this many optimizer steps, mid-epoch if need be
    batch: int = 0  # batches done in the current epoch
    accumulate: int = 1  # batches whose gradients add up to one optimizer step
    stepped: bool = True  # the latest batch ended with an optimizer step (not so mid-accumulation)
    val_every: int = 1  # validate every this many epochs (and the last)
    val_every_steps: int | None = None  # also validate every this many optimizer steps within an epoch
    val_batches: Any = None  # the validation batch source (data.BatchSource), if any
    val_metrics: list[Metric] = field(default_factory=list)  # copies of `metrics`: validating mid-epoch keeps theirs
    validated: bool = False  # this epoch's validation ran (its val_* logs are NaN otherwise)
    batch_samples: int = 0  # the current batch's samples
    accumulated_samples: int = 0  # with accumulate > 1 and a mean loss: the samples in the gradients so far
    stop_training: bool = False
    interrupted: str | None = None  # SIGINT/SIGTERM arrived: the loop stops after the current step
    batches: Any = None  # the training batch source (data.InMemoryBatches or LoaderBatches)
    transform: Any = None  # the inputs' fitted scaling (data.AffineTransform), if any
    network: Any = None  # what the step calls: the model, or its DistributedDataParallel (or compiled) wrapper
    eager_network: Any = None  # with compile: the network uncompiled, which the doctor's sampled steps run
    amp: Any = None  # mixed precision (MixedPrecision: autocast, fp16's gradient scaler), else None
    ema: nn.Module | None = None  # with fit(ema=...), the weights' moving average, which validation runs
    doctor: Any = None  # the doctor's callback (trainwise.doctor.callback), when the doctor runs
    before_step: list[Any] = field(default_factory=list)  # the callbacks' on_before_step methods that do something
    distributed: Any = None  # this process's place in a distributed run (distributed.Distributed), else None
    callbacks: list[Any] = field(default_factory=list)
    epoch_samples: int = 0  # the current epoch's samples so far
    summed_loss: bool = False  # the loss adds over a batch's samples (reduction='sum'), so epochs add them too
    modules: list[nn.Module] = field(default_factory=list)  # the model's modules, to check their train mode
    history: dict[str, list[float]] = field(default_factory=dict)
    validations: dict[str, list[float]] = field(default_factory=dict)  # with val_every_steps: each validation's row
    status: str = "running"
    findings: list[Any] = field(default_factory=list)  # the doctor's, when it runs
    doctor_actions: list[str] = field(default_factory=list)
    run: Path | None = None  # the run's record folder, once RunRecorder has made it (fit with run_dir)
    # The epoch's running loss total lives on the device: the latest step's loss waits in _step_loss and
    # is added when the next step comes or when `epoch_loss` is read, so that a one-step (full-batch)
    # epoch reads its loss once and runs no tensor operation for the sum at all.
    _epoch_total: Any = field(default=None, repr=False)
    _step_loss: Any = field(default=None, repr=False)
    _step_size: int = field(default=0, repr=False)

    def evaluated_model(self) -> nn.Module:
        """What validation runs: the model, or with fit(ema=...) its averaged weights."""
        return self.ema if self.ema is not None else self.model

    @property
    def total_steps(self) -> int:
        """The optimizer steps the whole run takes: the epochs' (a step per `accumulate` batches, and one for
        an epoch's leftover batches), or max_steps if fewer."""
        steps = self.epochs * -(-self.steps_per_epoch // self.accumulate)
        return steps if self.max_steps is None else min(steps, self.max_steps)

    @property
    def epoch_loss(self) -> Any:
        """The current epoch's loss total on the device (sum of batch loss x batch size, or of the summed
        losses), None before its first step. Checkpoints save it mid-epoch and set it on resume."""
        if self._step_loss is not None:
            self._fold_step_loss()
        return self._epoch_total

    @epoch_loss.setter
    def epoch_loss(self, value: Any) -> None:
        self._epoch_total, self._step_loss = value, None

    @property
    def steps_done(self) -> bool:
        """Has training taken its max_steps?"""
        return self.max_steps is not None and self.step >= self.max_steps

    def start_epoch_loss(self) -> None:
        self._epoch_total, self._step_loss, self.epoch_samples = None, None, 0

    def add_step_loss(self, loss: torch.Tensor, size: int) -> None:
        """A finished step's detached loss (mean over its `size` samples, or their sum)."""
        if self._step_loss is not None:
            self._fold_step_loss()
        self._step_loss, self._step_size = loss, size
        self.epoch_samples += size

    def _fold_step_loss(self) -> None:
        loss, self._step_loss = self._step_loss, None
        weight = 1 if self.summed_loss else self._step_size
        if self._epoch_total is None:
            self._epoch_total = torch.zeros((), dtype=accumulator_dtype(loss.device), device=loss.device)
        self._epoch_total.add_(loss, alpha=weight)  # one kernel, in the total's precision

    def epoch_mean_loss(self) -> float:
        """The epoch's loss as logged: the sample-weighted mean of its batch losses (the total when
        summed). One host read."""
        if self._epoch_total is None and self._step_loss is not None:  # a one-step epoch: its own loss
            return float(self._step_loss.item())  # equal to the total / samples, exactly, in float64
        total = self.epoch_loss
        if total is None:
            return math.nan
        return float(total.item()) if self.summed_loss else float(total.item()) / max(self.epoch_samples, 1)
