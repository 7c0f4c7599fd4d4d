"""The doctor for code that was not written for it: `trainwise.autowatch()` watches every training loop that
runs inside it, through torch's own global hooks, with no change to the user's code.

    with trainwise.autowatch() as session:
        train()                       # any PyTorch loop: its optimizers, models and losses are found
    print(session.report())

How the pieces of a hand-written loop are found (and removed again when the session ends):
- torch.optim.optimizer.register_optimizer_step_pre_hook / _post_hook see every optimizer step. At an
  optimizer's first step its patient is the outermost module that ran a forward pass since the previous
  step and owns the most parameters of that optimizer (or the only one that ran, when none does: an
  optimizer made before the model's layers were replaced, or a forward run under no_grad); each (model,
  optimizer) pair gets its own Doctor (a GAN's two optimizers are two patients). The session's hooks pass
  the model's calls and the optimizer's steps on to that Doctor, from this first step on (a second pair of
  hooks, the Doctor's own, would cost every step twice). Between the Doctor's sampled steps its forward
  hooks need no call as it runs: the step's training call is handed over at the step's end
  (Doctor.every_call), with its loss and targets, in one call (Doctor.quiet_step_end).
- torch.nn.modules.module.register_module_forward_pre_hook / _forward_hook see every module call: the
  outermost ones are the candidate models, and loss modules (nn.modules.loss._Loss) give the loss and
  its targets. While they are registered every module call in torch takes its slower hooked path, so once
  every optimizer has its patient and a few steps pass with nothing new, they give way to hooks on the
  modules seen: one forward hook on each module seen as an outermost call (its call is taken whole at its
  end), the pair on loss modules (torch's own loss modules need none: the functional loss they call is
  wrapped). A module or parameter registered (a model built), an optimizer whose model did not run where
  hooked, or a loss without gradients after a training forward (a validation model not seen before)
  brings the global hooks back.
- torch.nn.functional's losses (cross_entropy, mse_loss, ...) are wrapped for the session's duration, so
  `F.cross_entropy(out, y)` is seen as a loss module call is; so is torch.Tensor.backward, so a loss
  written by hand is seen as the tensor backward() is called on (once lean, only while some loss was:
  else the loss functions see every loss).
- after each optimizer step the patient's Doctor records the step's last training loss and its targets, as
  `doctor.record(loss, target=y)` would; losses computed without gradients (or with the model in eval
  mode) between two training steps form one validation pass, recorded as its mean.
The session never raises into the program it watches, except TrainingError in mode "stop": a failure of its
own bookkeeping is reported as doctor-error and the session stops watching.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
import torch.optim.optimizer as optimizer_hooks
from torch import nn
from torch.nn.modules import module as module_hooks

from trainwise.doctor.core import FUNCTIONAL_LOSSES, Doctor, Mode, _default_printer, first_line
from trainwise.doctor.findings import CODES, SEVERITY_ORDER, Finding
from trainwise.errors import TrainingError

LEAN_AFTER = 3  # optimizer steps with nothing new before the global module hooks give way to per-module ones
MAX_FALLBACKS = 3
_LOSS = nn.modules.loss._Loss
_UNMET: Any = object()  # an optimizer not seen before, in _by_optimizer.get()
_NO_KWARGS: dict[str, Any] = {}  # a loss module's call (its hooks see no keyword arguments); never changed
# torch's loss modules that only call the functional loss of the same name (wrapped while watching)
FUNCTIONAL_BACKED: frozenset[type] = frozenset(
    {nn.MSELoss, nn.L1Loss, nn.HuberLoss, nn.SmoothL1Loss, nn.CrossEntropyLoss, nn.NLLLoss, nn.BCEWithLogitsLoss,
     nn.BCELoss}
)  # fmt: skip


@dataclass
class _Patient:
    """One (model, optimizer) pair and its Doctor."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    doctor: Doctor

    def __post_init__(self) -> None:  # what each step's end looks up
        self.model_key = id(self.model)
        self.step_post = self.doctor.step_hooks.step_post


@dataclass
class _Validation:
    """Losses computed without gradients (or in eval mode) since the last training step."""

    model: nn.Module | None = None
    values: list[float] = field(default_factory=list)


class AutowatchSession:
    """What `trainwise.autowatch()` returns: a context manager that watches every training loop inside it.
    `findings` and `report()` cover every optimizer seen.

    Args:
        mode: "warn" (default) prints each finding as it happens, "stop" raises TrainingError at the first
            error, "quiet" only collects.
        printer: the function that shows a finding's line; None: stderr (stdout in a Jupyter kernel).

    Raises:
        ConfigError: a mode other than "warn", "stop" or "quiet".
    """

    def __init__(self, *, mode: Mode = "warn", printer: Callable[[str], None] | None = None) -> None:
        if mode not in ("warn", "stop", "quiet"):
            from trainwise.errors import ConfigError

            raise ConfigError(f"autowatch mode {mode!r}: use 'warn', 'stop' or 'quiet'")
        self.mode: Mode = mode
        self.printer = printer or _default_printer()
        self.patients: list[_Patient] = []
        self._by_optimizer: dict[int, _Patient | None] = {}  # None: no patient found (not a model's optimizer)
        # the patients' Doctors hook no calls of their own: the session's hooks call theirs (model id -> Doctors)
        self._forward_to: dict[int, list[Doctor]] = {}
        self._training_call = False  # was the latest outermost call a training forward (grad on, train mode)?
        self._ran: list[nn.Module] = []  # outermost modules run since the last step, with or without gradients
        self._calls: dict[int, tuple[tuple[Any, ...], Any]] = {}  # outermost module -> its latest (args, output)
        self._stack: list[nn.Module] = []  # module calls in progress
        # the latest training loss seen since the last optimizer step, and its targets (two fields, not an
        # object: they are set several times a step)
        self._loss: torch.Tensor | None = None
        self._loss_target: torch.Tensor | None = None
        self._loss_fn: Any = None  # the first loss module or functional loss seen: the patients' loss_fn
        self._validation = _Validation()
        self._handles: list[Any] = []
        # once every optimizer has its patient and a few steps passed with nothing new, the global module hooks
        # (which send every module call in torch down its slower hooked path) give way to hooks on the modules
        # seen so far (see _go_lean)
        self._global_module_handles: list[Any] = []
        self._instance_handles: list[Any] = []
        self._lean = False
        self._quiet_steps = 0  # optimizer steps since something new (a module, a loss module, an optimizer) ran
        self._fallbacks = 0  # times lean watching met something it could not see: at MAX_FALLBACKS it stays off
        self._outer: dict[int, nn.Module] = {}  # every module seen as an outermost (non-loss) call
        self._loss_modules: dict[int, nn.Module] = {}  # every loss module seen, and whether it ran inside another
        self._nested_losses: set[int] = set()
        self._originals: dict[str, Any] = {}
        self._original_backward: Callable[..., Any] = torch.Tensor.backward
        self._backward_wrapper: Callable[..., Any] | None = None
        # has backward() been called on a tensor other than the latest loss a loss function or module returned
        # (a loss written by hand, or a penalty added)? Until it is, lean watching needs no Tensor.backward
        # wrapper: the loss functions see every loss
        self._own_losses = False
        self._unseen_forward = False  # a backward() after a forward lean watching did not see (_meet looks again)
        self._errors: list[Finding] = []  # the session's own failures (doctor-error without a patient)
        self.active = False
        # the hooks' switch: off when stopped, or once the session's own bookkeeping failed (the hooks called on
        # every step guard themselves: a wrapper around each would cost every step a call)
        self._watching = False

    # ------------------------------------------------------------------ public

    @property
    def doctors(self) -> list[Doctor]:
        return [patient.doctor for patient in self.patients]

    @property
    def findings(self) -> list[Finding]:
        """Every patient's findings (errors first), then the session's own doctor-errors."""
        found = [f for doctor in self.doctors for f in doctor.findings] + self._errors
        return sorted(found, key=lambda f: (SEVERITY_ORDER[f.severity], f.step or 0))

    def report(self) -> str:
        """A plain-text report over all the models trained in the session."""
        if not self.patients:
            return "trainwise doctor: no training loop ran (no optimizer.step() of a model's parameters)."
        parts = []
        for patient in self.patients:
            name = type(patient.model).__name__
            optimizer = type(patient.optimizer).__name__
            parts.append(f"{name} trained with {optimizer}: {patient.doctor.report()}")
        parts += [f.format() for f in self._errors]
        return "\n".join(parts)

    def __repr__(self) -> str:
        codes = ", ".join(sorted({f.code for f in self.findings})) or "none"
        return f"AutowatchSession(mode={self.mode!r}, patients={len(self.patients)}, findings: {codes})"

    def __enter__(self) -> AutowatchSession:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Install the global hooks and the functional-loss wrappers."""
        if self.active:
            return
        self.active = self._watching = True
        self._handles = [
            optimizer_hooks.register_optimizer_step_pre_hook(self._before_step),
            optimizer_hooks.register_optimizer_step_post_hook(self._after_step),
            # a model built while watching lean: back to the global hooks before its first forward
            module_hooks.register_module_parameter_registration_hook(self._module_built),
            module_hooks.register_module_module_registration_hook(self._module_built),
        ]
        self._search()
        for name in FUNCTIONAL_LOSSES:
            original = getattr(F, name)
            self._originals[name] = original
            setattr(F, name, self._wrap_functional(original))
        self._original_backward = torch.Tensor.backward
        self._backward_wrapper = self._wrap_backward(self._original_backward)
        torch.Tensor.backward = self._backward_wrapper  # type: ignore[method-assign]

    def stop(self) -> None:
        """Record the last validation pass, close every Doctor, remove every hook and wrapper."""
        if not self.active:
            return
        self.active = self._watching = False
        try:
            self._flush_validation()
        finally:
            for handle in [*self._handles, *self._global_module_handles, *self._instance_handles]:
                handle.remove()
            self._handles, self._global_module_handles, self._instance_handles = [], [], []
            self._forward_to = {}
            self._lean = False
            for name, original in self._originals.items():
                setattr(F, name, original)
            self._originals = {}
            torch.Tensor.backward = self._original_backward  # type: ignore[method-assign]
            for doctor in self.doctors:
                doctor.close()

    # ------------------------------------------------------------------ hooks

    def _failed(self, what: str, exc: Exception) -> None:
        """The session's own bookkeeping failed in a hook: reported once, and the session stops watching (what
        it knows of the program's calls is no longer sure)."""
        self._watching = False
        self._internal_error(what, exc, "the doctor stops watching")

    def _internal_error(self, what: str, exc: BaseException, then: str = "that part is off") -> None:
        finding = Finding(
            "doctor-error",
            CODES["doctor-error"],
            f"The doctor's {what} failed with {first_line(exc)}; {then} for the rest of the session "
            "(the program itself is not affected).",
            suggestion="nothing to change in your code; please report this trainwise bug with the message",
            subject=what,
        )
        self._errors.append(finding)
        if self.mode != "quiet":
            self.printer(finding.format())

    def _module_pre(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        """A module call begins (every module's while searching, the modules seen once lean)."""
        if not self._watching:
            return
        try:
            key, stack = id(module), self._stack
            outer_training = False  # an outermost call with gradients, in training mode
            if isinstance(module, _LOSS):
                if key not in self._loss_modules:
                    self._loss_modules[key] = module
                    self._quiet_steps = 0
                if stack:
                    self._nested_losses.add(key)
            elif not stack:
                outer_training = self._outermost_call(module)
                if key not in self._outer:
                    self._outer[key] = module
                    self._quiet_steps = 0
            stack.append(module)
            for doctor in self._forward_to.get(key, ()):
                if doctor.every_call or not outer_training:  # else handed over at the step's end
                    doctor.step_hooks.forward_pre(module, args)
        except TrainingError:
            raise
        except Exception as exc:
            self._failed("module pre-hook", exc)

    def _outermost_call(self, module: nn.Module) -> bool:
        """A call of a module from outside any other: noted as run since the last step, and as the latest
        call, a training one (gradients on, training mode: returned) or not (a validation pass's)."""
        training = self._training_call = torch.is_grad_enabled() and module.training
        ran = self._ran
        if not ran or (ran[-1] is not module and all(module is not seen for seen in ran)):
            ran.append(module)
        if not training:
            self._validation.model = module
        return training

    def _outer_call(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        """Lean watching: a call of a module seen as outermost, once it ended. One hook instead of a pair:
        torch's hooked call path costs per hook list it finds, and nothing of the call is needed before its
        end (a functional loss computed inside it is taken for the program's own, which it then is)."""
        if not self._watching:
            return
        try:
            key = id(module)
            outer_training = not self._stack and self._outermost_call(module)
            if outer_training:
                self._calls[key] = (args, output)
            for doctor in self._forward_to.get(key, ()):
                if doctor.every_call or not outer_training:  # else handed over at the step's end
                    hooks = doctor.step_hooks
                    hooks.forward_pre(module, args)
                    hooks.forward(module, args, output)
        except TrainingError:
            raise
        except Exception as exc:
            self._failed("module hook", exc)

    def _module_post(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        """A module call ends."""
        if not self._watching:
            return
        try:
            key, stack = id(module), self._stack
            if stack and stack[-1] is module:
                stack.pop()
            outer_training = not stack and self._training_call
            if outer_training:
                self._calls[key] = (args, output)
            if isinstance(module, _LOSS) and len(args) >= 2:
                self._see_loss(module, output, args)
            for doctor in self._forward_to.get(key, ()):
                if doctor.every_call or not outer_training:
                    doctor.step_hooks.forward(module, args, output)
        except TrainingError:
            raise
        except Exception as exc:
            self._failed("module hook", exc)

    def _wrap_functional(self, original: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        @functools.wraps(original)
        def loss(*args: Any, **kwargs: Any) -> torch.Tensor:
            value = original(*args, **kwargs)
            if self._watching and not self._stack:  # called by the user, not inside a loss module
                # the user's loss matters more than the doctor (a try costs nothing; suppress() three calls)
                try:  # noqa: SIM105
                    self._see_loss(original, value, args, kwargs)
                except Exception:
                    pass
            return value

        return loss

    def _see_loss(self, fn: Any, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any] = _NO_KWARGS) -> None:
        """A loss function's or module's call: fn(*args, **kwargs) gave `value`."""
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            return
        if self._loss_fn is None:
            self._loss_fn = fn
        try:  # free in Python 3.11 when nothing raises: the common call, fn(output, target)
            target = args[1]
        except IndexError:
            target = kwargs.get("target")
        if not isinstance(target, torch.Tensor):
            target = None
        if value.requires_grad and self._training_call:
            self._loss, self._loss_target = value, target
            return
        inputs = args[0] if args else kwargs.get("input")
        unseen = self._lean and self._training_call and not torch.is_grad_enabled()
        if unseen and isinstance(inputs, torch.Tensor) and not inputs.requires_grad:
            # outputs made without gradients by a module lean watching does not see (a validation model first
            # run now): what its global hook would have said, and the global hooks back
            self._training_call = False
            self._validation.model = None
            self._fallback()
        if not self._training_call:
            self._validation.values.append(float(value.detach()))

    def _wrap_backward(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """Tensor.backward: the tensor is the step's loss (a loss written by hand is seen only here); the
        targets stay those of the loss module or function seen before, if any."""

        @functools.wraps(original)
        def backward(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if self._watching and tensor.numel() == 1:
                if self._calls:  # after a training forward
                    if tensor is not self._loss:
                        self._own_losses = True
                        if self._loss is None:
                            self._loss_target = None
                        self._loss = tensor
                elif self._lean and tensor.requires_grad:  # a forward lean watching did not see
                    self._unseen_forward = True
                    with contextlib.suppress(Exception):
                        self._fallback()
            return original(tensor, *args, **kwargs)

        return backward

    def _before_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if not self._watching:
            return
        try:
            if self._validation.values:
                self._flush_validation()
            else:  # no pass since the last step (nearly every step)
                self._validation.model = None
            patient = self._by_optimizer.get(id(optimizer), _UNMET)
            if patient is _UNMET:
                patient = self._meet(optimizer)
            if patient is not None and patient.doctor.every_call:  # else its pre-step work is none
                patient.doctor.step_hooks.step_pre(optimizer, args, kwargs)
        except TrainingError:
            raise
        except Exception as exc:
            self._failed("optimizer pre-hook", exc)

    def _meet(self, optimizer: torch.optim.Optimizer) -> _Patient | None:
        """An optimizer's first step: find its model and make their Doctor (or note that it has none)."""
        self._quiet_steps = 0
        model = self._find_model(optimizer)
        if self._lean and (model is None or not self._owns(model, optimizer)):
            # its model may have run unseen: look again at its next step, with the global hooks
            self._fallback()
            return None
        unseen, self._unseen_forward = self._unseen_forward, False
        if model is None:
            if not unseen:  # else its model ran before the global hooks were back: looked for at its next step
                self._by_optimizer[id(optimizer)] = None
            return None
        doctor = Doctor(model, optimizer, loss_fn=self._loss_fn, mode=self.mode, printer=self.printer, forwarded=True)
        call = self._calls.get(id(model))
        if call is not None:  # this step's forward ran before the Doctor existed: show it what it missed
            args, output = call
            doctor._on_forward_pre(model, args)
            doctor._last_output = output if isinstance(output, torch.Tensor) else None
        patient = _Patient(model, optimizer, doctor)
        self.patients.append(patient)
        self._by_optimizer[id(optimizer)] = patient
        self._forward_to.setdefault(id(model), []).append(doctor)
        return patient

    def _after_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if not self._watching:
            return
        try:
            patient = self._by_optimizer.get(id(optimizer))
            loss, target = self._loss, self._loss_target
            self._loss = self._loss_target = None
            if patient is not None:
                doctor, hook = patient.doctor, patient.step_post
                if not hook.broken:  # the Doctor's guarded hook, called without its wrapper's call
                    # with the step's training call, unless it was passed on as it ran
                    call = None if doctor.every_call else self._calls.get(patient.model_key)
                    try:
                        if loss is not None and doctor.quiet_step_end(call, loss, target):
                            loss = None  # recorded
                        else:
                            hook.fn(call=call)
                    except TrainingError:
                        raise
                    except Exception as exc:
                        hook.fail(exc)
            # emptied in place: new containers every step cost more than the step's own Python
            if self._ran:
                self._ran.clear()
            if self._calls:
                self._calls.clear()
            if self._stack:  # a forward that raised leaves its calls on the stack: a step is a clean start
                self._stack.clear()
            if not self._lean:
                self._quiet_steps += 1
                if self._quiet_steps >= LEAN_AFTER and self._fallbacks < MAX_FALLBACKS and self.patients:
                    self._go_lean()
            if patient is not None and loss is not None:
                patient.doctor.record(loss, target=target)
        except TrainingError:
            raise
        except Exception as exc:
            self._failed("optimizer hook", exc)

    @staticmethod
    def _owns(model: nn.Module, optimizer: torch.optim.Optimizer) -> bool:
        owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
        return any(id(p) in owned for p in model.parameters())

    # ------------------------------------------------------------------ lean watching

    def _search(self) -> None:
        """Watch every module call through torch's global module hooks (what finds a new model)."""
        self._lean = False
        for handle in self._instance_handles:
            handle.remove()
        self._instance_handles = []
        if not self._global_module_handles:
            self._global_module_handles = [
                module_hooks.register_module_forward_pre_hook(self._module_pre),
                module_hooks.register_module_forward_hook(self._module_post),
            ]
        if self._backward_wrapper is not None and torch.Tensor.backward is self._original_backward:
            torch.Tensor.backward = self._backward_wrapper  # type: ignore[method-assign]

    def _go_lean(self) -> None:
        """Hooks on the modules seen as outermost calls (one forward hook each) and on the loss modules seen (the
        pair), instead of on every module: the layers inside a model then take torch's fast call path. torch's
        own loss modules called as outermost modules need no hook: the functional loss they call is wrapped,
        and it sees the same loss and targets."""
        losses = [
            module for key, module in self._loss_modules.items()
            if type(module) not in FUNCTIONAL_BACKED or key in self._nested_losses
        ]  # fmt: skip
        # first among the module's hooks, as the global hooks run before them
        handles = [module.register_forward_hook(self._outer_call, prepend=True) for module in self._outer.values()]
        for module in losses:  # a loss module's call must be known from its start: the functional losses and
            # modules it calls are its own
            handles.append(module.register_forward_pre_hook(self._module_pre, prepend=True))
            handles.append(module.register_forward_hook(self._module_post, prepend=True))
        for handle in self._global_module_handles:
            handle.remove()
        self._global_module_handles, self._instance_handles = [], handles
        if not self._own_losses and torch.Tensor.backward is self._backward_wrapper:
            # every loss so far came from a loss function or module, which see it: backward() as torch's own
            torch.Tensor.backward = self._original_backward  # type: ignore[method-assign]
        self._lean = True

    def _fallback(self) -> None:
        """Lean watching met something it cannot see (a new model, an optimizer of a model not seen run):
        back to the global hooks; after MAX_FALLBACKS of these, for the rest of the session."""
        if self._lean:
            self._fallbacks += 1
            self._search()
        self._quiet_steps = 0

    def _module_built(self, module: nn.Module, name: str, value: Any) -> None:
        if not (self._watching and self._lean):
            return
        try:
            self._fallback()
        except Exception as exc:
            self._failed("module registration hook", exc)

    def _find_model(self, optimizer: torch.optim.Optimizer) -> nn.Module | None:
        """The outermost module run since the previous step that owns the most of this optimizer's parameters."""
        owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
        best, best_count = None, 0
        for module in self._ran:
            count = sum(id(p) in owned for p in module.parameters())
            if count > best_count:
                best, best_count = module, count
        if best is None and len(self._ran) == 1:
            # the only model run owns none of them (an optimizer made before its layers were replaced, or for
            # another instance), or ran without gradients (under no_grad): it is the patient, and
            # params-not-optimized or no-gradient says what is wrong
            best = self._ran[0]
        return best

    def _flush_validation(self) -> None:
        if not self._validation.values:  # no pass since the last step (nearly every step): nothing to make
            self._validation.model = None
            return
        validation, self._validation = self._validation, _Validation()
        patient = next((p for p in self.patients if p.model is validation.model), None)
        if patient is None and len(self.patients) == 1:
            patient = self.patients[0]
        if patient is not None:
            mean = sum(validation.values) / len(validation.values)
            patient.doctor.record(val_loss=mean)


def autowatch(*, mode: Mode = "warn", printer: Callable[[str], None] | None = None) -> AutowatchSession:
    """Watch every training loop run inside `with trainwise.autowatch() as session:` with no change to its
    code: each optimizer's model gets its own doctor. Mode "warn" prints findings as they happen, "stop"
    raises TrainingError at the first error, "quiet" only collects. `session.findings`, `session.report()`.

    Args:
        mode: "warn" (default), "stop" or "quiet", as above.
        printer: the function that shows a finding's line; None: stderr (stdout in a Jupyter kernel).

    Returns:
        The AutowatchSession, not yet started: `with` starts it and removes its hooks at the end (or call
        session.start() and session.stop()).

    Raises:
        ConfigError: a mode other than "warn", "stop" or "quiet".
    """
    return AutowatchSession(mode=mode, printer=printer)


# ---------------------------------------------------------------------------------------------- IPython

_NOTEBOOK: dict[str, AutowatchSession] = {}  # the session `%load_ext trainwise` started, while loaded


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext trainwise`: one session watches every training loop the notebook runs from now on, whatever
    cells its model, optimizer and loop are spread over; findings print under the cell that finds them."""
    if "session" in _NOTEBOOK:
        return
    session = _NOTEBOOK["session"] = AutowatchSession(mode="warn")
    session.start()
    ipython.events.register("post_run_cell", _after_cell)


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext trainwise`: stop watching and remove every hook."""
    session = _NOTEBOOK.pop("session", None)
    if session is not None:
        ipython.events.unregister("post_run_cell", _after_cell)
        session.stop()


def _after_cell(result: Any) -> None:
    """A validation pass ends with its cell (the next cell may train something else)."""
    session = _NOTEBOOK.get("session")
    if session is not None:
        with contextlib.suppress(Exception):
            session._flush_validation()
