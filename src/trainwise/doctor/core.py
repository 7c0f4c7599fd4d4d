"""The Doctor: watches a model and its optimizer through hooks and runs the registered checks.

The doctor never changes the training step. It reads state through forward hooks on the model
(inputs, outputs, train/eval mode, activations on sampled steps), forward pre-hooks on the loss
module (output and target, before the loss can crash on them), tensor hooks on one probe
parameter (did gradients get zeroed between steps?) and optimizer step hooks (gradients, update
sizes). Inside fit (driven=True) the loop's callbacks call after_step() instead of the optimizer's
post-hook, and the model's hooks and the optimizer's pre-hook are attached only around sampled
steps. Cheap
statistics are read every step; expensive ones on sampled steps (the first `warmup` steps, then
pairs every `sample_every` steps, spreading out to one pair per 20% of the run). Recorded losses
stay on the device and are read in one go on sampled steps, so there is no per-step host
synchronisation.
"""

from __future__ import annotations

import functools
import html
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from math import isfinite
from typing import Any, Generic, Literal, NamedTuple, TypeVar, cast

import torch
from torch import nn

from trainwise.doctor import registry
from trainwise.doctor.findings import (
    CODES,
    FINDING_HEADER,
    MISREADINGS,
    SEVERITY_ORDER,
    SYMPTOMS,
    Finding,
    causes_of,
    misread_by,
)
from trainwise.errors import ConfigError, TrainingError

Mode = Literal["warn", "stop", "quiet"]
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
ADAPTIVE_OPTIMIZERS = frozenset(
    {"adam", "adamw", "adamax", "nadam", "radam", "rmsprop", "adagrad", "adadelta", "sparseadam", "adafactor"}
)
# torch's adaptive optimizers as classes too, so that subclasses (class MyAdam(torch.optim.Adam)) count
ADAPTIVE_NAMES = ("Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad", "Adadelta", "SparseAdam")
ADAPTIVE_CLASSES = tuple(
    cls for name in (*ADAPTIVE_NAMES, "Adafactor") if isinstance(cls := getattr(torch.optim, name, None), type)
)
WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)  # layers whose outputs are units
MAX_TRAIN_KEYS = 200_000
MAX_PENDING_LOSSES = 256  # losses kept on the device before one read
SAMPLE_SHARE = 5  # sample about one step pair in every 20% of the run so far
SKETCH = 128  # numbers kept per sampled gradient, to compare directions
FUNCTIONAL_LOSSES = {
    "mse_loss": "mse",
    "l1_loss": "l1",
    "huber_loss": "huber",
    "smooth_l1_loss": "smooth_l1",
    "cross_entropy": "cross_entropy",
    "nll_loss": "nll",
    "binary_cross_entropy_with_logits": "bce_with_logits",
    "binary_cross_entropy": "bce",
}


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def never_raises(what: str) -> Callable[[F], F]:
    """For the doctor's entry points (its public methods): a failure inside the doctor becomes one doctor-error
    finding instead of an exception in the user's loop. TrainingError is the doctor's deliberate word (mode
    "stop", or a label the loss is about to crash on) and passes through."""

    def wrap(method: F) -> F:
        @functools.wraps(method)
        def safe(self: Doctor, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except TrainingError:
                raise
            except Exception as exc:
                self.internal_error(what, exc)
                return None

        return cast(F, safe)

    return wrap


class GuardedHook:
    """A hook torch calls (module, tensor or optimizer hook) that cannot raise into the user's code: the first
    failure reports doctor-error, turns the hook into a no-op and detaches it (at the doctor's next safe
    point: torch may be iterating over its hooks right now). Hooks of one group fail together (the optimizer's
    pre- and post-step hooks only make sense as a pair)."""

    def __init__(self, doctor: Doctor, fn: Callable[..., Any], what: str, group: list[GuardedHook] | None = None):
        self.doctor, self.fn, self.what = doctor, fn, what
        self.register: Callable[[Callable[..., Any]], Any] | None = None
        self.handle: Any = None
        self.broken = False
        self.group = group if group is not None else [self]
        if self not in self.group:
            self.group.append(self)

    def attach(self) -> Any:
        """Register with torch (through `register`); returns the handle, or None once broken."""
        if self.broken or self.register is None:
            return None
        self.handle = self.register(self)
        return self.handle

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.broken:
            return None
        try:
            return self.fn(*args, **kwargs)
        except TrainingError:
            raise
        except Exception as exc:
            self.fail(exc)
            return None

    def fail(self, exc: Exception) -> None:
        """`fn` raised (called here, or directly by a caller that guards it itself): off, with its group."""
        for hook in self.group:
            hook.broken = True
            self.doctor._broken_hooks.append(hook)
        self.doctor.internal_error(self.what, exc)


class ZeroGradProbe:
    """One parameter's gradient, watched on sampled pairs of steps: what backward delivered since the last step
    (a tensor hook sums it) against what .grad holds at step(). Compared by direction, so clipping or a
    GradScaler rescaling the gradient in place before step() does not hide a missed zero_grad."""

    def __init__(self, param: nn.Parameter) -> None:
        self.param = param
        self.incoming: torch.Tensor | None = None  # backward's gradients since the last step (watched entries)
        self.after_step: torch.Tensor | None = None  # .grad right after the previous sampled step (the same)
        self.after_step_index = -1

    @staticmethod
    def watched(grad: torch.Tensor) -> torch.Tensor:
        """At most 4096 evenly spaced entries of a gradient (a view): a carried gradient shows in any subset of
        its entries, and copying or comparing a whole weight matrix costs milliseconds."""
        flat = grad.detach().reshape(-1)
        return flat[:: flat.numel() // 4096 + 1] if flat.numel() > 4096 else flat

    def add_incoming(self, grad: torch.Tensor) -> None:
        entries = self.watched(grad)
        self.incoming = entries.clone() if self.incoming is None else self.incoming + entries

    def remember(self, step: int) -> None:
        grad = self.param.grad
        self.after_step = None if grad is None else self.watched(grad).clone()
        self.after_step_index = step
        self.incoming = None

    def carried(self, step: int) -> bool | None:
        """Is .grad the fresh gradient plus the one before (True), the fresh one (False), or unknown (None)?"""
        grad, incoming, before = self.param.grad, self.incoming, self.after_step
        if grad is None or incoming is None or before is None or self.after_step_index != step - 1:
            return None  # the snapshot must be of the step just before
        current = self.watched(grad).double()
        fresh = incoming.double()
        if current.numel() < 2:  # a single number is parallel to anything: compare values exactly (one read)
            now, new, old = torch.cat([current, fresh, before.double()]).tolist()
            carried_value = new + old
            return abs(now - carried_value) <= 1e-4 * (abs(carried_value) + 1e-12) and abs(now - new) > 1e-3 * abs(old)
        carried = fresh + before.double()
        off_fresh, off_carried = _off_directions(current, torch.stack([fresh, carried]))
        return off_carried <= 1e-4 and off_fresh > 1e-3


class TensorHookHandle:
    """A tensor hook (tensor.register_hook) whose remove() also drops the tensor's emptied hook dict: torch
    calls into that dict on every backward while it exists, empty or not (about 4,000 instructions a step,
    which a removed sampled-step hook would cost every later step)."""

    def __init__(self, tensor: torch.Tensor, hook: Callable[[torch.Tensor], Any]) -> None:
        self.tensor = tensor
        self.handle = tensor.register_hook(hook)

    def remove(self) -> None:
        self.handle.remove()
        if not self.tensor._backward_hooks:  # none left (the user's own, another doctor's): torch's state as
            # before the first hook
            self.tensor._backward_hooks = None


class StepHooks(NamedTuple):
    """The Doctor's hooks that run on every step of a user's loop (registered with torch unless forwarded)."""

    forward_pre: GuardedHook  # the model's forward pre-hook: (module, args)
    forward: GuardedHook  # the model's forward hook: (module, args, output)
    step_pre: GuardedHook  # the optimizer's step pre-hook: (optimizer, args, kwargs)
    step_post: GuardedHook  # the optimizer's step post-hook: (optimizer, args, kwargs)


@dataclass
class ParamInfo:
    name: str
    param: nn.Parameter
    in_optimizer: bool


@dataclass
class Sample:
    """Statistics of one sampled optimizer step."""

    step: int
    grad_norms: dict[str, float]
    weight_norms: dict[str, float]
    update_norms: dict[str, float]
    grad_direction: torch.Tensor | None = None  # a fixed random sketch of the whole gradient
    # the cosine between the hidden weight matrices' gradient and the matrices themselves (all but the last
    # matrix, the output layer's, as one vector): a penalty on the weights' size in the loss aligns them; the
    # data's gradient is unrelated to random hidden weights (the output layer's may align by nature)
    grad_weight_cosine: float | None = None

    @functools.cached_property
    def update_to_weight(self) -> float | None:
        """|update| / |weights| over all parameters together (None while the weights are about zero, or for an
        update that is not finite); kept: the lr checks read it for the last samples at each sampled step."""
        weights, updates = whole_norm(self.weight_norms.values()), whole_norm(self.update_norms.values())
        return updates / weights if weights > 1e-6 and math.isfinite(updates) else None


class SameBatch(Generic[T]):
    """A statistic of the last tensor it was computed of, computed again only for another tensor: a full-batch
    loop passes the same tensor (or a detached view of it) every step, and summing it again on each sampled
    step costs more than a tiny model's step."""

    def __init__(self, compute: Callable[[torch.Tensor], T]) -> None:
        self.compute = compute
        self._of: torch.Tensor | None = None  # kept alive: its memory cannot pass to another tensor meanwhile
        self._version = -1
        self._value: Any = None

    def __call__(self, tensor: torch.Tensor) -> T:
        of = self._of
        if of is None or tensor._version != self._version or tensor.dtype != of.dtype or not tensor.is_set_to(of):
            # not the same memory, offset, shape and strides, unchanged since
            self._value, self._of, self._version = self.compute(tensor), tensor, tensor._version
        return self._value


class TargetSums:
    """Every float target passed to record(): count, per-output sums and sums of squares (float64, left on
    their device), for the loss of the best constant prediction. A full-batch loop passes the same tensor
    every step: it is summed once and counted again (two reductions a step cost more than a tiny model's step)."""

    def __init__(self) -> None:
        self.count = 0  # rows summed in _sums (totals() folds the latest batch's repeats in first)
        self._sums: tuple[torch.Tensor, torch.Tensor] | None = None
        # tensor, version, sums, rows
        self._batch: tuple[torch.Tensor, int, torch.Tensor, torch.Tensor, int] | None = None
        self._repeats = 0  # times the latest batch was passed, not yet in _sums and count

    def repeat(self, target: torch.Tensor) -> bool:
        """Is this the latest batch again, unchanged (a full-batch loop's every step)? Then it is counted (in
        count at the next fold)."""
        batch = self._batch
        if batch is None or target is not batch[0] or target._version != batch[1]:
            return False
        self._repeats += 1
        return True

    def add(self, target: torch.Tensor) -> None:
        if self.repeat(target):
            return
        values = target.detach().reshape(target.shape[0], -1).double()
        batch_sum, batch_squares = values.sum(0), values.square().sum(0)
        self._fold()
        if self._sums is not None and (
            self._sums[0].shape != batch_sum.shape or self._sums[0].device != batch_sum.device
        ):  # other targets altogether: start again
            self.count, self._sums = 0, None
        self._batch, self._repeats = (target, target._version, batch_sum, batch_squares, target.shape[0]), 1

    def _fold(self) -> None:
        if self._batch is None or not self._repeats:
            return
        _, _, batch_sum, batch_squares, rows = self._batch
        added = (batch_sum * self._repeats, batch_squares * self._repeats)
        self._sums = added if self._sums is None else (self._sums[0] + added[0], self._sums[1] + added[1])
        self.count += rows * self._repeats
        self._repeats = 0

    def totals(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The per-output sums and sums of squares, on the CPU."""
        self._fold()
        return None if self._sums is None else (self._sums[0].cpu(), self._sums[1].cpu())


class TrainRows:
    """The keys (row_keys) of the training rows seen, for train-val-overlap. Each batch's keys stay a tensor
    on its device; they join one sorted tensor of distinct keys now and then, at most every half of what is
    known already (a Python set of floats cost more per batch than a small model's step, and a read to the
    host each step stalls a GPU)."""

    def __init__(self) -> None:
        self.known = torch.zeros(0, dtype=torch.float64)
        self.repeated_batches = 0  # batches in a row made only of rows known before: a whole pass was seen
        self._pending: list[torch.Tensor] = []
        self._pending_rows = 0
        self._last_batch: tuple[torch.Tensor | None, int] = (None, 0)  # the latest batch and its version

    def add(self, x: torch.Tensor) -> None:
        """A training batch's rows."""
        if x is self._last_batch[0] and x._version == self._last_batch[1]:  # a full-batch loop's same tensor
            self.repeated_batches += 1
            return
        self._last_batch = (x, x._version)
        keys = row_keys(x)
        if not keys.numel():  # an empty batch says nothing about repeats
            return
        self._pending.append(keys)
        self._pending_rows += keys.numel()
        if self._pending_rows >= max(256, len(self.known) // 2):
            self.merge()

    def merge(self) -> None:
        if not self._pending:
            return
        pending, self._pending, self._pending_rows = self._pending, [], 0
        keys = torch.cat(pending)
        # each batch's count of new rows, in one read: differences of the running count at batch ends
        new_so_far = torch.cat([keys.new_zeros(1, dtype=torch.long), (~self._is_known(keys)).long().cumsum(0)])
        ends = torch.tensor([len(batch) for batch in pending]).cumsum(0)
        new_rows = new_so_far[ends.to(keys.device)].diff(prepend=new_so_far[:1]).tolist()
        for new in new_rows:
            self.repeated_batches = 0 if new else self.repeated_batches + 1
        self.known = torch.unique(torch.cat([self.known.to(keys.device), keys]))  # sorted

    def _is_known(self, keys: torch.Tensor) -> torch.Tensor:
        """Which keys are known (a binary search in the sorted keys, not a sort of both as torch.isin does)."""
        known = self.known.to(keys.device)
        if not len(known):
            return torch.zeros_like(keys, dtype=torch.bool)
        index = torch.searchsorted(known, keys).clamp(max=len(known) - 1)
        return known[index] == keys

    def __len__(self) -> int:
        self.merge()
        return len(self.known)

    def count_known(self, keys: torch.Tensor) -> int:
        """How many of these keys are training rows."""
        self.merge()
        return int(self._is_known(keys).sum())


@dataclass
class Observations:
    """Everything the checks read. Lists grow with training; sampled data is bounded."""

    losses: list[float] = field(default_factory=list)  # one per recorded training step
    finite_losses: list[float] = field(default_factory=list)  # the same, without NaN/inf
    best_loss: float = math.inf
    loss_steps: list[int] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    val_losses: list[tuple[int, float]] = field(default_factory=list)  # (epoch, value)
    samples: list[Sample] = field(default_factory=list)
    first_grad_norms: dict[str, float] = field(default_factory=dict)
    first_weight_norms: dict[str, float] = field(default_factory=dict)
    input_count: int = 0
    input_sum: torch.Tensor | None = None  # per feature (or channel), float64
    input_sq_sum: torch.Tensor | None = None
    input_dtype: torch.dtype | None = None
    label_counts: torch.Tensor | None = None  # bincount of integer targets seen
    targets: TargetSums = field(default_factory=TargetSums)
    labels_seen: int = 0
    min_label: int | None = None
    max_label: int | None = None
    dead_fractions: dict[str, list[float]] = field(default_factory=dict)  # ReLU layer -> per sample
    layer_stds: list[tuple[str, float]] = field(default_factory=list)  # first forward, in order
    train_rows: TrainRows = field(default_factory=TrainRows)  # keys of the training rows seen
    eval_forwards_in_train_mode: int = 0
    steps_in_eval_mode: int = 0  # optimizer steps taken while a dropout/batchnorm model was in eval mode
    sigmoid_like_outputs: int = 0  # bce_with_logits calls whose inputs all lay in [0, 1]
    zero_grad_missed: int = 0
    zero_grad_checked: int = 0
    params_without_grad: dict[str, int] = field(default_factory=dict)  # name -> sampled steps without grad
    grad_checks: int = 0


def _default_printer() -> Callable[[str], None]:
    """Findings go to stderr, apart from the program's own output; in a Jupyter kernel to stdout, where stderr
    shows as a red warning block around a plain sentence."""
    from rich.console import Console

    if Console().is_jupyter:
        return print
    return lambda line: print(line, file=sys.stderr)


class Doctor:
    """Watches training and collects findings. Use `trainwise.watch(model, optimizer)` to make one.

    Args:
        model: the model being trained; hooks on it see its inputs, outputs and layers.
        optimizer: the model's optimizer; its step hooks see the gradients and updates.
        loss_fn: the loss function or module (a module is hooked to check its inputs too); None: not known.
        mode: "warn" (default) prints each finding once, "stop" raises TrainingError at the first error,
            "quiet" only collects.
        sample_every: after the warm-up, sample a pair of steps every this many steps at first (default 25),
            spreading out to one pair per 20% of the run; sampled steps get the expensive checks.
        warmup: the first steps, all sampled (default 10).
        steps_per_epoch: optimizer steps per epoch, so that a hand-written loop's epoch ends are known; None:
            epochs end only when end_epoch() is called.
        feature_names: names of the input features, for findings about single features; None: "feature <i>".
        printer: the function that shows a finding's line; None: stderr (stdout in a Jupyter kernel).
        driven: fit's own loop drives the doctor, calling after_step() and end_epoch() itself (default False).
        forwarded: the caller already hooks the model's calls and the optimizer's steps and calls `step_hooks`
            itself (autowatch's session: a second pair of hooks would cost every step twice); default False.

    Raises:
        ConfigError: a mode other than "warn", "stop" or "quiet".
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        loss_fn: Callable[..., torch.Tensor] | None = None,
        mode: Mode = "warn",
        sample_every: int = 25,
        warmup: int = 10,
        steps_per_epoch: int | None = None,
        feature_names: Sequence[str] | None = None,
        printer: Callable[[str], None] | None = None,
        driven: bool = False,
        forwarded: bool = False,
    ) -> None:
        if mode not in ("warn", "stop", "quiet"):
            raise ConfigError(f"doctor mode {mode!r}: use 'warn', 'stop' or 'quiet'")
        self.forwarded = forwarded
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.loss_hooked = isinstance(loss_fn, nn.Module)  # its calls are seen (a loss module's hooks)
        self.mode = mode
        self.sample_every = max(1, sample_every)
        self.warmup = warmup
        self.steps_per_epoch = steps_per_epoch
        self.feature_names = list(feature_names or [])
        self.printer = printer or _default_printer()
        self.obs = Observations()
        self.step = 0  # optimizer steps seen
        self.epoch = 0
        self._findings: dict[tuple[str, str | None], Finding] = {}
        self._codes: set[str] = set()  # the codes among _findings (has() runs many times a sampled step)
        self._loss_kind: tuple[Any, str] = (None, "")  # (the loss function, its kind): loss_kind()'s last answer
        self._pending_losses: list[torch.Tensor | float] = []
        self._pending_steps: list[int] = []
        self._handles: list[Any] = []
        self._broken_hooks: list[GuardedHook] = []  # failed hooks, detached at the next safe point
        self.disabled_checks: set[Callable[..., Any]] = set()  # checks that raised: off for this run
        self._sampled_hook_factories: list[Callable[[], Any]] = []
        self._family_states: dict[type, Any] = {}
        self._sampled_handles: list[Any] = []
        self._sampled = True  # step 0 is always sampled
        self._next_sample = warmup  # the first step of the next sampled pair after the warm-up
        self._sample_span = 1 if driven and steps_per_epoch == 1 else 2  # consecutive steps per sample
        self._pre_step_weights: list[torch.Tensor] | None = None
        self._weight_copy: list[torch.Tensor] | None = None
        self._step_lrs: list[float] | None = None  # plain SGD's lr per parameter, on a sampled step
        self._weight_norms_now: list[torch.Tensor] = []  # before the sampled step, of each parameter
        self._grad_weight_dot_now: torch.Tensor | None = None  # <gradient, weights> over the hidden matrices
        # numbers a sampled step's checks asked for (defer()), read at the step's end with its statistics
        self._deferred: list[tuple[torch.Tensor, Callable[[float], None]]] = []
        self._input_sums = SameBatch(feature_sums)  # of the sampled steps' inputs
        self._hidden_matrices: list[str] = []
        self._direction_seed = torch.Generator().manual_seed(1234)
        self._projection: torch.Tensor | None = None  # the sketch's random signs
        self._projection_pad = torch.zeros(0)
        self._last_input: torch.Tensor | None = None
        self._last_output: torch.Tensor | None = None
        self.last_target: torch.Tensor | None = None  # the latest training targets (a reference)
        self.loss_inputs_seen = 0
        self._first_forward_done = False
        # does this step need every model call as it happens (sampled, the training rows still being collected,
        # the first forward not yet seen)? Else a caller that forwards calls (autowatch) may hand over the
        # step's training call at its end instead (_on_step_post's call); set at each step's end
        self.every_call = True
        self._first_forward_handles: list[Any] = []
        self._collect_keys = True
        self.loss_output: torch.Tensor | None = None  # the last (output, target) the loss saw
        self.loss_target: torch.Tensor | None = None
        self.last_eval_input: torch.Tensor | None = None
        self.data: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None] | None = None
        self.flushed_from = 0  # index of the first loss read by the latest flush
        # fit's callback drives the doctor: it reports step and epoch ends itself, so the model's forward
        # hooks and the optimizer's step pre-hook are needed on sampled steps only
        self.driven = driven
        self._losses_on_host: bool | None = None
        # full batch under fit: the step's loss is the epoch's, which fit reads and hands to end_epoch()
        self.losses_from_epochs = driven and steps_per_epoch == 1
        self.raised: dict[str, int] = {}  # how often each code was raised, repeats included
        self.actions: list[str] = []  # what a repairing caller did (fit's doctor="repair")
        self.withdrawn: list[tuple[str, str]] = []  # (code, the cause found later that explains it)

        self.optimizer_name = type(optimizer).__name__.lower()
        self.adaptive = self.optimizer_name in ADAPTIVE_OPTIMIZERS or isinstance(optimizer, ADAPTIVE_CLASSES)
        optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
        self.params = [
            ParamInfo(name, p, id(p) in optimized) for name, p in model.named_parameters() if p.requires_grad
        ]
        self.extra_optimizer_params = len(optimized - {id(info.param) for info in self.params})
        self.modules = dict(model.named_modules())
        self.mode_dependent = any(
            (isinstance(m, nn.Dropout | nn.Dropout1d | nn.Dropout2d | nn.Dropout3d | nn.AlphaDropout) and m.p > 0)
            or isinstance(m, nn.modules.batchnorm._BatchNorm)
            for m in self.modules.values()
        )
        self._install_hooks()
        registry.run("setup", self)

    # ------------------------------------------------------------------ public API

    @property
    def findings(self) -> list[Finding]:
        """All findings so far, errors first, one per code and subject."""
        return sorted(self._findings.values(), key=lambda f: (SEVERITY_ORDER[f.severity], f.step or 0))

    def family_state(self, cls: type[T]) -> T:
        """The per-doctor state of a check family: one `cls()`, made on first use."""
        state = self._family_states.get(cls)
        if state is None:
            state = self._family_states[cls] = cls()
        return state

    def has(self, code: str) -> bool:
        return code in self._codes

    def report(self) -> str:
        """A plain-text report: one paragraph per finding, or a line saying all looked healthy."""
        if not self._findings:
            return f"trainwise doctor: no problems found in {self.step} steps."
        lines = [f"trainwise doctor: {len(self._findings)} finding(s) in {self.step} steps"]
        lines += [f"- {finding.format()}" for finding in self.findings]
        lines += [f"- repair: {action}" for action in self.actions]
        return "\n".join(lines)

    def __repr__(self) -> str:
        codes = ", ".join(dict.fromkeys(f.code for f in self.findings))
        found = f"findings={len(self._findings)}" + (f": {codes}" if codes else "")
        return f"Doctor(mode={self.mode!r}, steps={self.step}, {found})"

    def _watched(self) -> str:
        loss = self.loss_kind() or (type(self.loss_fn).__name__ if self.loss_fn is not None else "no loss given")
        return (
            f"{type(self.model).__name__} ({len(self.params)} parameter tensors), {type(self.optimizer).__name__} "
            f"(lr {self.lrs()[0]:g}), loss {loss}, {self.step} steps, {self.epoch} epochs"
        )

    def _repr_html_(self) -> str:
        """A table of the findings in Jupyter (severity, code, step, message, fix), or 'no findings'."""
        head = f"<b>trainwise doctor</b> ({html.escape(self.mode)}): watched {html.escape(self._watched())}"
        if not self._findings:
            return f"<div>{head}<p>no findings: nothing looked wrong.</p></div>"
        rows = "".join(finding.html_row() for finding in self.findings)
        actions = "".join(f"<li>repair: {html.escape(action)}</li>" for action in self.actions)
        return (
            f"<div>{head}<table>{FINDING_HEADER}{rows}</table>" + (f"<ul>{actions}</ul>" if actions else "") + "</div>"
        )

    def __rich__(self) -> Any:
        from rich.table import Table

        table = Table(title=f"trainwise doctor ({self.mode}): {self._watched()}", title_justify="left")
        for column in ("severity", "code", "step", "message", "fix"):
            table.add_column(column, overflow="fold")
        for finding in self.findings:
            table.add_row(*finding.cells())
        if not self._findings:
            table.add_row("", "", "", "no findings: nothing looked wrong", "")
        return table

    def record(
        self,
        loss: torch.Tensor | float | None = None,
        *,
        target: torch.Tensor | None = None,
        val_loss: torch.Tensor | float | None = None,
    ) -> None:
        """Tell the doctor about a training step's loss (and targets), or a validation loss."""
        # called every step: guarded here, not by never_raises (its wrapper would cost every step a call)
        try:
            if self._broken_hooks:
                self._detach_broken_hooks()
            if isinstance(target, torch.Tensor):
                self._take_target(target)
            if loss is not None:
                tensor = loss if isinstance(loss, torch.Tensor) else None
                if tensor is not None and tensor.numel() != 1:
                    raise ValueError(f"record() takes one loss value, got a tensor of shape {tuple(tensor.shape)}")
                if self._losses_on_host is None:
                    self._losses_on_host = tensor is None or tensor.is_cpu
                # on the CPU a loss costs little to read: read at once, a bad one is diagnosed while its batch
                # is in hand (and no tensor is kept: holding them slows the steps); item() reads a tensor that
                # requires grad without a detached copy first
                if self._losses_on_host:  # _add_loss() inline: this runs every step
                    value = float(loss if tensor is None else tensor.item())
                    pending = self._pending_losses
                    pending.append(value)
                    self._pending_steps.append(self.step)
                    if not isfinite(value) or self._sampled or len(pending) >= MAX_PENDING_LOSSES:
                        self.flush()
                else:
                    kept = loss if tensor is None or not tensor.requires_grad else tensor.detach()
                    self._add_loss(kept, flush=self._sampled)
            if val_loss is not None:
                self.flush()
                value = float(val_loss.detach() if isinstance(val_loss, torch.Tensor) else val_loss)
                self.obs.val_losses.append((self.epoch, value))
                registry.run("validation", self)
        except TrainingError:
            raise
        except Exception as exc:
            self.internal_error("record()", exc)

    def _take_target(self, target: torch.Tensor) -> None:
        """A training step's targets, given with its loss (without a hooked loss module, the targets arrive
        here, after the loss ran)."""
        self.last_target = target
        targets = self.obs.targets  # the same batch again (full batch) is counted by repeat(), checks skipped
        fresh = self.data is None and not targets.repeat(target)
        if fresh and target.is_floating_point() and target.ndim and target.numel():
            targets.add(target)
        if not self.loss_hooked and self._last_output is not None:
            self._see_loss_input(self._last_output, target)

    def _add_loss(self, value: torch.Tensor | float, *, flush: bool) -> None:
        pending = self._pending_losses
        pending.append(value)
        self._pending_steps.append(self.step)
        if flush or len(pending) >= MAX_PENDING_LOSSES:
            self.flush()

    @never_raises("flush()")
    def flush(self) -> None:
        """Read pending losses from the device (one synchronisation) and run the loss checks."""
        if not self._pending_losses:
            return
        # taken first: losses that cannot be read must not stay pending and fail every later read
        pending, steps = self._pending_losses, self._pending_steps
        self._pending_losses, self._pending_steps = [], []
        values: list[float]
        if self._losses_on_host:  # record() read them as they came: floats already
            values = cast(list[float], pending)
        elif (
            device := next((v.device for v in pending if isinstance(v, torch.Tensor) and v.device.type != "cpu"), None)
        ) is not None:
            # one transfer (one synchronisation) for all of them
            values = torch.stack([torch.as_tensor(v, device=device).reshape(()).float() for v in pending]).tolist()
        else:  # host values: reading them one by one costs nothing
            values = [float(v) for v in pending]
        self.flushed_from = len(self.obs.losses)
        self.obs.losses.extend(values)
        # a finite sum: all finite (one C loop), as nearly always
        finite = values if math.isfinite(sum(values)) else [v for v in values if math.isfinite(v)]
        self.obs.finite_losses.extend(finite)
        self.obs.best_loss = min(self.obs.best_loss, *finite) if finite else self.obs.best_loss
        self.obs.loss_steps.extend(steps)
        registry.run("losses", self)

    def forget_losses(self) -> None:
        """Start the loss history afresh (after a repair rolled the model back)."""
        obs = self.obs
        obs.losses.clear()
        obs.loss_steps.clear()
        obs.finite_losses.clear()
        obs.best_loss = math.inf
        self.flushed_from = 0

    @never_raises("end_epoch()")
    def end_epoch(self, epoch: int, train_loss: float | None = None) -> None:
        """Mark the end of an epoch (fit calls this; in a user loop it is inferred from steps_per_epoch)."""
        # one-step epochs (full batch) check their losses on sampled steps only, or when one went bad
        quiet = self.steps_per_epoch == 1 and not self._sampled and math.isfinite(train_loss or 0.0)
        if train_loss is not None and self.losses_from_epochs:  # the step's loss, as fit read it
            self._add_loss(train_loss, flush=False)
        if not quiet:
            self.flush()
        if train_loss is not None:
            self.obs.epoch_losses.append(train_loss)
        if not quiet:
            registry.run("epoch", self)
        self.epoch = epoch + 1

    @never_raises("inspect_data()")
    def inspect_data(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        X_val: torch.Tensor | None = None,
        y_val: torch.Tensor | None = None,
    ) -> None:
        """Whole-dataset checks before training (trainwise's own loop knows all of its data)."""
        self.data = (X, y, X_val, y_val)
        self._add_label_stats(y)
        registry.run("data", self)

    @never_raises("close()")
    def close(self) -> None:
        """Remove every hook (the model and optimizer are left as they were)."""
        try:
            self.flush()
        finally:  # the hooks go whatever happened
            self._remove_all_hooks()

    def _remove_all_hooks(self) -> None:
        self._detach_broken_hooks()
        self._set_sampled_hooks(False)
        self._sampled_hook_factories.clear()
        self._remove_first_forward_hooks()
        self._weight_copy = None
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> Doctor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ failures of the doctor itself

    def internal_error(self, what: str, exc: BaseException) -> None:
        """The doctor's own code failed (a check, a hook, a method): report it once as doctor-error. The
        user's training goes on; only the part that failed is off for the rest of the run."""
        if ("doctor-error", what) in self._findings:
            return
        try:
            self.raise_finding(
                "doctor-error",
                f"The doctor's {what} failed with {first_line(exc)}; it is off for the rest of this run (training "
                "itself is not affected).",
                suggestion="nothing to change in your code; please report this trainwise bug with the message",
                subject=what,
            )
        except TrainingError:
            raise
        except Exception:  # a printer that fails: the finding is stored, the user's loop goes on
            pass

    def guard(self, fn: Callable[..., Any], what: str, group: list[GuardedHook] | None = None) -> GuardedHook:
        """`fn` as a hook that cannot raise into the user's code (see GuardedHook)."""
        return GuardedHook(self, fn, what, group)

    def hook(
        self,
        register: Callable[[Callable[..., Any]], Any],
        fn: Callable[..., Any],
        what: str,
        *,
        sampled: bool = False,
        group: list[GuardedHook] | None = None,
    ) -> GuardedHook:
        """Register `fn` through `register` (module.register_forward_hook, ...), guarded: always, or only
        around sampled steps (sampled=True). Removed by close()."""
        return self.attach(self.guard(fn, what, group), register, sampled=sampled)

    def attach(
        self, guarded: GuardedHook, register: Callable[[Callable[..., Any]], Any], *, sampled: bool = False
    ) -> GuardedHook:
        """Register a guarded hook through `register`: always, or only around sampled steps."""
        guarded.register = register
        if sampled:
            self.add_sampled_hook(guarded.attach)
        else:
            self._handles.append(guarded.attach())
        return guarded

    def _detach_broken_hooks(self) -> None:
        """Remove the hooks that failed (called where torch is not iterating over them)."""
        while self._broken_hooks:
            hook = self._broken_hooks.pop()
            if hook.handle is not None:
                hook.handle.remove()
                hook.handle = None

    # ------------------------------------------------------------------ raising findings

    def raise_finding(
        self,
        code: str,
        message: str,
        *,
        evidence: dict[str, float] | None = None,
        suggestion: str = "",
        subject: str | None = None,
    ) -> Finding | None:
        """Add a finding; print it the first time; stop on errors in stop mode. A finding raised again (same code
        and subject) takes the new measurement whole: message, evidence and fix together, so they never mix
        two measurements' numbers (fit's repair raises lr-too-high again at each lowered lr); its step and
        epoch stay those of the first time, and `raised` counts the repeats.

        The cause graph (findings.SYMPTOMS, MISREADINGS) decides the rest: a finding that misreads a known cause
        is not raised (None), a cause withdraws the misreadings raised before it, and a symptom names its cause."""
        if any(self.has(cause) for cause in misread_by(code)):
            return None
        key = (code, subject)
        self.raised[code] = self.raised.get(code, 0) + 1
        existing = self._findings.get(key)
        if existing is not None:
            existing.message, existing.evidence = message, dict(evidence or {})
            existing.suggestion = suggestion
            return existing
        finding = Finding(
            code=code,
            severity=CODES[code],
            message=message,
            evidence=dict(evidence or {}),
            suggestion=suggestion,
            step=self.step,
            epoch=self.epoch,
            subject=subject,
            cause=next((cause for cause in causes_of(code) if self.has(cause)), None),
        )
        self._findings[key] = finding
        self._codes.add(code)
        for other in list(self._findings.values()):
            if other.code in SYMPTOMS.get(code, ()) and other.cause is None:
                other.cause = code
            if other.code in MISREADINGS.get(code, ()):
                del self._findings[(other.code, other.subject)]
                self._codes = {code for code, _ in self._findings}
                self.withdrawn.append((other.code, code))
                if self.mode in ("warn", "stop"):
                    self.printer(f"withdrawn {other.code}: {code} explains what it saw")
        if self.mode in ("warn", "stop"):
            self.printer(finding.format())
        if self.mode == "stop" and finding.severity == "error":
            raise TrainingError(finding.format())
        return finding

    # ------------------------------------------------------------------ hooks

    def _install_hooks(self) -> None:
        # the model's own forward hooks: every step in a user's loop (they see eval passes, batches
        # of any size), sampled steps only under fit, which hands over its data and batches itself
        # every hook is guarded: a failure inside the doctor becomes doctor-error, never the user's exception
        driven = self.driven
        step_hooks: list[GuardedHook] = []  # the pre- and post-step hooks fail together
        self.step_hooks = StepHooks(
            self.guard(self._on_forward_pre, "forward pre-hook"),
            self.guard(self._on_forward, "forward hook"),
            self.guard(self._on_step_pre, "optimizer step pre-hook", step_hooks),
            self.guard(self._on_step_post, "optimizer step hook", step_hooks),
        )
        if not self.forwarded:  # autowatch's session hooks these calls already: it calls step_hooks itself
            self.attach(self.step_hooks.forward_pre, self.model.register_forward_pre_hook, sampled=driven)
            self.attach(self.step_hooks.forward, self.model.register_forward_hook, sampled=driven)
            # fit tells the doctor of each step's end; the step's start matters when sampled
            self.attach(self.step_hooks.step_pre, self.optimizer.register_step_pre_hook, sampled=driven)
            if not driven:
                self.attach(self.step_hooks.step_post, self.optimizer.register_step_post_hook)
        # sampled steps only: attached just before them and removed after, so the other steps run
        # without them (a hooked module takes PyTorch's slower call path)
        for name, module in self.modules.items():
            if isinstance(module, nn.ReLU | nn.ReLU6):
                label = name or "relu"
                self.hook(module.register_forward_hook, self._relu_hook(label), f"ReLU hook of {label}", sampled=True)
            elif isinstance(module, WEIGHT_LAYERS) and module is not self.model:  # removed after the first forward
                layer_hook = self.guard(self._layer_hook(name), f"layer hook of {name}")
                self._first_forward_handles.append(module.register_forward_hook(layer_hook))
                layer_hook.handle = self._first_forward_handles[-1]
        if isinstance(self.loss_fn, nn.Module):
            self.hook(self.loss_fn.register_forward_pre_hook, self._on_loss_pre, "loss pre-hook", sampled=True)
        # fit zeroes the gradients itself: the zero_grad probe is for users' loops
        self._probes = [] if self.driven else [ZeroGradProbe(p) for p in self._probe_params()]
        for probe in self._probes:
            register = functools.partial(TensorHookHandle, probe.param)
            self.hook(register, self._probe_hook(probe), "zero_grad probe (tensor hook)", sampled=True)

    def add_sampled_hook(self, attach: Callable[[], Any]) -> None:
        """Register a hook that is only needed on sampled steps: `attach()` installs it and returns its
        handle; the doctor installs it before each sampled step and removes it after."""
        self._sampled_hook_factories.append(attach)
        if self._sampled:
            self._sampled_handles.append(attach())

    def _set_sampled_hooks(self, attached: bool) -> None:
        if attached and not self._sampled_handles:
            handles = [attach() for attach in self._sampled_hook_factories]
            self._sampled_handles = [handle for handle in handles if handle is not None]  # None: a broken hook
        elif not attached and self._sampled_handles:
            for handle in self._sampled_handles:
                handle.remove()
            self._sampled_handles = []

    def _probe_params(self) -> list[nn.Parameter]:
        """Small optimized parameters whose gradients tell whether zero_grad ran: the first and the last (a
        vector where there is one), so a zero_grad() on one part of the model (encoder.zero_grad() where the
        optimizer also holds the head) shows on the other."""
        candidates = [info.param for info in self.params if info.in_optimizer]
        vectors = [p for p in candidates if p.numel() >= 2] or candidates
        if not vectors:
            return []
        first, last = vectors[0], vectors[-1]
        return [first] if first is last else [first, last]

    def defer(self, value: torch.Tensor, use: Callable[[float], None]) -> None:
        """Give `use` the number in `value` (one element) at the end of this step, read with the sampled step's
        other statistics in one transfer, instead of reading it now: on a GPU each read waits for the device
        to finish everything queued (the checks of the step's end see it)."""
        self._deferred.append((value, use))

    @property
    def sampled(self) -> bool:
        """Is the current step (the one the next optimizer.step() completes) a sampled step?"""
        return self._sampled

    def _is_sampled(self, step: int) -> bool:
        """Every step of the warm-up, then pairs of consecutive steps (so the zero_grad probe can compare
        a step with the one before, and gradient directions of successive batches can be compared) ever
        further apart: every `sample_every` steps at first, then every 20% of the steps so far. Long runs
        then cost a few dozen samples, not one per N steps. Full-batch epochs under fit sample single
        steps: there is no probe, and every step sees the same batch."""
        if step < self.warmup:
            return True
        while step >= self._next_sample + self._sample_span:  # steps only grow: move the schedule along
            self._next_sample += max(self.sample_every, self._next_sample // SAMPLE_SHARE)
        return 0 <= step - self._next_sample < self._sample_span

    def _on_forward_pre(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        x = _first_tensor(args)
        if x is None:
            return
        if not torch.is_grad_enabled():
            if module.training and self.mode_dependent:
                self.obs.eval_forwards_in_train_mode += 1
            self.last_eval_input = x
            return
        self._last_input = x
        if self._sampled and x.is_floating_point() and self.data is None:  # else check_dataset judged the scale
            self._add_input_stats(x)
        if self._collect_keys and x.ndim >= 2 and self.data is None:  # fit hands over its data instead
            self._add_train_keys(x)

    def _on_forward(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if not isinstance(output, torch.Tensor):
            return
        if not torch.is_grad_enabled():
            registry.run("eval_forward", self)
            return
        self._last_output = output
        if not self._first_forward_done:
            self._first_forward_done = True
            self._remove_first_forward_hooks()

    @property
    def batch_size(self) -> int | None:
        """Rows of the latest training output (None before one is seen)."""
        output = self._last_output
        return None if output is None else (output.shape[0] if output.ndim else 1)

    @property
    def output_width(self) -> int | None:
        """Outputs per row of the latest training output: its last dimension (1 for one value per row)."""
        output = self._last_output
        return None if output is None else (output.shape[-1] if output.ndim > 1 else 1)

    def _remove_first_forward_hooks(self) -> None:
        for handle in self._first_forward_handles:
            handle.remove()
        self._first_forward_handles.clear()

    def _relu_hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if not self._sampled or not isinstance(output, torch.Tensor) or output.ndim < 2 or output.shape[0] < 8:
                return
            # a unit is dead on this batch when it is zero for every sample (and every position): ReLU
            # outputs are >= 0, so when its sum is zero
            units = output.shape[1]
            alive = torch.count_nonzero(output.detach().sum(dim=[d for d in range(output.ndim) if d != 1]))
            fractions = self.obs.dead_fractions.setdefault(name, [])
            self.defer(alive, lambda count: fractions.append(1.0 - count / units))

        return hook

    def _layer_hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if self._first_forward_done or not torch.is_grad_enabled() or not isinstance(output, torch.Tensor):
                return
            if output.numel() > 1:
                self.obs.layer_stds.append((name, float(output.detach().float().std())))

        return hook

    def _on_loss_pre(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        tensors = len(args) >= 2 and isinstance(args[0], torch.Tensor) and isinstance(args[1], torch.Tensor)
        if tensors and torch.is_grad_enabled():
            self.last_target = args[1]
            self._see_loss_input(args[0], args[1])

    def _see_loss_input(self, output: torch.Tensor, target: torch.Tensor) -> None:
        self.loss_inputs_seen += 1
        if self.loss_inputs_seen > 3 and not self._sampled:
            return
        self.loss_output, self.loss_target = output.detach(), target.detach()
        if self.data is None:  # with the whole dataset known, its labels were counted already
            self._add_label_stats(self.loss_target)
        registry.run("loss_input", self)

    def _probe_hook(self, probe: ZeroGradProbe) -> Callable[[torch.Tensor], None]:
        def hook(grad: torch.Tensor) -> None:
            if self._sampled:
                probe.add_incoming(grad)

        return hook

    def _on_step_pre(self, *_: Any) -> None:
        """The optimizer's step pre-hook: before_step() has work only on sampled steps and before the first
        forward is known (an unsampled step runs this one test)."""
        if self._sampled or not self._first_forward_done:
            self.before_step()

    @never_raises("before_step()")
    def before_step(self) -> None:
        """The gradients are ready and optimizer.step() is next (an optimizer hook calls this)."""
        if not self._first_forward_done and self.obs.layer_stds:  # model.forward(x) called directly: the layer
            # hooks saw the first forward, the model's own hook did not run
            self._first_forward_done = True
            self._remove_first_forward_hooks()
        if not self._sampled:
            return
        self._check_zero_grad()
        weights = [info.param.detach() for info in self.params]
        self._step_lrs = self._plain_sgd_lrs()
        # the update is measured as the weights' change, except where it is known: lr x grad
        self._pre_step_weights = self._copy_weights(weights) if self._step_lrs is None else []
        grads = [info.param.grad for info in self.params]
        names = [info.name for info in self.params]
        present = [(n, g) for n, g in zip(names, grads, strict=True) if g is not None]
        self.obs.grad_checks += 1
        for info, g in zip(self.params, grads, strict=True):
            if g is None and info.in_optimizer:
                self.obs.params_without_grad[info.name] = self.obs.params_without_grad.get(info.name, 0) + 1
        # the gradients' and the weights' norms in one call (read after the step, with the update's)
        norms = torch._foreach_norm([*(g for _, g in present), *weights]) if weights else []
        self._grad_norms_now = dict(zip([n for n, _ in present], norms[: len(present)], strict=True))
        self._weight_norms_now = list(norms[len(present) :])
        self._grad_direction_now = self._project([g for _, g in present]) if present else None
        matrices = [(info.name, g, w) for info, g, w in zip(self.params, grads, weights, strict=True)
                    if g is not None and w.ndim >= 2]  # fmt: skip
        hidden = matrices[:-1]
        self._hidden_matrices = [name for name, _, _ in hidden]
        dots = [torch.vdot(g.reshape(-1), w.reshape(-1)).float() for _, g, w in hidden]
        self._grad_weight_dot_now = torch.stack(dots).sum() if dots else None

    def after_step(self, inputs: torch.Tensor | None = None) -> None:
        """optimizer.step() has run (fit calls this; in a user's loop an optimizer hook); `inputs` are the
        step's batch."""
        try:  # as never_raises does, without its wrapper's call on every step
            if inputs is not None:
                self._last_input = inputs
            self._on_step_post()
        except TrainingError:
            raise
        except Exception as exc:
            self.internal_error("after_step()", exc)

    def _on_step_post(self, *_: Any, call: tuple[tuple[Any, ...], Any] | None = None) -> None:
        """The step's end: the optimizer's step post-hook (guarded), or after_step(). `call`: the step's (last)
        training call, from a caller that did not pass it on as it ran (see _take_call)."""
        if call is not None:
            self._take_call(call)
        was_sampled = self._sampled
        # read before the step counts, so that what the deferred numbers raise carries this step
        before = self._pre_step_weights if was_sampled else None
        sample = self._read_step(before) if was_sampled or self._deferred else None
        if self.mode_dependent and not self.model.training:
            self.obs.steps_in_eval_mode += 1
        step = self.step = self.step + 1
        # between two samples (nearly every step) the schedule needs no look: _next_sample >= warmup
        self._sampled = step < self.warmup or (step >= self._next_sample and self._is_sampled(step))
        if self._sampled != was_sampled:
            self._set_sampled_hooks(self._sampled)
        if self.every_call or self._sampled:  # once off, it stays off between samples (what else sets it only
            # turns off: the rows collected, the first forward seen)
            self.every_call = self._sampled or self._collect_keys or not self._first_forward_done
        if self.steps_per_epoch and step % self.steps_per_epoch == 0 and not self.driven:
            self.end_epoch(self.epoch)
        if sample is None:
            return
        if not self.obs.samples:
            self.obs.first_grad_norms = dict(sample.grad_norms)
            self.obs.first_weight_norms = dict(sample.weight_norms)
        self.obs.samples.append(sample)
        if len(self.obs.samples) > 200:  # keep the first few and a recent window
            del self.obs.samples[10]
        for probe in self._probes:
            probe.remember(sample.step)
        registry.run("step", self)

    def _take_call(self, call: tuple[tuple[Any, ...], Any]) -> None:
        """The step's (last) training call (args, output), handed over at the step's end by a caller that did
        not pass it on as it ran (`every_call` off): all that the forward hooks would take of it then."""
        args, output = call
        x = _first_tensor(args)
        if x is not None:
            self._last_input = x
        if isinstance(output, torch.Tensor):
            self._last_output = output

    def quiet_step_end(
        self, call: tuple[tuple[Any, ...], Any] | None, loss: torch.Tensor, target: torch.Tensor | None
    ) -> bool:
        """A forwarding caller's (autowatch's) step end between samples, with a host loss of one element:
        what `_on_step_post(call=call)` and then `record(loss, target=target)` do on such a step, in one call
        without their general cases (the two cost a third of a tiny model's watched step). Returns False,
        having done nothing, when the step needs them: a sample or a deferred read due, an epoch's end, a
        step in eval mode, a broken hook, the first steps."""
        step = self.step + 1
        if (
            step >= self._next_sample or self._sampled or self.every_call or self._deferred or self._broken_hooks
            or self.steps_per_epoch or not self._losses_on_host or (self.mode_dependent and not self.model.training)
        ):  # fmt: skip
            return False
        if call is not None:
            self._take_call(call)
        self.step = step
        if target is not None:
            self._take_target(target)
        value = float(loss.item())  # record()'s host path, on a step known not sampled
        pending = self._pending_losses
        pending.append(value)
        self._pending_steps.append(step)
        if not isfinite(value) or len(pending) >= MAX_PENDING_LOSSES:
            self.flush()
        return True

    def _read_step(self, before: list[torch.Tensor] | None) -> Sample | None:
        """One host read for everything this step measured: a sampled step's norms (its Sample; `before`: the
        weights' copy from before the step, None on other steps) and the numbers the checks deferred, which
        go to their users here."""
        deferred, self._deferred = self._deferred, []
        later = [value.detach().float().reshape(()) for value, _ in deferred]
        if before is None:
            for (_, use), value in zip(deferred, torch.stack(later).tolist() if later else [], strict=True):
                use(value)
            return None
        weights = [info.param.detach() for info in self.params]
        update_norms: list[torch.Tensor] = []
        if self._step_lrs is None and weights:  # the update, in the copy's own memory: its norm is all that is kept
            torch._foreach_sub_(before, weights)
            update_norms = list(torch._foreach_norm(before))
        self._pre_step_weights = None
        names = [info.name for info in self.params]
        dot = [] if self._grad_weight_dot_now is None else [self._grad_weight_dot_now]
        packed = torch.stack(
            [*(t.float() for t in self._grad_norms_now.values()), *(t.float() for t in update_norms),
             *(t.float() for t in self._weight_norms_now), *dot, *later]
        ).tolist() if names or later else []  # fmt: skip
        for (_, use), value in zip(deferred, packed[len(packed) - len(later) :], strict=True):
            use(value)
        del packed[len(packed) - len(later) :]
        dot_value = packed.pop() if dot and packed else None
        n_grads, n_updates = len(self._grad_norms_now), len(update_norms)
        grad_norms = dict(zip(self._grad_norms_now, packed[:n_grads], strict=True))
        if self._step_lrs is None:
            update = dict(zip(names, packed[n_grads : n_grads + n_updates], strict=True))
        else:
            update = {name: lr * grad_norms.get(name, 0.0) for name, lr in zip(names, self._step_lrs, strict=True)}
        weight = dict(zip(names, packed[n_grads + n_updates :], strict=True))
        sample = Sample(self.step, grad_norms, weight, update, self._grad_direction_now)
        if dot_value is not None and math.isfinite(dot_value):
            g_norm = whole_norm(grad_norms.get(name, 0.0) for name in self._hidden_matrices)
            w_norm = whole_norm(weight.get(name, 0.0) for name in self._hidden_matrices)
            if g_norm > 0 and w_norm > 0:
                sample.grad_weight_cosine = dot_value / (g_norm * w_norm)
        return sample

    # ------------------------------------------------------------------ statistics helpers

    def _check_zero_grad(self) -> None:
        """On a sampled step: did any probe's gradient carry the previous step's (zero_grad missed)?"""
        verdicts = [probe.carried(self.step) for probe in self._probes]
        if any(v is not None for v in verdicts):
            self.obs.zero_grad_checked += 1
            self.obs.zero_grad_missed += any(verdicts)

    def _plain_sgd_lrs(self) -> list[float] | None:
        """Each parameter's lr when the optimizer is torch's plain SGD (no momentum, weight decay or
        maximize): its step moves every weight by exactly lr x grad, so the update's size needs no copy
        of the weights. None for any other optimizer."""
        if type(self.optimizer) is not torch.optim.SGD:
            return None
        lr_of: dict[int, float] = {}
        for group in self.optimizer.param_groups:
            if group["momentum"] or group["weight_decay"] or group.get("maximize") or group.get("differentiable"):
                return None
            for param in group["params"]:
                lr_of[id(param)] = float(group["lr"])
        return [lr_of.get(id(info.param), 0.0) for info in self.params]

    def _copy_weights(self, weights: list[torch.Tensor]) -> list[torch.Tensor]:
        """The weights before the step, in a buffer kept from one sampled step to the next (allocating
        it each time costs more than the copy)."""
        copy = self._weight_copy
        if copy is None or [t.shape for t in copy] != [w.shape for w in weights]:
            copy = self._weight_copy = [torch.empty_like(w) for w in weights]
        if weights:
            torch._foreach_copy_(copy, weights)
        return copy

    def _project(self, grads: list[torch.Tensor]) -> torch.Tensor:
        """A 128-number sketch of the whole gradient, to compare directions between steps: entry i, with a
        fixed random sign, is added into bucket i mod 128, so inner products (and cosines) are kept in
        expectation. Two small operations; a dense random projection reads a matrix far larger than the
        gradient sample from memory on every sampled step."""
        # at most 4096 evenly spaced entries of each tensor (views: one copy, by cat)
        parts = [g.reshape(-1)[:: g.numel() // 4096 + 1] if g.numel() > 4096 else g.reshape(-1) for g in grads]
        size = sum(part.numel() for part in parts)
        if self._projection is None or self._projection.numel() != -(-size // SKETCH) * SKETCH:
            padded = -(-size // SKETCH) * SKETCH
            signs = torch.randint(0, 2, (padded,), generator=self._direction_seed).float() * 2 - 1
            self._projection = signs.to(parts[0].device)
            self._projection_pad = torch.zeros(padded - size, device=parts[0].device)
        flat = torch.cat([*parts, self._projection_pad]).float()
        return (flat * self._projection).view(-1, SKETCH).sum(0)

    def _add_input_stats(self, x: torch.Tensor) -> None:
        if x.ndim < 2 or x.shape[0] < 2 or x.numel() == 0:
            return
        sums, sq, rows = self._input_sums(x)
        obs = self.obs
        if obs.input_sum is None or obs.input_sum.shape != sums.shape:
            obs.input_sum, obs.input_sq_sum, obs.input_count = sums, sq, 0
        else:
            obs.input_sum = obs.input_sum + sums
            obs.input_sq_sum = obs.input_sq_sum + sq  # type: ignore[operator]
        obs.input_count += rows
        obs.input_dtype = x.dtype

    def _add_train_keys(self, x: torch.Tensor) -> None:
        """Remember training samples (for train-val-overlap) until a whole pass has been seen."""
        rows = self.obs.train_rows
        rows.add(x)
        if rows.repeated_batches >= 3 or len(rows.known) >= MAX_TRAIN_KEYS:
            self._collect_keys = False

    def _add_label_stats(self, target: torch.Tensor) -> None:
        obs = self.obs
        if target.is_floating_point() or target.ndim != 1 or target.numel() == 0:
            return
        labels = target.long()
        low, high = int(labels.min()), int(labels.max())
        obs.min_label = low if obs.min_label is None else min(obs.min_label, low)
        obs.max_label = high if obs.max_label is None else max(obs.max_label, high)
        if low < 0:
            return
        counts = torch.bincount(labels.cpu(), minlength=high + 1)
        if obs.label_counts is None:
            obs.label_counts = counts
        else:
            size = max(len(obs.label_counts), len(counts))
            obs.label_counts = _pad(obs.label_counts, size) + _pad(counts, size)
        obs.labels_seen += labels.numel()

    # ------------------------------------------------------------------ helpers for checks

    def recent_samples(self, n: int) -> list[Sample]:
        return self.obs.samples[-n:]

    def input_moments(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Per-feature mean and standard deviation of the training inputs seen on sampled steps."""
        obs = self.obs
        if obs.input_sum is None or obs.input_sq_sum is None or obs.input_count < 2:
            return None
        mean = obs.input_sum / obs.input_count
        var = (obs.input_sq_sum / obs.input_count - mean.square()).clamp(min=0)
        return mean.cpu(), var.sqrt().cpu()

    def feature_name(self, index: int) -> str:
        return self.feature_names[index] if index < len(self.feature_names) else f"feature {index}"

    def lrs(self) -> list[float]:
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    def loss_kind(self) -> str:
        """'cross_entropy', 'nll', 'mse', ... for torch's loss modules and functions, '' when unknown."""
        from trainwise.losses import loss_name

        loss_fn = self.loss_fn
        if loss_fn is None:
            return ""
        if self._loss_kind[0] is not loss_fn:  # asked often: a module's missing attribute costs an exception
            function = getattr(loss_fn, "func", loss_fn)  # functools.partial(F.mse_loss, ...)
            kind = loss_name(loss_fn) or FUNCTIONAL_LOSSES.get(getattr(function, "__name__", ""), "")
            self._loss_kind = (loss_fn, kind)
        return self._loss_kind[1]

    def loss_reduction(self) -> str | None:
        from trainwise.losses import loss_reduction

        return None if self.loss_fn is None else loss_reduction(self.loss_fn)


_KEY_WEIGHTS: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}  # (features, device) -> columns, weights


KEY_FEATURES = 64


def feature_sums(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per feature (tabular (N, F)) or per channel (images (N, C, ...)): the sums and sums of squares of a
    batch, float64, and its rows."""
    values = x.detach() if x.ndim == 2 else x.detach().transpose(0, 1).flatten(1).T  # flatten: no -1 to infer
    values = values.double()
    return values.sum(0), values.square().sum(0), values.shape[0]


def _first_tensor(args: tuple[Any, ...]) -> torch.Tensor | None:
    """A call's input: its first argument, or else the first tensor among them."""
    if args and isinstance(args[0], torch.Tensor):
        return args[0]
    return next((a for a in args if isinstance(a, torch.Tensor)), None)


def row_keys(x: torch.Tensor) -> torch.Tensor:
    """One number per sample that is equal for identical samples (float64, on x's device): a fixed random
    projection of a fixed random subset of at most 64 features (enough to tell real samples apart, cheap on
    every batch)."""
    if x.ndim == 0 or x.numel() == 0:  # no rows, or rows without features: nothing to tell apart
        return torch.zeros(0, dtype=torch.float64, device=x.device)
    flat = x.detach().flatten(1) if x.ndim > 1 else x.detach().unsqueeze(1)
    key = (flat.shape[1], str(flat.device))
    if key not in _KEY_WEIGHTS:
        generator = torch.Generator().manual_seed(99)
        columns = torch.randperm(flat.shape[1], generator=generator)[:KEY_FEATURES].sort().values
        weights = torch.rand(len(columns), generator=generator, dtype=torch.float64)
        _KEY_WEIGHTS[key] = columns.to(flat.device), weights.to(flat.device)
    columns, weights = _KEY_WEIGHTS[key]
    return flat.index_select(1, columns).double() @ weights


def _off_directions(a: torch.Tensor, rows: torch.Tensor) -> list[float]:
    """How far a is from the line through each row b: |a - proj_b(a)| / |a| (0 when parallel, 1 when a or b
    is zero), read in one transfer."""
    squares = (rows * rows).sum(1)
    projections = ((rows @ a) / squares).unsqueeze(1) * rows
    values = torch.cat([(a - projections).norm(dim=1), squares, a.norm().reshape(1)]).tolist()
    count = len(rows)
    a_norm = values[-1]
    return [
        1.0 if a_norm == 0 or square == 0 else off / a_norm
        for off, square in zip(values[:count], values[count : 2 * count], strict=True)
    ]


def _pad(counts: torch.Tensor, size: int) -> torch.Tensor:
    return torch.nn.functional.pad(counts, (0, size - len(counts)))


def whole_norm(norms: Iterable[float]) -> float:
    """The norm of several tensors taken together, from their norms."""
    return math.sqrt(sum(v * v for v in norms))


def finite(value: float) -> bool:
    return math.isfinite(value)
