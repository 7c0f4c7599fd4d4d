"""Numbers that went wrong: non-finite losses and data, exploding and vanishing gradients.

Codes: nonfinite-loss, nonfinite-data, exploding-gradients, vanishing-gradients.

A non-finite loss is traced to one cause, checked in this order:
- bad data: the batch that produced it held NaN or inf (nonfinite-data). Every training forward leaves
  one sum of its inputs, of the model's outputs and of the loss module's targets on the device (three
  small reductions, no host synchronisation), read only when a non-finite loss turns up, so the batch
  that caused it is known even between sampled steps;
- exploding gradients: the backward signal grew more than EXPLODING_RATIO through the layers;
- a divergence that the learning rate caused (lr-too-high, raised by the learning-rate family);
- the loss function itself: inputs and model outputs were finite at that step, the loss was not
  growing, and still the loss came out NaN or inf - log(0), 0 * inf, division by zero (a hand-written
  binary cross-entropy: sigmoid(17) rounds to 1.0 in float32, and log(1 - 1.0) is -inf).
Each episode of non-finite losses (a NaN after finite losses) is diagnosed once.

Gradient flow is judged on deep models (at least three weight layers) from two statistics of a
sampled step:
- the backward signal: the root-mean-square gradient of the loss with respect to each weight layer's
  output (He et al. 2015, "Delving deep into rectifiers", analyse exactly this quantity: it grows or
  shrinks geometrically with depth when the initial gain per layer is off). We compare the first layer's
  with the last hidden layer's (the output layer is left out: its width, often 1-10 units, skews the
  RMS by itself). A kaiming-initialized ReLU net gives about 1 at any depth; PyTorch's default init
  shrinks it ~0.4x per ReLU layer, so shallow nets give 0.1-1. Above EXPLODING_RATIO (100) the early
  layers receive gradients two orders of magnitude larger than the late ones: exploding, on two
  sampled steps in a row (or one, when the loss turns non-finite right after). This works for ReLU nets
  too, where weight-gradient ratios cannot see it (in a positively homogeneous net the forward growth
  cancels the backward growth in every weight gradient), and it does not depend on the input scale,
  so unscaled inputs are not mistaken for it. Growth that only appears after the loss has risen
  DIVERGED_FACTOR x above its start is a consequence of divergence (lr-too-high), not its cause.
- the weights' relative gradient |g|/|w|, first layer over last (AutoTrainer's statistic: vanishing
  when the ratio is below 1e-3 and the first layer's own is below 1e-4: it hardly learns).
Vanishing needs both statistics (when the backward signal is available), so inputs of a tiny scale,
which shrink only the first layer's weight gradient, are not called vanishing gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trainwise.doctor.core import WEIGHT_LAYERS
from trainwise.doctor.registry import runs_on

if TYPE_CHECKING:
    from trainwise.doctor.core import Doctor, Sample

# AutoTrainer's thresholds (first/last layer gradient ratio): > 70 exploding, < 1e-3 vanishing.
# Backward signal growth (first hidden layer's output gradient over the last one's): healthy nets give
# 0.3-1, so 100 is two orders of magnitude beyond; relative weight gradients: 1e-3 and 1e-4 as AutoTrainer.
EXPLODING_RATIO = 100.0
VANISHING_RATIO = 1e-3
VANISHING_RELATIVE_GRAD = 1e-4
SAMPLES_TO_CONFIRM = 2
MIN_WEIGHT_LAYERS = 3
# recurrent layers: the backward signal through time, first time step's input gradient over the last one's
RECURRENT_LAYERS = (nn.RNN, nn.LSTM, nn.GRU)
MIN_TIME_STEPS = 8
VANISHING_THROUGH_TIME = 1e-8
# exploding gradients are a property of the architecture and its init, seen before training harms the
# loss; growth first seen after the loss rose this far above its start is a consequence of divergence
DIVERGED_FACTOR = 10.0
# forwards remembered between two reads of the losses (at most 4 x sample_every steps apart; a loop that
# never records stays bounded)
MAX_PENDING = 256


@dataclass
class _State:
    """What this family keeps per doctor: per-forward finiteness sums and per-layer backward signals."""

    pending: list[tuple[int, torch.Tensor | None, torch.Tensor | None]] = field(default_factory=list)
    pending_targets: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    slots: list[tuple[torch.Tensor, int] | None] = field(default_factory=list)  # layer-output grad (norm, numel)
    flow: list[tuple[int, float, int]] = field(default_factory=list)  # (step, growth, layer calls)
    # (step, growth, time steps, module name): the backward signal through a recurrent layer's time steps
    through_time: list[tuple[int, float, int, str]] = field(default_factory=list)
    # recorded after optimizer.step() (the usual loop), the loss of the forward at step s carries step s + 1;
    # recorded before it, step s. Learned from the latest forward whenever losses are read.
    record_offset: int = 1


def _state(doctor: Doctor) -> _State:
    return doctor.family_state(_State)


def _float_sum(tensor: Any) -> torch.Tensor | None:
    """One reduction: NaN or inf anywhere makes it non-finite (read only when a loss goes bad).

    Only on accelerators, where losses are read in batches and the bad batch is gone by then. On the
    CPU the doctor reads each loss as it comes (cheap there) and looks at the batch still in hand."""
    if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point() or tensor.numel() == 0:
        return None
    if tensor.device.type == "cpu":
        return None
    if tensor.dtype in (torch.float16, torch.bfloat16):  # a half sum of large finite values overflows
        return tensor.detach().sum(dtype=torch.float32)
    return tensor.detach().sum()


# ---------------------------------------------------------------------------------------------- hooks


@runs_on("setup")
def install_hooks(doctor: Doctor) -> None:
    """Hooks of this family (removed by Doctor.close with the core's own)."""
    state = _state(doctor)

    def before_forward(module: nn.Module, args: tuple[Any, ...]) -> None:
        if not torch.is_grad_enabled():
            return
        state.slots = []
        x = next((a for a in args if isinstance(a, torch.Tensor)), None)
        state.pending.append((doctor.step, _float_sum(x), None))
        if len(state.pending) > max(MAX_PENDING, 8 * doctor.sample_every):
            del state.pending[0]

    def after_forward(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if not torch.is_grad_enabled() or not state.pending:
            return
        step, inputs, _ = state.pending[-1]
        state.pending[-1] = (step, inputs, _float_sum(output))

    def layer_output(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if not doctor.sampled or not torch.is_grad_enabled():
            return
        if not isinstance(output, torch.Tensor) or not output.requires_grad or output.numel() == 0:
            return
        index = len(state.slots)
        state.slots.append(None)
        slots = state.slots

        def on_grad(grad: torch.Tensor) -> None:
            if index < len(slots):  # the RMS, as the norm: one operation (divided by sqrt(numel) when read)
                slots[index] = (torch.linalg.vector_norm(grad.detach(), dtype=_norm_dtype(grad)), grad.numel())

        output.register_hook(doctor.guard(on_grad, "gradient-flow tensor hook"))

    def loss_targets(module: nn.Module, args: tuple[Any, ...]) -> None:
        if torch.is_grad_enabled() and len(args) >= 2:
            total = _float_sum(args[1])
            if total is not None:
                state.pending_targets.append((doctor.step, total))
                if len(state.pending_targets) > max(MAX_PENDING, 8 * doctor.sample_every):
                    del state.pending_targets[0]

    for name, module in doctor.modules.items():
        if isinstance(module, RECURRENT_LAYERS):
            hook = _through_time_hook(doctor, state, name, module)
            doctor.hook(module.register_forward_pre_hook, hook, "through-time hook", sampled=True)
    on_accelerator = any(p.device.type != "cpu" for p in doctor.model.parameters())
    if on_accelerator:  # on the CPU each loss is read at once and the bad batch is still in hand
        doctor.hook(doctor.model.register_forward_pre_hook, before_forward, "batch-sum pre-hook")
        doctor.hook(doctor.model.register_forward_hook, after_forward, "batch-sum hook")
    weight_layers = [m for m in doctor.modules.values() if isinstance(m, WEIGHT_LAYERS) and m is not doctor.model]
    if len(weight_layers) >= MIN_WEIGHT_LAYERS:  # gradient flow is judged on deep models only
        for module in weight_layers:
            doctor.hook(module.register_forward_hook, layer_output, "gradient-flow layer hook", sampled=True)
    if on_accelerator and isinstance(doctor.loss_fn, nn.Module):
        doctor.hook(doctor.loss_fn.register_forward_pre_hook, loss_targets, "loss-target hook")


def _through_time_hook(doctor: Doctor, state: _State, name: str, module: nn.RNNBase) -> Callable[..., Any]:
    """On sampled steps, the gradient reaching a recurrent layer's input at each time step: the first step's
    over the last one's is the backward signal's growth through time (inside the layer, where no module
    hook can see it). An input that does not require grad (raw features) is replaced by a leaf copy that
    does, the same values, so its gradient can be read; nothing upstream is affected."""
    time_dim = 1 if module.batch_first else 0

    def on_grad(grad: torch.Tensor) -> None:
        if grad.shape[time_dim] < MIN_TIME_STEPS:
            return
        dims = [d for d in range(grad.ndim) if d != time_dim]
        per_step = torch.linalg.vector_norm(grad.detach(), dim=dims, dtype=_norm_dtype(grad))
        first, last = float(per_step[0]), float(per_step[-1])
        if math.isfinite(first) and math.isfinite(last) and last > 0:
            state.through_time.append((doctor.step, first / last, int(grad.shape[time_dim]), name))
            del state.through_time[: -2 * SAMPLES_TO_CONFIRM]

    def before(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        x = args[0] if args else None
        if not doctor.sampled or not torch.is_grad_enabled() or not isinstance(x, torch.Tensor):
            return None  # a PackedSequence has no time axis to read
        if x.ndim != 3 or not x.is_floating_point() or x.shape[time_dim] < MIN_TIME_STEPS:
            return None
        if x.requires_grad:
            x.register_hook(doctor.guard(on_grad, "through-time tensor hook"))
            return None
        leaf = x.detach().requires_grad_()
        leaf.register_hook(doctor.guard(on_grad, "through-time tensor hook"))
        return (leaf, *args[1:])

    return before


# ---------------------------------------------------------------------------------------------- data


def _all_finite(tensor: torch.Tensor | None) -> bool:
    if tensor is None or not tensor.is_floating_point():
        return True
    # one sum first: finite for almost all data, and far cheaper than an elementwise test of all of it
    return bool(torch.isfinite(tensor.sum())) or bool(torch.isfinite(tensor).all())


def _reported(doctor: Doctor, subject: str) -> bool:
    return any(f.code == "nonfinite-data" and f.subject == subject for f in doctor.findings)


def nonfinite_data(
    doctor: Doctor, X: torch.Tensor | None, y: torch.Tensor | None, where: str, prefix: str = ""
) -> bool:
    """Raise nonfinite-data if X or y hold NaN or inf (once per subject); True when they do."""
    for name, tensor in (("inputs", X), ("targets", y)):
        if tensor is None or _all_finite(tensor):
            continue
        if _reported(doctor, prefix + name):
            return True
        flat = tensor.detach().reshape(tensor.shape[0], -1) if tensor.ndim else tensor.reshape(1, 1)
        bad_rows = int((~torch.isfinite(flat)).any(dim=1).sum())
        doctor.raise_finding(
            "nonfinite-data",
            f"The {name} {where} contain NaN or inf values ({bad_rows} of {flat.shape[0]} samples): every loss "
            "and gradient they touch becomes NaN.",
            evidence={"bad_samples": bad_rows, "samples": flat.shape[0]},
            suggestion="drop or impute those rows before training (torch.isfinite(X).all(dim=1) finds them)",
            subject=prefix + name,
        )
        return True
    return False


@runs_on("data")
def check_dataset_values(doctor: Doctor) -> None:
    assert doctor.data is not None
    X, y, X_val, y_val = doctor.data
    nonfinite_data(doctor, X, y, "of the training data")
    nonfinite_data(doctor, X_val, y_val, "of the validation data", prefix="validation ")


# ---------------------------------------------------------------------------------------------- losses


def _forwards_of(state: _State, step: int) -> tuple[list[torch.Tensor | None], list[torch.Tensor | None]]:
    """Input and output sums of the training forwards that produced the loss recorded at `step`."""
    near = [entry for entry in state.pending if entry[0] == step - state.record_offset]
    return [e[1] for e in near], [e[2] for e in near]


def _bad_sum(tensor: torch.Tensor | None) -> torch.Tensor | None:
    """A tensor that is non-finite exactly when `tensor` holds NaN or inf (None for non-float data)."""
    if tensor is None or not tensor.is_floating_point() or tensor.numel() == 0:
        return None
    return torch.isfinite(tensor.detach()).all().float().log()  # 0 when all finite, -inf otherwise


def _nonfinite(values: Sequence[torch.Tensor | None]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and not bool(torch.isfinite(torch.stack([v.float() for v in present])).all())


def _bad_batch(doctor: Doctor, state: _State, step: int) -> str:
    """'inputs' or 'targets' when the batch of the loss recorded at `step` held NaN or inf, else ''."""
    inputs, _ = _forwards_of(state, step)
    targets: list[torch.Tensor | None] = [t for s, t in state.pending_targets if s == step - state.record_offset]
    if not any(v is not None for v in inputs):  # on the CPU: the batch is still in hand, test it directly
        inputs = [_bad_sum(doctor._last_input)]
        targets = [_bad_sum(doctor.last_target)]
    for name, values in (("inputs", inputs), ("targets", targets)):
        if not _nonfinite(values):
            continue
        # already reported for the whole dataset before training (trainwise's own loop)?
        if not _reported(doctor, name):
            doctor.raise_finding(
                "nonfinite-data",
                f"The {name} of the training batch at step {step} contain NaN or inf values (a missing value in "
                "the data file, a division by zero in preprocessing): every loss and gradient they touch "
                "becomes NaN, and one such step turns all the weights into NaN.",
                evidence={"step": step},
                suggestion="drop or impute those rows before training (torch.isfinite(X).all(dim=1) finds them, "
                "pandas: df.dropna() or df.fillna(df.mean()))",
                subject=name,
            )
        return name
    # the latest sampled batch, if it is the bad one (user loops pass targets through record())
    if nonfinite_data(doctor, doctor._last_input, doctor.last_target, "of the current batch"):
        return "data"
    return ""


@runs_on("losses")
def check_nonfinite_loss(doctor: Doctor) -> None:
    state = _state(doctor)
    losses = doctor.obs.losses
    start = doctor.flushed_from
    if state.pending and doctor.obs.loss_steps and doctor.obs.loss_steps[-1] - state.pending[-1][0] in (0, 1):
        state.record_offset = doctor.obs.loss_steps[-1] - state.pending[-1][0]
    # the first non-finite loss of each episode (a NaN after finite losses, or at the start of the record);
    # a finite sum of the new ones rules it out in one C loop
    if not math.isfinite(sum(losses[start:])):
        fresh = (i for i in range(start, len(losses)) if i == 0 or math.isfinite(losses[i - 1]))
        index = next((i for i in fresh if not math.isfinite(losses[i])), None)
        if index is not None:
            _diagnose_nonfinite(doctor, state, index)
    state.pending.clear()
    state.pending_targets.clear()


def _diagnose_nonfinite(doctor: Doctor, state: _State, index: int) -> None:
    losses = doctor.obs.losses
    step = doctor.obs.loss_steps[index]
    finite_before = [v for v in losses[:index] if math.isfinite(v)]
    last_finite = finite_before[-1] if finite_before else float("nan")
    evidence = {"step": step, "last_finite_loss": last_finite}
    suggestion = "see the findings about its cause"
    bad = _bad_batch(doctor, state, step)
    if bad:
        cause = f"NaN or inf values in the training {bad}"
    elif _explosion_before(doctor):
        cause = "exploding gradients"
    else:
        from trainwise.doctor.learning_rate import diverged_before

        if diverged_before(doctor, index):
            cause = "a learning rate too high"
        else:
            _, outputs = _forwards_of(state, step)
            if not any(v is not None for v in outputs):  # on the CPU: the output is still in hand
                outputs = [_bad_sum(doctor._last_output)]
            cause = ""
            suggestion = (
                "look for log(0), division by zero or sqrt of negatives in the loss, and clip gradients "
                "(clip_grad_norm=1.0)"
            )
            outputs_known = any(v is not None for v in outputs)
            if outputs_known and not _nonfinite(outputs):
                cause = "the loss computation itself: the model's outputs were finite"
                suggestion = (
                    "compute the loss from logits with the fused, stable functions (F.cross_entropy, "
                    "F.binary_cross_entropy_with_logits, F.log_softmax) instead of log(softmax(x)) or "
                    "log(sigmoid(x)), or clamp before log/division: torch.log(p.clamp_min(1e-7))"
                )
    how = f", caused by {cause}." if cause else "."
    doctor.raise_finding(
        "nonfinite-loss",
        f"The loss became {losses[index]} at step {step} after {len(finite_before)} finite losses{how}",
        evidence=evidence,
        suggestion=suggestion,
    )


# ---------------------------------------------------------------------------------------------- gradients


def _norm_dtype(tensor: torch.Tensor) -> torch.dtype:
    """Half-precision norms sum in float32 (no overflow); float64 stays float64 (a norm may not narrow)."""
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


def _relative_grads(sample: Sample, names: list[str]) -> list[float]:
    values = []
    for name in names:
        weight = sample.weight_norms.get(name, 0.0)
        grad = sample.grad_norms.get(name)
        values.append(grad / weight if grad is not None and weight > 0 else float("nan"))
    return values


def _read_flow(doctor: Doctor, state: _State) -> None:
    """Store this sampled step's backward growth: first layer's output gradient over the last hidden one's."""
    slots = state.slots
    state.slots = []
    measured = [slot for slot in slots if slot is not None]
    if len(slots) < MIN_WEIGHT_LAYERS or len(measured) < len(slots):
        return
    norms = torch.stack([norm for norm, _ in measured]).tolist()
    values = [norm / math.sqrt(max(numel, 1)) for norm, (_, numel) in zip(norms, measured, strict=True)]
    first, last_hidden = values[0], values[-2]
    if not (math.isfinite(first) and math.isfinite(last_hidden)) or last_hidden <= 0:
        return
    state.flow.append((doctor.step - 1, first / last_hidden, len(values)))
    if len(state.flow) > 2 * SAMPLES_TO_CONFIRM:
        del state.flow[0]


def _loss_has_diverged(doctor: Doctor) -> bool:
    losses = doctor.obs.losses
    recent = [v for v in losses[-5:] if math.isfinite(v)]
    return bool(losses) and bool(recent) and min(recent) > DIVERGED_FACTOR * max(losses[0], 1e-12)


def _raise_exploding(doctor: Doctor, growth: float, calls: int) -> None:
    doctor.raise_finding(
        "exploding-gradients",
        f"The backward signal grows {growth:.3g}x from the last hidden layer back to the first, across {calls} "
        "weight layers: early layers get gradients orders of magnitude larger than late ones, so any learning "
        "rate that suits one part of the network throws the other off.",
        evidence={"backward_growth": growth, "weight_layers": calls},
        suggestion="use a fan-in scaled init (PyTorch's default or nn.init.kaiming_normal_), add normalization "
        "(BatchNorm/LayerNorm) or residual connections, and clip gradients (clip_grad_norm=1.0)",
    )


def _explosion_before(doctor: Doctor) -> bool:
    """Was the backward signal exploding on the last sampled step before the loss turned non-finite?"""
    if doctor.has("exploding-gradients"):
        return True
    state = _state(doctor)
    if doctor.has("lr-too-high"):
        return False
    if state.through_time and state.through_time[-1][1] > EXPLODING_RATIO:
        _raise_through_time(doctor, state.through_time[-1:])
        return True
    flow = state.flow
    if not flow or flow[-1][1] <= EXPLODING_RATIO:
        return False
    _raise_exploding(doctor, flow[-1][1], flow[-1][2])
    return True


def _raise_through_time(doctor: Doctor, measured: list[tuple[int, float, int, str]]) -> None:
    growths = [growth for _, growth, _, _ in measured]
    _, _, steps, name = measured[-1]
    exploding = min(growths) > EXPLODING_RATIO
    growth = min(growths) if exploding else max(growths)
    evidence = {"backward_growth_through_time": growth, "time_steps": steps}
    if exploding:
        doctor.raise_finding(
            "exploding-gradients",
            f"The gradient grows {growth:.3g}x backward through the {steps} time steps of {name}: its recurrent "
            "weights amplify the signal at every step, so the first steps' gradients are orders of magnitude "
            "too large and one update throws the weights off.",
            evidence=evidence,
            suggestion="clip gradients (torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0) before "
            "optimizer.step()), start the recurrent weights orthogonal or smaller, or use an LSTM/GRU",
            subject=name,
        )
    else:
        doctor.raise_finding(
            "vanishing-gradients",
            f"The gradient shrinks to {growth:.2g} of its size backward through the {steps} time steps of "
            f"{name}: what the first steps of a sequence contribute never reaches the weights.",
            evidence=evidence,
            suggestion="use an LSTM or GRU instead of a plain RNN, shorter sequences, or an orthogonal "
            "init of the recurrent weights",
            subject=name,
        )


def _check_through_time(doctor: Doctor, state: _State) -> None:
    """Two sampled steps in a row with the backward signal exploding (or vanishing) through time."""
    measured = state.through_time[-SAMPLES_TO_CONFIRM:]
    if len(measured) < SAMPLES_TO_CONFIRM or measured[-1][0] < doctor.step - 1:
        return  # not measured on this step
    growths = [growth for _, growth, _, _ in measured]
    exploding = min(growths) > EXPLODING_RATIO and not _loss_has_diverged(doctor)
    vanishing = max(growths) < VANISHING_THROUGH_TIME and not doctor.has("vanishing-gradients")
    if exploding or vanishing:
        _raise_through_time(doctor, measured)


@runs_on("step")
def check_gradient_flow(doctor: Doctor) -> None:
    state = _state(doctor)
    _read_flow(doctor, state)
    if state.through_time and not (doctor.has("lr-too-high") or doctor.has("nonfinite-loss")):
        _check_through_time(doctor, state)
    # an embedding's gradient is sparse (only the rows of the batch's tokens) and pooled: small by nature
    embeddings = {id(m.weight) for m in doctor.modules.values() if isinstance(m, nn.Embedding | nn.EmbeddingBag)}
    layers = [info.name for info in doctor.params if info.param.ndim >= 2 and id(info.param) not in embeddings]
    if len(layers) < MIN_WEIGHT_LAYERS or doctor.has("lr-too-high") or doctor.has("nonfinite-loss"):
        return
    fresh = bool(state.flow) and state.flow[-1][0] == doctor.step - 1  # measured on this very step
    flow = state.flow[-SAMPLES_TO_CONFIRM:] if fresh else []
    if len(flow) == SAMPLES_TO_CONFIRM and min(g for _, g, _ in flow) > EXPLODING_RATIO:
        if not _loss_has_diverged(doctor):
            _raise_exploding(doctor, min(g for _, g, _ in flow), flow[-1][2])
        return
    recent = doctor.recent_samples(SAMPLES_TO_CONFIRM)
    if len(recent) < SAMPLES_TO_CONFIRM or doctor.has("dead-relu") or doctor.has("bad-init"):
        return  # dead units or a symmetric start zero the early gradients: that cause is already reported
    ratios, firsts = [], []
    for sample in recent:
        first, last = _relative_grads(sample, [layers[0], layers[-1]])
        if not (math.isfinite(first) and math.isfinite(last)) or last == 0:
            return
        ratios.append(first / last)
        firsts.append(first)
    # with the backward signal known, it must have shrunk too: tiny inputs shrink only the first weight gradient
    signal_vanished = len(flow) < SAMPLES_TO_CONFIRM or max(g for _, g, _ in flow) < VANISHING_RATIO
    if max(ratios) < VANISHING_RATIO and max(firsts) < VANISHING_RELATIVE_GRAD and signal_vanished:
        depth = flow[-1][2] if flow else len(layers)  # layer calls: a shared layer counts each time it is used
        evidence = {"first_to_last_ratio": max(ratios), "first_layer_relative_grad": max(firsts), "layers": depth}
        if flow:
            evidence["backward_growth"] = max(g for _, g, _ in flow)
        doctor.raise_finding(
            "vanishing-gradients",
            f"Gradients shrink to {max(ratios):.2g} of the last layer's by the first layer across {depth} layers: "
            "the early layers hardly learn.",
            evidence=evidence,
            suggestion="use ReLU-family activations instead of sigmoid/tanh in hidden layers, a fan-in scaled "
            "init (nn.init.kaiming_normal_ for ReLU), and normalization (BatchNorm) or residual connections",
        )
