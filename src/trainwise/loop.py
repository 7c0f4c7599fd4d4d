"""The training loop: fit() -> _train_epoch() -> train_step(), and evaluate() / predict().

fit checks its arguments (_check_arguments), assembles the data, model, optimizer, state and callbacks
(_assemble), then runs the epochs below. The step is a function a user can replace: fit(step=...).
Callback hooks fire in this order (see trainwise.callbacks):

    on_train_begin
      for each epoch:
        on_epoch_begin
          for each batch:
            on_batch_begin      logs: size
            train_step:         forward_and_loss, then backward_and_step:
              zero_grad, backward
              on_before_step    gradients are ready (clipping)
              optimizer.step
            every val_every_steps optimizer steps (fit(val_every_steps=N)), but not after an epoch's last batch:
              evaluate() on the validation data
              on_validation_end logs: step, epoch (fractional), the epoch's loss and metrics so far, val_*
            on_batch_end        logs: loss (a device tensor: no host sync), size, inputs, target
            (after SIGINT/SIGTERM the epoch ends here: status "interrupted")
        evaluate() on the validation data, if any, every val_every epochs and the last
        on_validation_end       logs gain val_loss and val_<metric> (only when validated; else they are NaN)
        on_epoch_end            logs: loss, <metric>, val_*, lr, epoch_seconds
    on_train_end                always, also after an error; logs: status

Losses and metrics are summed on the device and read once per epoch. fit(resume=...) restores a
checkpoint (trainwise.checkpoint) after on_train_begin and continues at the batch it stopped at.
Under torchrun (trainwise.distributed) the step calls the model's DistributedDataParallel wrapper on
this process's share of the batch, and the epoch's sums are added over the processes.
"""

from __future__ import annotations

import copy
import math
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainwise import data as data_lib
from trainwise import distributed, rng
from trainwise._display import brief_repr, results_html, results_table
from trainwise.callbacks import (
    EMA,
    Callback,
    CallbackList,
    GradientClipping,
    History,
    Logs,
    LRScheduler,
    MixedPrecision,
    ProgressBar,
    best_epoch,
)
from trainwise.errors import ConfigError, DataError
from trainwise.fast_path import step_optimizer, zero_grad
from trainwise.losses import LossFn, check_targets, loss_reduction, make_loss, model_loss
from trainwise.metrics import Metric, accumulator_dtype, compute_all, make_metrics
from trainwise.models import inference, model_device
from trainwise.optim import make_optimizer
from trainwise.state import TrainState

PRECISIONS = ("32", "bf16", "fp16")


@dataclass
class FitResult:
    """What fit returns: the trained model, per-epoch history, the best epoch and where records went.

    Args:
        model: the trained model (with fit(ema=...), its averaged weights).
        history: each logged key's value per epoch (loss, val_loss, metrics, lr, epoch_seconds).
        best: the epoch with the lowest finite val_loss (else loss), 1-based, with its logged values.
        run: the run's record folder (fit with run_dir), else None.
        findings, doctor_actions: the doctor's findings and its repairs.
        transform: the inputs' fitted scaling (normalize=...), which predict applies.
        status: "completed", "stopped" (early stopping, max_steps), "interrupted" or "failed".
        seconds, device: the training time and where it ran.
        lr_find: the LR finder's result, with lr="auto".
        validations: with fit(val_every_steps=N), every validation's values by step: step, epoch (epochs
            done, fractional within one), loss and metrics (the epoch's so far), val_loss, val_<metric>.
    """

    model: nn.Module
    history: dict[str, list[float]]
    best: dict[str, float]
    run: Path | None = None
    findings: list[Any] = field(default_factory=list)
    doctor_actions: list[str] = field(default_factory=list)
    transform: data_lib.AffineTransform | None = None
    status: str = "completed"
    seconds: float = 0.0  # training time, as recorder.training_seconds defines it
    device: str = "cpu"
    lr_find: Any = None  # the LR finder's result when fit ran with lr="auto"
    validations: dict[str, list[float]] = field(default_factory=dict)  # with val_every_steps: a row per validation

    @property
    def epochs(self) -> int:
        return len(self.history.get("loss", []))

    def final(self) -> dict[str, float]:
        """The last epoch's logged values."""
        return {k: v[-1] for k, v in self.history.items() if v and k != "epoch_seconds"}

    def summary(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "epochs": self.epochs,
            "seconds": round(self.seconds, 3),
            "device": self.device,
            "final": self.final(),
            "best": self.best,
            "run": str(self.run) if self.run else None,
            "findings": [finding.to_dict() for finding in self.findings],
            "repairs": self.doctor_actions,
            **({"lr_find": _lr_find_summary(self.lr_find)} if self.lr_find is not None else {}),
        }

    def predict(self, X: Any) -> torch.Tensor:
        """Predictions for new inputs, with the training scaling applied."""
        return predict(self.model, X, transform=self.transform)

    def _title(self) -> str:
        return f"fit {self.status}: {self.epochs} epochs in {self.seconds:.2f}s on {self.device}"

    def __rich__(self) -> Any:
        return results_table(self._title(), self.final(), self.best, caption=f"records: {self.run}" if self.run else "")

    def __repr__(self) -> str:
        final = self.final()
        fields = {
            "status": self.status,
            "epochs": self.epochs,
            "loss": final.get("loss"),
            "val_loss": final.get("val_loss"),
            "best_epoch": int(self.best["epoch"]) if "epoch" in self.best else None,
            "seconds": round(self.seconds, 2),
            "run": str(self.run) if self.run else None,
            "findings": len(self.findings) or None,
        }
        return brief_repr("FitResult", fields)

    def _repr_html_(self) -> str:
        return results_html(self._title(), self.final(), self.best, caption=f"records: {self.run}" if self.run else "")


def fit(
    model: nn.Module,
    data: Any,
    *,
    loss: str | LossFn | None,
    optimizer: str | torch.optim.Optimizer = "sgd",
    lr: float | str | None = None,
    epochs: int = 1,
    max_steps: int | None = None,
    batch_size: int | None = None,
    accumulate: int = 1,
    ema: float | None = None,
    workers: int = 0,
    val_every: int = 1,
    val_every_steps: int | None = None,
    val_split: float = 0.0,
    val_data: Any = None,
    metrics: Sequence[str | Metric | Any] = (),  # Any: torchmetrics.Metric objects too
    seed: int = 0,
    device: str | torch.device = "auto",
    callbacks: Iterable[Callback] = (),
    run_dir: str | Path | None = None,
    progress: bool | str = True,
    normalize: data_lib.Normalize = None,
    stratify: bool = False,
    shuffle: bool = True,
    scheduler: Any = None,
    clip_grad_norm: float | None = None,
    doctor: str = "warn",
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    run_name: str | None = None,
    config: dict[str, Any] | None = None,
    resume: str | Path | None = None,
    compile: bool = False,
    precision: str = "32",
    step: StepFunction | None = None,
    **optimizer_kwargs: Any,
) -> FitResult:
    """Train `model` on `data` and return a FitResult.

    Args:
        data: (X, y) tensors or arrays, a torch Dataset or DataLoader, or a built-in dataset name. A Dataset's
            items may also be (x1, x2, ..., y) tuples or dicts of tensors (trainwise.data).
        loss, optimizer: names or objects; extra keyword arguments go to the optimizer (momentum=0.9, ...).
            loss=None: the model computes its loss from the inputs and the target, as nanoGPT's and Hugging
            Face's models do (losses.model_loss).
        lr: the learning rate, or "auto" to run the LR finder first.
        epochs, max_steps: training ends after `epochs` epochs, or sooner once `max_steps` optimizer steps
            are taken (that last epoch is partial: validated and logged like the others).
        batch_size: None trains on the full batch.
        accumulate: add the gradients of this many batches before each optimizer step (the same steps
            as batches `accumulate` times larger, in the memory of one); an epoch's leftover batches make
            one last, smaller step.
        ema: keep an exponential moving average of the weights with this decay (0.999), updated after each
            optimizer step; validation runs on it and the model ends with it (callbacks.EMA).
        workers: DataLoader worker processes that load a torch Dataset's items (decoding, augmenting) while
            the step runs (started each epoch, so the run is the one without them), pinned memory on CUDA.
        val_split, val_data: a fraction of the data held out for validation (stratify=True: per class), or
            validation data of its own.
        val_every: validate every this many epochs, and after the last; the epochs between log their val_*
            values as NaN, and early stopping, plateau schedules and checkpoints' rankings skip them.
        val_every_steps: also validate every this many optimizer steps within an epoch (a long epoch's
            progress); those validations go to FitResult.validations (validations.csv), the progress
            display, the loggers and the doctor, while the epochs' history, early stopping and checkpoints'
            rankings keep to the epochs' validations.
        metrics: names ("accuracy", "mae", "r2", ...), trainwise Metrics or torchmetrics.Metric objects,
            computed exactly over each epoch.
        seed, shuffle: the seed of the run's initialisation, split and batch order; shuffle the batches each epoch.
        device: "auto" (CUDA, else MPS, else the CPU), or a device.
        callbacks: Callback objects (EarlyStopping, Checkpoint, loggers, your own), hooks as listed above.
        progress: True, False or a ProgressBar mode ("rich", "notebook", "plain").
        clip_grad_norm: clip the gradients' total norm to this before each step.
        normalize: scale the inputs ('standard', 'minmax' or a factor), fitted on the training split only.
        run_dir: the runs folder: records go to run_dir/<timestamp>-<run_name>/; feature_names and
            class_names label them.
        doctor: "warn" (print findings), "stop" (raise TrainingError at the first error), "repair" (roll
            back and lower the lr when the loss diverges), "quiet" (collect only) or "off"; findings land
            in FitResult.findings.
        resume: a checkpoint (a Checkpoint callback's step-N folder, or the run folder for its latest one)
            to continue from exactly, with the same data and settings; records continue in that run's folder.
        compile: run the training step's forward through torch.compile (the doctor's sampled steps, and
            evaluation, run the model as it is).
        precision: "32", or "bf16" / "fp16" mixed precision (torch.autocast; fp16 with a gradient scaler;
            on CUDA, convolutional models take channels_last inputs).
        scheduler: a scheduler's name ("cosine", "onecycle", "warmup_cosine", ...; its options through
            callbacks=[LRScheduler(name, ...)]), a torch scheduler built on `optimizer`, or a function of the
            optimizer that returns one; stepped per epoch (per optimizer step for onecycle and warmup_cosine).
        step: the training step, `step(state, batch) -> loss`; train_step by default (see its docstring).

    fit seeds torch's global random generator with `seed` (the same seed, the same run) and puts the global
    random states (torch, NumPy, Python) back as they were when it returns.
    """
    _check_arguments(
        doctor, epochs, max_steps, batch_size, accumulate, val_every, val_every_steps, lr, optimizer, precision, compile
    )
    with rng.kept():  # fit seeds torch's global generator (init, dropout); the caller's state comes back after
        run = _assemble(
            model, data, loss=loss, optimizer=optimizer, lr=lr, epochs=epochs, max_steps=max_steps,
            batch_size=batch_size, accumulate=accumulate, ema=ema, workers=workers, val_every=val_every,
            val_every_steps=val_every_steps, val_split=val_split, val_data=val_data, metrics=metrics, seed=seed,
            device=device, callbacks=callbacks, run_dir=run_dir, progress=progress, normalize=normalize,
            stratify=stratify, shuffle=shuffle, scheduler=scheduler, clip_grad_norm=clip_grad_norm, doctor=doctor,
            feature_names=feature_names, class_names=class_names, run_name=run_name, config=config, resume=resume,
            compile=compile, precision=precision, optimizer_kwargs=optimizer_kwargs,
        )  # fmt: skip
        state, cbs, resumed = run.state, run.callbacks, run.resumed
        logs: Logs = {}
        if resumed is not None:
            resumed.restore_progress(state)  # weights, position, history: before the callbacks start
        cbs.on_train_begin(logs)
        try:
            if resumed is not None:
                resumed.restore_training(state, cbs.callbacks)  # optimizer, callbacks, batch order, random states
            with _stop_on_signals(state):
                for epoch in range(state.epoch, epochs):
                    if state.stop_training or state.steps_done:  # early stopping (also a resumed run's last word)
                        break
                    state.epoch, epoch_start = epoch, time.perf_counter()
                    if state.batch == 0:
                        _start_epoch(state)
                    cbs.on_epoch_begin(epoch, {})
                    logs = _train_epoch(state, cbs, step or train_step)
                    if state.interrupted:
                        break
                    state.validated = state.val_batches is not None and _validation_due(state, epoch)
                    if state.validated:
                        validate(state, cbs, logs)
                    elif state.val_batches is not None:
                        # NaN: the history's columns stay aligned, and plots join the gaps
                        logs.update({f"val_{k}": math.nan for k in ("loss", *(m.name for m in state.metrics))})
                    state.batch = 0
                    logs["lr"] = float(state.optimizer.param_groups[0]["lr"])
                    logs["epoch_seconds"] = time.perf_counter() - epoch_start
                    cbs.on_epoch_end(epoch, logs)
            state.status = "interrupted" if state.interrupted else "stopped" if state.stop_training else "completed"
        except KeyboardInterrupt:  # a second Ctrl-C, or one outside the main thread: no consistent point to save
            state.status, state.interrupted = "interrupted", None
        except BaseException:
            state.status = "failed"
            raise
        finally:
            cbs.on_train_end({**logs, "status": state.status})
        return run.result()


def _validation_due(state: TrainState, epoch: int) -> bool:
    """Every val_every epochs, the last epoch, and the one max_steps ends."""
    return (epoch + 1) % state.val_every == 0 or epoch + 1 == state.epochs or state.steps_done


def validate(state: TrainState, cbs: CallbackList, logs: Logs) -> None:
    """Evaluate on the validation data: `logs` gain val_loss and val_<metric>, the on_validation_end callbacks
    run, and with val_every_steps the values become a row of state.validations."""
    val_logs = evaluate(state.evaluated_model(), state.val_batches, loss=state.loss_fn, metrics=state.val_metrics)
    logs.update({f"val_{k}": v for k, v in val_logs.items()})
    if state.val_every_steps is not None:
        for key, value in {**_position(state), **logs}.items():
            state.validations.setdefault(key, []).append(float(value))
    cbs.on_validation_end(state.epoch, logs)


def _position(state: TrainState) -> Logs:
    """Where training is: the optimizer steps taken, the epochs done (a fraction within an epoch)."""
    return {"step": state.step, "epoch": state.epoch + state.batch / state.steps_per_epoch}


def _validation_step_due(state: TrainState) -> bool:
    """fit(val_every_steps=N): after every N-th optimizer step, except after an epoch's last batch (the epoch's
    validation follows) and the step training ends at."""
    every = state.val_every_steps
    return (
        every is not None
        and state.stepped
        and state.step % every == 0
        and state.batch < state.steps_per_epoch
        and state.val_batches is not None
        and not state.steps_done
    )


def _check_arguments(
    doctor: str,
    epochs: int,
    max_steps: int | None,
    batch_size: int | None,
    accumulate: int,
    val_every: int,
    val_every_steps: int | None,
    lr: Any,
    optimizer: Any,
    precision: str,
    compile: Any,
) -> None:
    """fit's arguments that are wrong whatever the data: a ConfigError naming the argument and the fix."""
    from trainwise.doctor.callback import MODES

    if doctor not in MODES:
        raise ConfigError(f"doctor: {doctor!r} is not a mode; use one of {', '.join(MODES)}")
    if epochs < 1:
        raise ConfigError(f"epochs: must be at least 1, got {epochs}")
    if max_steps is not None and max_steps < 1:
        raise ConfigError(f"max_steps: must be at least 1 (or None: no limit but the epochs), got {max_steps}")
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"batch_size: must be at least 1 (or None for the full batch), got {batch_size}")
    counts = (("accumulate", accumulate, "batches"), ("val_every", val_every, "epochs"),
              ("val_every_steps", 1 if val_every_steps is None else val_every_steps, "steps"))  # fmt: skip
    for name, value, unit in counts:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name}: must be a whole number of {unit}, at least 1, got {value!r}")
    if lr is None and not isinstance(optimizer, torch.optim.Optimizer):
        raise ConfigError("lr: a learning rate is needed when the optimizer is given by name (or lr='auto')")
    if isinstance(lr, str) and lr != "auto":
        raise ConfigError(f"lr: {lr!r} is not a learning rate; give a number or 'auto' (run the LR finder)")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision: {precision!r} is not allowed; use {', '.join(repr(p) for p in PRECISIONS)}")
    if not isinstance(compile, bool):
        raise ConfigError(f"compile: must be true or false, got {compile!r}")


@dataclass
class _Run:
    """What fit assembled before its first epoch, and what it returns from."""

    state: TrainState
    callbacks: CallbackList
    transform: data_lib.AffineTransform | None
    recorder: Any  # recorder.RunRecorder, with run_dir
    lr_search: Any  # the LR finder's result, with lr="auto"
    resumed: Any  # checkpoint.TrainingCheckpoint, with resume

    def result(self) -> FitResult:
        from trainwise.recorder import training_seconds

        state = self.state
        return FitResult(
            model=state.model,
            history=state.history,
            best=best_epoch(state.history),
            run=self.recorder.path if self.recorder else None,
            findings=state.findings,
            doctor_actions=state.doctor_actions,
            transform=self.transform,
            status=state.status,
            seconds=training_seconds(state.history),  # the run record's and the report's number too
            device=str(state.device),
            lr_find=self.lr_search,
            validations=state.validations,
        )


def _assemble(
    model: nn.Module,
    data: Any,
    *,
    loss: str | LossFn | None,
    optimizer: str | torch.optim.Optimizer,
    lr: float | str | None,
    epochs: int,
    max_steps: int | None,
    batch_size: int | None,
    accumulate: int,
    ema: float | None,
    workers: int,
    val_every: int,
    val_every_steps: int | None,
    val_split: float,
    val_data: Any,
    metrics: Sequence[str | Metric | Any],
    seed: int,
    device: str | torch.device,
    callbacks: Iterable[Callback],
    run_dir: str | Path | None,
    progress: bool | str,
    normalize: data_lib.Normalize,
    stratify: bool,
    shuffle: bool,
    scheduler: str | None,
    clip_grad_norm: float | None,
    doctor: str,
    feature_names: Sequence[str] | None,
    class_names: Sequence[str] | None,
    run_name: str | None,
    config: dict[str, Any] | None,
    resume: str | Path | None,
    compile: bool,
    precision: str,
    optimizer_kwargs: dict[str, Any],
) -> _Run:
    """Everything fit's epochs need: the data prepared and split, the model on its device, the loss, the
    optimizer (after the LR finder, with lr="auto"), the training state and the callbacks in firing order."""
    from trainwise.checkpoint import Checkpoint, TrainingCheckpoint
    from trainwise.doctor.callback import doctor_callback

    resumed = TrainingCheckpoint.read(resume) if resume is not None else None
    torch.manual_seed(seed)
    target_device = data_lib.resolve_device(device)
    context = distributed.setup(target_device)  # under torchrun: this process's rank; else None
    if context is not None:
        target_device = distributed.device_for(context, target_device)
        if doctor == "repair":
            raise ConfigError("doctor: 'repair' would roll one process back alone; use 'warn' or 'stop' here")
        if not context.main:  # process 0 keeps the records, shows progress and runs the doctor
            run_dir, progress, doctor = None, False, "off"
    prepared = data_lib.prepare_data(
        data,
        batch_size=batch_size,
        val_split=val_split,
        val_data=val_data,
        stratify=stratify,
        normalize=normalize,
        shuffle=shuffle,
        seed=seed,
        device=target_device,
        shard=context.shard if context is not None else None,
        workers=workers,
    )
    model.to(target_device)
    loss_fn = make_loss(loss) if loss is not None else None
    if isinstance(loss_fn, nn.Module):
        loss_fn.to(target_device)  # its class weights, if any, where the outputs are
    if loss_fn is not None and not prepared.has_targets:
        raise DataError(
            "data: the batches hold inputs but no target for the loss to compare with; give (inputs, target) "
            "items, or loss=None for a model that computes its own loss"
        )
    in_memory = prepared.train.tensors()
    if in_memory is not None and loss_fn is not None:
        check_targets(loss_fn, in_memory[1])
    lr_search = None
    if lr == "auto" and resumed is not None:
        lr = 0.0  # the checkpoint's optimizer state holds the lr the finder chose
    elif lr == "auto":
        from trainwise.lr_finder import sweep

        # the sweep restores the weights, the optimizer and every random state it touched
        budget = epochs * len(prepared.train) if max_steps is None else min(epochs * len(prepared.train), max_steps)
        lr_search = sweep(
            model, prepared.train, loss=loss_fn, optimizer=optimizer, budget_steps=budget, seed=seed, **optimizer_kwargs
        )
        lr = lr_search.suggestion if context is None else distributed.broadcast_number(lr_search.suggestion)
        if isinstance(optimizer, torch.optim.Optimizer):
            for group in optimizer.param_groups:
                group["lr"] = lr
    opt = make_optimizer(optimizer, model.parameters(), float(lr) if lr is not None else 0.0, **optimizer_kwargs)
    metric_objects = make_metrics(metrics)
    state = TrainState(
        model=model,
        optimizer=opt,
        loss_fn=loss_fn,
        metrics=metric_objects,
        val_metrics=copy.deepcopy(metric_objects),
        epochs=epochs,
        steps_per_epoch=len(prepared.train),
        max_steps=max_steps,
        accumulate=accumulate,
        val_every=val_every,
        val_every_steps=val_every_steps,
        val_batches=prepared.val,
        device=target_device,
        batches=prepared.train,
        transform=prepared.transform,
        distributed=context,
    )
    summed = loss_reduction(loss_fn) == "sum"
    state.summed_loss = summed
    state.modules = list(model.modules())
    state.network = distributed.wrap(model, target_device, summed_loss=summed) if context is not None else model
    extra: list[Callback] = [History()]
    if precision != "32":
        state.amp = MixedPrecision(precision, target_device, model)
        extra.append(state.amp)  # its gradient scaler's state rides in checkpoints
    if scheduler:
        extra.append(LRScheduler(scheduler))
    if clip_grad_norm:
        extra.append(GradientClipping(max_norm=clip_grad_norm))
    if ema is not None:
        extra.append(EMA(ema))  # before the callbacks: its average is in place when early stopping restores
    callbacks = list(callbacks)
    if context is not None:
        extra.append(distributed.StopTogether())
        if not context.main:  # records, checkpoints and loggers: process 0's
            callbacks = [cb for cb in callbacks if not cb.after_records]
    extra.extend(cb for cb in callbacks if not cb.after_records)
    bar = ProgressBar(mode="auto" if progress is True else str(progress)) if progress else None
    if bar is not None and lr_search is not None:
        bar.print(f"lr='auto': {lr_search}")
    if doctor != "off":
        train, val = prepared.train, prepared.val
        # the whole data set, when it is in memory: the doctor checks it before the first step
        in_memory, held_out = train.tensors(), val.tensors() if val is not None else None
        whole = (*in_memory, *(held_out or (None, None))) if in_memory is not None else None
        printer = bar.print if bar is not None else None
        state.doctor = doctor_callback(doctor, data=whole, feature_names=feature_names, printer=printer)
        extra.append(state.doctor)
    if bar is not None:
        extra.append(bar)
    recorder = None
    if run_dir is not None:
        from trainwise.recorder import RunRecorder

        name = run_name or type(model).__name__.lower()
        recorder = RunRecorder(
            Path(run_dir),
            name,
            config,
            prepared,
            feature_names=feature_names,
            class_names=class_names,
            lr_find=lr_search,
            resume=resumed.run if resumed is not None else None,
        )
        extra.append(recorder)
    # loggers and checkpoints: after the records are complete and every other callback has run
    extra.extend(sorted((cb for cb in callbacks if cb.after_records), key=lambda cb: isinstance(cb, Checkpoint)))
    cbs = CallbackList(extra, state)
    state.before_step = cbs.active("on_before_step")
    if compile:
        state.eager_network = state.network
        state.network = _Compiled(state.network)
    return _Run(state, cbs, prepared.transform, recorder, lr_search, resumed)


def _lr_find_summary(result: Any) -> dict[str, Any]:
    keys = ("suggestion", "min_lr", "confidence", "explanation")
    return {key: value for key, value in result.to_dict().items() if key in keys}


def _start_epoch(state: TrainState) -> None:
    for metric in state.metrics:
        metric.reset()
    state.start_epoch_loss()


def _train_epoch(state: TrainState, cbs: CallbackList, step: StepFunction) -> Logs:
    """The epoch's remaining training batches (all of them, unless resuming mid-epoch); returns the
    epoch's loss and metrics."""
    if not all(module.training for module in state.modules):  # model.train() costs a few microseconds
        state.model.train()
    # the callbacks that implement the per-batch hooks, called directly (most have none: no logs to build)
    begin, end = cbs.active("on_batch_begin"), cbs.active("on_batch_end")
    for xb, yb in state.batches.iterate(skip=state.batch):
        batch, size = state.batch, data_lib.samples_in(xb)
        logs: Logs
        if begin:
            logs = {"size": size}
            for on_batch_begin in begin:
                on_batch_begin(batch, logs)
        state.batch_samples = size
        loss = step(state, (xb, yb))
        state.add_step_loss(loss, size)
        state.batch = batch + 1
        if _validation_step_due(state):
            validate(state, cbs, {**_position(state), **_epoch_logs(state)})
        if end:
            logs = {"loss": loss, "size": size, "inputs": xb, "target": yb}
            for on_batch_end in end:
                on_batch_end(batch, logs)
        if state.stepped and (state.interrupted or state.steps_done):  # not mid-accumulation: a consistent point
            break
    return _epoch_logs(state)


def _epoch_logs(state: TrainState) -> Logs:
    """The epoch's loss and metrics so far (one host read)."""
    if state.distributed is not None:  # the epoch over every process's samples
        return distributed.epoch_logs(state, state.summed_loss)
    if not state.metrics:
        return {"loss": state.epoch_mean_loss()}
    return {"loss": state.epoch_mean_loss(), **compute_all(state.metrics)}


StepFunction = Callable[[TrainState, data_lib.Batch], torch.Tensor]


def train_step(state: TrainState, batch: data_lib.Batch) -> torch.Tensor:
    """fit's training step on one batch: forward and loss, zero the gradients, backward, the on_before_step
    callbacks (gradient clipping), the optimizer step, the metrics. Returns the loss, detached and still on
    the device (reading it would wait for the device: fit sums the epoch's losses there).

    Replace it with fit(step=my_step), a function of (state, batch) that returns the batch's loss:
    state.network is what to call (the model, or its DistributedDataParallel or compiled wrapper),
    state.loss_fn the loss, state.model the model itself. A replacement that ends with
    backward_and_step(state, loss) keeps gradient clipping, mixed precision's scaler and the step count;
    one that updates the metrics (`metric.update(output, y)` for each of state.metrics) keeps them.

    Args:
        state: the loop's TrainState (shared with the callbacks).
        batch: the (inputs, target) pair, on the training device (trainwise.data: inputs may be a tuple or
            a dict of tensors, and the target None).
    """
    xb, yb = batch
    output, loss = forward_and_loss(state, xb, yb)
    backward_and_step(state, loss)
    if yb is not None:
        for metric in state.metrics:
            metric.update(output, yb)
    return loss.detach()


def forward_and_loss(state: TrainState, xb: Any, yb: Any) -> tuple[Any, torch.Tensor]:
    """The network's output on a batch and its loss: under autocast with mixed precision; with compile, the
    doctor's sampled steps run the model uncompiled (its hooks come and go, which a graph would recompile for).
    Without a loss function (fit(loss=None)) the model computes its own loss (see losses.model_loss).

    Args:
        state: the loop's TrainState.
        xb, yb: the batch's inputs and target.
    """
    network = state.network
    if state.eager_network is not None and state.doctor is not None:
        doctor = state.doctor.doctor  # the callback's Doctor, once training began
        network = state.eager_network if doctor is not None and doctor.sampled else network
    amp = state.amp
    if amp is None:
        return model_loss(network, xb, yb, state.loss_fn)
    with amp.autocast():
        return model_loss(network, amp.inputs(xb) if isinstance(xb, torch.Tensor) else xb, yb, state.loss_fn)


def backward_and_step(state: TrainState, loss: torch.Tensor) -> None:
    """Zero the gradients, backward, the on_before_step callbacks, the optimizer step; counts the step.
    With fp16 the backward is scaled and the gradients unscaled before the callbacks see them, and the
    scaler skips a step whose gradients are not finite. With fit(accumulate=k) the gradients are zeroed
    before the first batch of each k and the step comes after the last (state.stepped says whether it did):
    the batches' gradients add up to their mean loss's (to their total's, with a summed loss).

    Args:
        state: the loop's TrainState.
        loss: the batch's loss, not detached.
    """
    optimizer = state.optimizer
    accumulating = state.accumulate > 1
    batch = state.batch
    if not accumulating or batch % state.accumulate == 0:
        zero_grad(optimizer)
    state.stepped = not accumulating or (batch + 1) % state.accumulate == 0 or batch + 1 == state.steps_per_epoch
    backward = loss
    if accumulating and not state.summed_loss:
        # the group's gradient is its samples' mean: each batch adds its sum, divided once by the group's size
        backward = loss * state.batch_samples
        state.accumulated_samples += state.batch_samples
    scaler = state.amp.scaler if state.amp is not None else None
    if scaler is None:
        backward.backward()
    else:
        scaler.scale(backward).backward()
    if not state.stepped:
        return
    if scaler is not None:
        scaler.unscale_(optimizer)
    if accumulating and not state.summed_loss:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        torch._foreach_div_(grads, float(state.accumulated_samples))
        state.accumulated_samples = 0
    if state.before_step:
        logs = {"loss": loss}
        for on_before_step in state.before_step:
            on_before_step(state.batch, logs)
    if scaler is None:
        step_optimizer(optimizer)
    else:
        scaler.step(optimizer)
        scaler.update()
    state.step += 1


class _Compiled:
    """torch.compile(network); a compiler that cannot run here surfaces at the first call, as a ConfigError."""

    def __init__(self, network: nn.Module) -> None:
        self.compiled = torch.compile(network)
        self.checked = False

    def __call__(self, *args: Any) -> Any:
        if self.checked:
            return self.compiled(*args)
        try:
            output = self.compiled(*args)
        except torch._dynamo.exc.BackendCompilerFailed as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"compile: torch.compile cannot run here ({reason}); set compile = false") from None
        self.checked = True
        return output


@contextmanager
def _stop_on_signals(state: TrainState) -> Iterator[None]:
    """SIGINT (Ctrl-C, a notebook's interrupt) and SIGTERM end training after the current step, so a
    checkpoint saved then is consistent; a second signal interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def stop(signum: int, frame: Any) -> None:
        if state.interrupted:
            raise KeyboardInterrupt
        state.interrupted = signal.Signals(signum).name

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def evaluate(
    model: nn.Module,
    data: Any,
    *,
    loss: str | LossFn | None,
    metrics: Sequence[str | Metric | Any] = (),  # Any: torchmetrics.Metric objects too
    batch_size: int | None = None,
    transform: data_lib.AffineTransform | None = None,
) -> dict[str, float]:
    """Loss and metrics of `model` over all of `data`, in eval mode without gradients.

    The loss is the sample-weighted mean over batches (or the total, for reduction='sum'); loss=None takes
    the loss the model computes (see losses.model_loss).

    Args:
        model: the model, evaluated on the device its parameters are on.
        data: (X, y) tensors or arrays, a torch Dataset or DataLoader, or a built-in dataset name.
        loss: a loss name or callable, or None (the model computes it).
        metrics: metric names ("accuracy", "mae", ...), trainwise Metrics or torchmetrics.Metric objects.
        batch_size: rows per batch; None: 4096 rows (1024 items of a Dataset).
        transform: the inputs' fitted scaling (FitResult.transform), applied to in-memory X.

    Returns:
        {"loss": ..., <metric>: ...}
    """
    device = model_device(model)
    batches = data_lib.batches_for(data, batch_size, device, transform)
    loss_fn = make_loss(loss) if loss is not None else None
    metric_objs = make_metrics(metrics)
    for metric in metric_objs:
        metric.reset()
    summed = loss_reduction(loss_fn) == "sum"
    total = torch.zeros((), device=device, dtype=accumulator_dtype(device))
    seen = 0
    with inference(model):
        for xb, yb in batches.iterate():
            output, batch_loss = model_loss(model, xb, yb, loss_fn)
            size = data_lib.samples_in(xb)
            total += batch_loss if summed else batch_loss * size
            seen += size
            if yb is not None and output is not None:
                for metric in metric_objs:
                    metric.update(output, yb)
    value = total.item() if summed else total.item() / max(seen, 1)
    return {"loss": value, **compute_all(metric_objs)}


def predict(
    model: nn.Module, X: Any, *, transform: data_lib.AffineTransform | None = None, batch_size: int = 4096
) -> torch.Tensor:
    """Model outputs for inputs X (tensor or array), in eval mode, returned on the CPU.

    Args:
        model: the model, run on the device its parameters are on.
        X: the inputs, one row per sample (a 1-D X is one feature per sample).
        transform: the inputs' fitted scaling (FitResult.transform), applied first.
        batch_size: rows per forward pass.
    """
    device = model_device(model)
    inputs = data_lib.as_tensor(X, "X")
    if inputs.ndim == 1:
        inputs = inputs.unsqueeze(1)
    if transform is not None:
        inputs = transform(inputs)
    outputs = []
    with inference(model):
        for start in range(0, inputs.shape[0], batch_size):
            outputs.append(model(inputs[start : start + batch_size].to(device)).cpu())
    return torch.cat(outputs) if outputs else torch.empty(0)
