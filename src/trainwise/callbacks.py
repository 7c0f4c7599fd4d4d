"""Callbacks: code that runs at fixed points of the training loop (see trainwise.loop for the order).

A callback subclasses `Callback` and overrides the hooks it needs; `self.state` is the loop's
`TrainState` (model, optimizer, epoch, step, history, and the `stop_training` flag). History,
progress display, early stopping, LR scheduling and gradient clipping are all callbacks.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from trainwise.errors import ConfigError
from trainwise.state import TrainState

Logs = dict[str, Any]
HOOKS = (
    "on_train_begin",
    "on_epoch_begin",
    "on_batch_begin",
    "on_before_step",
    "on_batch_end",
    "on_validation_end",
    "on_epoch_end",
    "on_train_end",
)


class Callback:
    """Base class: every hook does nothing. Override the ones you need."""

    state: TrainState
    # fit runs such callbacks after the run recorder (records complete at on_train_end) and the others
    after_records: bool = False

    def on_train_begin(self, logs: Logs) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: Logs) -> None: ...
    def on_batch_begin(self, batch: int, logs: Logs) -> None: ...
    def on_before_step(self, batch: int, logs: Logs) -> None: ...
    def on_batch_end(self, batch: int, logs: Logs) -> None: ...
    def on_validation_end(self, epoch: int, logs: Logs) -> None: ...
    def on_epoch_end(self, epoch: int, logs: Logs) -> None: ...
    def on_train_end(self, logs: Logs) -> None: ...

    def state_dict(self) -> dict[str, Any] | None:
        """What a checkpoint must keep of this callback to resume exactly (None: nothing)."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what state_dict() gave; called on resume after on_train_begin."""


class CallbackList:
    """Calls each hook on the callbacks that override it. The per-batch hooks the loop calls itself,
    from active(): unused ones cost nothing, and used ones no call through this list."""

    def __init__(self, callbacks: Iterable[Callback], state: TrainState) -> None:
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            callback.state = state
        if state is not None:
            state.callbacks = self.callbacks
        self._active: dict[str, list[Any]] = {
            hook: [getattr(cb, hook) for cb in self.callbacks if getattr(type(cb), hook) is not getattr(Callback, hook)]
            for hook in HOOKS
        }

    def active(self, hook: str) -> list[Any]:
        """The bound methods that implement `hook` (empty: the loop can skip building its logs)."""
        return self._active[hook]

    def _call(self, hook: str, *args: Any) -> None:
        for method in self._active[hook]:
            method(*args)

    def on_train_begin(self, logs: Logs) -> None:
        self._call("on_train_begin", logs)

    def on_epoch_begin(self, epoch: int, logs: Logs) -> None:
        self._call("on_epoch_begin", epoch, logs)

    def on_validation_end(self, epoch: int, logs: Logs) -> None:
        self._call("on_validation_end", epoch, logs)

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        self._call("on_epoch_end", epoch, logs)

    def on_train_end(self, logs: Logs) -> None:
        self._call("on_train_end", logs)


class History(Callback):
    """Appends every epoch's logs to `state.history` (one list per key)."""

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        for key, value in logs.items():
            self.state.history.setdefault(key, []).append(float(value))


def _better(mode: str, value: float, best: float, min_delta: float) -> bool:
    if mode == "min":
        return value < best - min_delta
    return value > best + min_delta


def best_epoch(history: dict[str, list[float]]) -> dict[str, float]:
    """The epoch (1-based) with the lowest finite val_loss (or loss), with all its logged values."""
    key = "val_loss" if history.get("val_loss") else "loss"
    values = history.get(key, [])
    finite = [(v, i) for i, v in enumerate(values) if math.isfinite(v)]
    if not finite:
        return {}
    index = min(finite)[1]
    logged = {k: v[index] for k, v in history.items() if len(v) > index and k != "epoch_seconds"}
    return {"epoch": index + 1, **logged}


def monitored(monitor: str | None, logs: Logs, key: str, state: TrainState | None = None) -> str | None:
    """The logged value to watch: `monitor`, or val_loss when there is validation data, else loss; None
    when it is a validation value and this epoch was not validated (fit(val_every=N))."""
    name = monitor or ("val_loss" if "val_loss" in logs else "loss")
    if name not in logs:
        raise ConfigError(f"{key}: {name!r} is not logged; logged: {', '.join(logs)}")
    if state is not None and name.startswith("val_") and not state.validated:
        return None
    return name


def measured(logs: Logs, state: TrainState) -> Logs:
    """The epoch's logs without the validation values of an epoch that was not validated (they are NaN)."""
    return logs if state.validated else {key: value for key, value in logs.items() if not key.startswith("val_")}


def monitor_mode(monitor: str, mode: str = "auto", metrics: Sequence[Any] = ()) -> str:
    """'min' or 'max'; 'auto' follows the metric's own higher_is_better (among `metrics`, the run's), else
    maximizes accuracies and R^2 and minimizes the rest."""
    if mode != "auto":
        return mode
    for metric in metrics:
        if monitor.removeprefix("val_") == metric.name:
            return "max" if metric.higher_is_better else "min"
    return "max" if "acc" in monitor or monitor.endswith("r2") else "min"


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs.

    monitor=None watches val_loss when there is validation data, else loss. With `restore_best`,
    the model ends with the weights of its best epoch.

    Args:
        monitor: the logged value to watch (val_loss, val_accuracy, loss, ...); None as above.
        patience: epochs without improvement before stopping (at least 1).
        min_delta: the least change that counts as an improvement.
        mode: "min", "max", or "auto" (the metric's own direction; accuracies and R^2 up, the rest down).
        restore_best: end with the best epoch's weights when stopping early.
    """

    def __init__(
        self,
        monitor: str | None = None,
        *,
        patience: int = 10,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best: bool = True,
    ) -> None:
        if patience < 1:
            raise ConfigError(f"early_stopping.patience: must be at least 1, got {patience}")
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.mode, self.restore_best = mode, restore_best
        self.best_epoch = -1
        self.stopped_epoch: int | None = None

    def on_train_begin(self, logs: Logs) -> None:
        self.best = math.inf
        self.wait = 0
        self._best_weights: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        monitor = monitored(self.monitor, logs, "early_stopping.monitor", self.state)
        if monitor is None:
            return
        value = float(logs[monitor])
        value = value if monitor_mode(monitor, self.mode, self.state.metrics) == "min" else -value
        if not math.isfinite(value):
            value = math.inf
        if self.best_epoch < 0 or _better("min", value, self.best, self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                weights = self.state.evaluated_model().state_dict()  # with ema, the averaged weights validated
                self._best_weights = {k: v.detach().clone() for k, v in weights.items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.state.stop_training = True
            self.stopped_epoch = epoch

    def on_train_end(self, logs: Logs) -> None:
        if self.stopped_epoch is not None and self._best_weights is not None:
            self.state.model.load_state_dict(self._best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait, "best_epoch": self.best_epoch, "weights": self._best_weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait, self.best_epoch = state["best"], state["wait"], state["best_epoch"]
        self._best_weights = state["weights"]


SCHEDULER_ALIASES = {
    "step": "StepLR",
    "multistep": "MultiStepLR",
    "exponential": "ExponentialLR",
    "cosine": "CosineAnnealingLR",
    "cosine_warm_restarts": "CosineAnnealingWarmRestarts",
    "onecycle": "OneCycleLR",
    "one_cycle": "OneCycleLR",
    "plateau": "ReduceLROnPlateau",
    "linear": "LinearLR",
    "constant": "ConstantLR",
    "polynomial": "PolynomialLR",
}


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_lr: float = 0.0
) -> torch.optim.lr_scheduler.SequentialLR:
    """Linear warmup to the optimizer's lr over `warmup_steps`, then cosine annealing to `min_lr` at
    `total_steps` (the usual schedule for transformers), as torch's own SequentialLR of LinearLR and
    CosineAnnealingLR. fit steps it after every optimizer step and fills total_steps with the run's steps.

    Args:
        optimizer: the optimizer whose lr it sets.
        warmup_steps: steps from lr / warmup_steps up to lr (at least 1).
        total_steps: the run's steps; the cosine part lasts total_steps - warmup_steps.
        min_lr: the lr the cosine ends at.
    """
    from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

    if warmup_steps < 1 or warmup_steps >= total_steps:
        raise ValueError(f"warmup_steps must be at least 1 and less than total_steps={total_steps}")
    warmup = LinearLR(optimizer, start_factor=1.0 / warmup_steps, end_factor=1.0, total_iters=warmup_steps - 1)
    cosine = CosineAnnealingLR(optimizer, T_max=total_steps - warmup_steps, eta_min=min_lr)
    return SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])


# schedules stepped after every optimizer step unless scheduler.interval says otherwise
PER_STEP_SCHEDULERS = ("OneCycleLR", "warmup_cosine")


def scheduler_class(name: str) -> Callable[..., Any]:
    """A torch.optim.lr_scheduler class by its name (any case) or a short alias ('cosine', 'onecycle'), or
    trainwise's warmup_cosine."""
    import torch.optim.lr_scheduler as schedulers

    if name.lower().replace("-", "_") == "warmup_cosine":
        return warmup_cosine

    classes = {
        n.lower(): getattr(schedulers, n)
        for n in dir(schedulers)
        if isinstance(getattr(schedulers, n), type) and issubclass(getattr(schedulers, n), schedulers.LRScheduler)
    }
    classes[schedulers.ReduceLROnPlateau.__name__.lower()] = schedulers.ReduceLROnPlateau
    key = SCHEDULER_ALIASES.get(name.lower(), name).lower()
    if key not in classes or key in (
        "lrscheduler",
        "sequentiallr",
        "chainedscheduler",
        "lambdalr",
        "multiplicativelr",
    ):
        raise ConfigError(
            f"scheduler.name: unknown scheduler {name!r}; choose one of {', '.join(sorted(SCHEDULER_ALIASES))}, "
            "warmup_cosine "
            "or a torch.optim.lr_scheduler class name"
        )
    return classes[key]


class LRScheduler(Callback):
    """Steps an LR scheduler once per epoch (or after every optimizer step for OneCycleLR, warmup_cosine or
    interval='step').

    `scheduler` is a name (a torch.optim.lr_scheduler class, an alias such as 'cosine', or 'warmup_cosine')
    with its options as keyword arguments; a scheduler object built on the optimizer fit trains with; or a
    function of the optimizer that returns one (lambda opt: SequentialLR(opt, ...)), for an optimizer fit
    makes from its name. Sensible defaults fill what torch requires of a named one: T_max = the run's length
    for cosine annealing, max_lr = the optimizer's lr and total_steps = the run's steps for one-cycle and
    warmup_cosine. ReduceLROnPlateau steps on `monitor` (val_loss when there is validation data, else loss).
    """

    def __init__(self, scheduler: Any, *, interval: str | None = None, monitor: str | None = None, **kwargs: Any):
        self.given = scheduler if not isinstance(scheduler, str) else None
        self.cls = scheduler_class(scheduler) if isinstance(scheduler, str) else None
        if self.given is not None and kwargs:
            raise ConfigError(f"scheduler: options {sorted(kwargs)} go to a scheduler given by name, not to an object")
        if interval not in (None, "epoch", "step"):
            raise ConfigError(f"scheduler.interval: {interval!r} is not allowed; use 'epoch' or 'step'")
        per_step = self.cls is not None and self.cls.__name__ in PER_STEP_SCHEDULERS
        self.interval = interval or ("step" if per_step else "epoch")
        self.monitor = monitor
        self.kwargs = kwargs
        self.scheduler: Any = None

    def on_train_begin(self, logs: Logs) -> None:
        state = self.state
        self.scheduler = self._given(state.optimizer) if self.cls is None else self._named(state)

    def _given(self, optimizer: torch.optim.Optimizer) -> Any:
        from torch.optim.lr_scheduler import LRScheduler as TorchScheduler
        from torch.optim.lr_scheduler import ReduceLROnPlateau

        kinds = (TorchScheduler, ReduceLROnPlateau)
        scheduler = self.given
        if not isinstance(scheduler, kinds) and callable(scheduler):  # a function of the optimizer
            scheduler = scheduler(optimizer)
        if not isinstance(scheduler, kinds):
            raise ConfigError(
                f"scheduler: expected a name, a torch scheduler or a function of the optimizer that returns one, "
                f"got {type(scheduler).__name__}"
            )
        if scheduler.optimizer is not optimizer:
            raise ConfigError(
                "scheduler: this scheduler sets another optimizer's lr than the one fit trains with; pass "
                "optimizer= that optimizer, or a function of the optimizer (lambda opt: ...) instead"
            )
        return scheduler

    def _named(self, state: TrainState) -> Any:
        assert self.cls is not None
        periods = state.total_steps if self.interval == "step" else state.epochs
        kwargs = dict(self.kwargs)
        name = self.cls.__name__
        if name == "CosineAnnealingLR":
            kwargs.setdefault("T_max", periods)
        elif name == "OneCycleLR":
            kwargs.setdefault("max_lr", [g["lr"] for g in state.optimizer.param_groups])
            kwargs.setdefault("total_steps", periods)
        elif name == "PolynomialLR":
            kwargs.setdefault("total_iters", periods)
        elif name == "warmup_cosine":
            kwargs.setdefault("total_steps", periods)
        try:
            return self.cls(state.optimizer, **kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"scheduler: {name} cannot be made with {kwargs}: {exc}") from None

    def on_batch_end(self, batch: int, logs: Logs) -> None:
        if self.interval == "step" and self.state.stepped:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return dict(self.scheduler.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)
        # the optimizer stepped before the checkpoint; without this torch warns that the schedule skips a value
        self.state.optimizer._opt_called = True  # type: ignore[attr-defined]

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        if self.interval != "epoch":
            return
        if type(self.scheduler).__name__ == "ReduceLROnPlateau":
            monitor = monitored(self.monitor, logs, "scheduler.monitor", self.state)
            if monitor is not None:  # a plateau is measured in validated epochs
                self.scheduler.step(float(logs[monitor]))
        else:
            self.scheduler.step()


class GradientClipping(Callback):
    """Clips gradients after backward, before the optimizer step (by total norm and/or by value).

    Args:
        max_norm: the largest total 2-norm of all gradients (torch.nn.utils.clip_grad_norm_).
        max_value: the largest absolute value of any gradient entry (clip_grad_value_).
    """

    def __init__(self, max_norm: float | None = None, max_value: float | None = None) -> None:
        if max_norm is None and max_value is None:
            raise ConfigError("gradient clipping needs max_norm or max_value")
        self.max_norm, self.max_value = max_norm, max_value

    def on_before_step(self, batch: int, logs: Logs) -> None:
        params = [p for p in self.state.model.parameters() if p.grad is not None]
        if self.max_value is not None:
            nn.utils.clip_grad_value_(params, self.max_value)
        if self.max_norm is not None:
            nn.utils.clip_grad_norm_(params, self.max_norm)


class EMA(Callback):
    """fit(ema=decay): an exponential moving average of the weights, updated after every optimizer step
    (torch.optim.swa_utils.AveragedModel; buffers such as BatchNorm's running statistics averaged too).
    Validation runs on the averaged weights, and they replace the model's when training ends (early
    stopping's restore_best then restores the best epoch's averaged weights), so evaluation, predictions and
    saved models use them. Checkpoints keep the average and the trained weights, so a resumed run continues
    from the weights the optimizer left, not the average."""

    def __init__(self, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"ema: the decay must be between 0 and 1 (0.999 is usual), got {decay!r}")
        self.decay = decay
        self.averaged: Any = None
        self._trained: dict[str, torch.Tensor] | None = None  # the optimizer's weights, once the average replaced them

    def on_train_begin(self, logs: Logs) -> None:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        model = self.state.model
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True)
        self.state.ema = self.averaged.module

    def on_batch_end(self, batch: int, logs: Logs) -> None:
        if self.state.stepped:
            self.averaged.update_parameters(self.state.model)

    def on_train_end(self, logs: Logs) -> None:
        model = self.state.model
        self._trained = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.averaged.module.state_dict())

    def state_dict(self) -> dict[str, Any]:
        return {"averaged": self.averaged.state_dict(), "trained": self._trained}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaged.load_state_dict(state["averaged"])
        if state["trained"] is not None:  # saved after training ended: the model holds the average
            self.state.model.load_state_dict(state["trained"])


class MixedPrecision(Callback):
    """fit(precision="bf16" | "fp16"): the step's forward and loss run under torch.autocast, and fp16
    scales the loss with a GradScaler (whose state checkpoints keep). On CUDA a model with 2-D
    convolutions is put in channels_last, and so are its 4-D input batches."""

    def __init__(self, precision: str, device: torch.device, model: nn.Module) -> None:
        if precision not in ("bf16", "fp16"):
            raise ConfigError(f"precision: {precision!r} is not mixed precision; use 'bf16' or 'fp16'")
        if device.type not in ("cpu", "cuda"):
            raise ConfigError(f"precision: {precision!r} runs on CUDA and the CPU, not on {device.type}; use '32'")
        self.precision = precision
        self.device_type = device.type
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
        self.channels_last = device.type == "cuda" and any(isinstance(m, nn.Conv2d) for m in model.modules())
        if self.channels_last:
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device_type, dtype=self.dtype)

    def inputs(self, xb: torch.Tensor) -> torch.Tensor:
        if self.channels_last and xb.ndim == 4:
            return xb.contiguous(memory_format=torch.channels_last)
        return xb

    def state_dict(self) -> dict[str, Any] | None:
        return dict(self.scaler.state_dict()) if self.scaler is not None else None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None:
            self.scaler.load_state_dict(state)


def format_logs(logs: Logs, keys: Sequence[str] | None = None) -> str:
    """'loss 0.1234  val_loss 0.2345  accuracy 0.9000' for the logged numbers worth showing."""
    shown = []
    for key in keys or logs:
        if key in ("lr", "epoch_seconds") or key not in logs:
            continue
        value = logs[key]
        if isinstance(value, float | int):
            shown.append(f"{key} {value:.4g}")
    return "  ".join(shown)


def format_seconds(seconds: float | None) -> str:
    """'0:01:05' as rich writes times; '-:--:--' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-:--:--"
    minutes, secs = divmod(max(0, round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _remaining_column() -> Any:
    """A rich column with each task's time left at the run's average step time so far (the task's
    `seconds_per_item` field), else rich's own estimate. Rich's needs two updates within its speed window,
    which a short epoch's batch bar, reset every epoch and redrawn a few times a second, never gets."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class Remaining(ProgressColumn):
        def render(self, task: Any) -> Text:
            per_item = task.fields.get("seconds_per_item")
            if task.finished or task.total is None or per_item is None:
                seconds = task.time_remaining
            else:
                seconds = per_item * max(task.total - task.completed, 0)
            return Text(format_seconds(seconds), style="progress.remaining")

    return Remaining()


class _NotebookView:
    """What the notebook progress display shows: an HTML bar per line, the same lines as text."""

    def __init__(self, lines: list[tuple[str, int, int, str, str]]) -> None:
        self.lines = lines  # (label, done, total, time left, info)

    def __repr__(self) -> str:
        return "\n".join(
            f"{label} {done}/{total}  {left} left  {info}".rstrip() for label, done, total, left, info in self.lines
        )

    def _repr_html_(self) -> str:
        import html

        rows = "".join(
            f"<div><b>{html.escape(label)}</b> <progress value='{done}' max='{max(total, 1)}' style='width:30%'>"
            f"</progress> {done}/{total} &middot; {html.escape(left)} left &middot; {html.escape(info)}</div>"
            for label, done, total, left, info in self.lines
        )
        return f"<div style='font-family:monospace'>{rows}</div>"


class ProgressBar(Callback):
    """Shows progress: a rich bar (epochs, batches, loss, val loss, metrics, time left) in a terminal; in
    Jupyter an HTML display updated in place (no ipywidgets needed); plain periodic lines when output goes
    to a file or pipe.

    The running loss of the current epoch is read from the device at most `refresh_hz` times a second, so
    the display adds no per-step synchronisation; the notebook display is redrawn at that rate too.

    Args:
        mode: "auto" (by where the output goes), "rich", "notebook" or "plain".
        refresh_hz: display updates per second at most.
        file: where the display goes; None: standard error.
    """

    def __init__(self, *, mode: str = "auto", refresh_hz: float = 4.0, file: Any = None) -> None:
        from rich.console import Console

        self.console = Console(file=file or sys.stderr)
        if mode == "auto":
            mode = "notebook" if self.console.is_jupyter else "rich" if self.console.is_terminal else "plain"
        if mode not in ("rich", "notebook", "plain"):
            raise ConfigError(f"progress mode {mode!r}: use 'auto', 'rich', 'notebook' or 'plain'")
        if mode == "notebook":
            try:
                import IPython.display  # noqa: F401
            except ImportError:
                raise ConfigError(
                    "progress mode 'notebook' needs IPython; pip install ipython or use 'plain'"
                ) from None
        self.mode = mode
        self.interval = 1.0 / refresh_hz
        self._progress: Any = None
        self._handle: Any = None

    def on_train_begin(self, logs: Logs) -> None:
        self._last_draw = 0.0
        self._start = time.perf_counter()
        self._steps_at_start = self.state.step  # a resumed run: time only the steps taken here
        self._plain_every = max(1, self.state.epochs // 10)
        self._epochs_done = self.state.epoch
        self._batches_done = 0
        self._epoch_info = ""
        self._batch_info = ""
        self._epoch_open = False
        if self.mode == "notebook":
            from IPython.display import display

            self._handle = display(self._view(), display_id=True)
        if self.mode == "rich":
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                MofNCompleteColumn(),
                BarColumn(),
                _remaining_column(),
                TextColumn("{task.fields[info]}"),
                console=self.console,
                transient=False,
            )
            self._progress.start()
            self._epoch_task = self._progress.add_task("epoch", total=self.state.epochs, info="")
            self._batch_task = None
            if self.state.steps_per_epoch > 1:
                self._batch_task = self._progress.add_task(
                    "batches", total=self.state.steps_per_epoch, info="", visible=True
                )

    def print(self, message: str) -> None:
        """Print a line above the bar (used for findings), as it is: no markup, no wrapping."""
        self.console.print(message, markup=False, highlight=False, soft_wrap=True)

    def _seconds_per_step(self) -> float | None:
        steps = self.state.step - self._steps_at_start
        return (time.perf_counter() - self._start) / steps if steps > 0 else None

    def _seconds_left(self) -> tuple[float | None, float | None]:
        """(for the run, for the current epoch) at the average step time so far."""
        per_step = self._seconds_per_step()
        if per_step is None:
            return None, None
        spe = self.state.steps_per_epoch
        in_epoch = self._batches_done if self._epoch_open else spe
        run_steps = (self.state.epochs - self._epochs_done) * spe - (in_epoch if self._epoch_open else 0)
        return per_step * max(run_steps, 0), per_step * max(spe - in_epoch, 0)

    def _view(self, *, finished: bool = False) -> _NotebookView:
        run_left, epoch_left = (0.0, 0.0) if finished else self._seconds_left()
        lines = [("epoch", self._epochs_done, self.state.epochs, format_seconds(run_left), self._epoch_info)]
        if self.state.steps_per_epoch > 1:
            spe = self.state.steps_per_epoch
            lines.append(("batches", self._batches_done, spe, format_seconds(epoch_left), self._batch_info))
        return _NotebookView(lines)

    def on_epoch_begin(self, epoch: int, logs: Logs) -> None:
        self._batches_done, self._epoch_open = 0, True
        if self._progress is not None and self._batch_task is not None:
            self._progress.reset(self._batch_task, total=self.state.steps_per_epoch)

    def on_batch_end(self, batch: int, logs: Logs) -> None:
        if self.mode == "plain" or (self._progress is None and self._handle is None):
            return
        self._batches_done = batch + 1
        if self.state.steps_per_epoch <= 1:
            return
        now = time.perf_counter()
        # rich's bar also draws each epoch's last batch (to fill up); the notebook display only redraws
        # at the rate, since every redraw goes over the kernel's connection
        last = batch + 1 == self.state.steps_per_epoch and self._handle is None
        if now - self._last_draw < self.interval and not last:
            return
        self._last_draw = now
        loss = float(logs["loss"])  # the only host read, at a bounded rate
        self._batch_info = f"loss {loss:.4g}"
        if self._handle is not None:
            self._handle.update(self._view())
        elif self._batch_task is not None:
            per_step = self._seconds_per_step()
            self._progress.update(
                self._batch_task, completed=batch + 1, info=self._batch_info, seconds_per_item=per_step
            )
            if per_step is not None:  # the first epoch's bar has no estimate of its own yet
                self._progress.update(self._epoch_task, seconds_per_item=per_step * self.state.steps_per_epoch)

    def on_validation_end(self, epoch: int, logs: Logs) -> None:
        if "step" in logs:  # within the epoch (fit(val_every_steps=N)); the epoch's own shows at its end
            shown = [key for key in logs if key not in ("step", "epoch")]
            self.print(f"step {logs['step']} (epoch {logs['epoch']:.2f}): {format_logs(logs, shown)}")

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        info = format_logs(measured(logs, self.state))
        done = epoch + 1
        self._epochs_done, self._epoch_info, self._epoch_open = done, info, False
        if self._progress is not None:
            per_epoch = self._seconds_per_step()
            per_epoch = per_epoch * self.state.steps_per_epoch if per_epoch is not None else None
            self._progress.update(self._epoch_task, completed=done, info=info, seconds_per_item=per_epoch)
            return
        if self._handle is not None:
            now = time.perf_counter()
            if now - self._last_draw >= self.interval or done == self.state.epochs:
                self._last_draw = now
                self._handle.update(self._view())
            return
        if done == 1 or done % self._plain_every == 0 or done == self.state.epochs:
            elapsed = time.perf_counter() - self._start
            self.print(f"epoch {done}/{self.state.epochs}  {info}  ({elapsed:.1f}s)")

    def on_train_end(self, logs: Logs) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self._handle is not None:
            self._handle.update(self._view(finished=True))  # the last epoch, even if the throttle skipped it
            self._handle = None
