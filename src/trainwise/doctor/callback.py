"""The doctor inside trainwise's own loop: a callback that feeds it and, in "repair" mode, acts on it."""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import torch

from trainwise.callbacks import Callback, Logs
from trainwise.doctor.core import Doctor, first_line
from trainwise.doctor.findings import CODES, Finding
from trainwise.errors import TrainingError

REPAIR_CODES = ("nonfinite-loss", "lr-too-high")
MAX_REPAIRS = 3
MODES = ("warn", "stop", "repair", "quiet", "off")
F = TypeVar("F", bound=Callable[..., Any])


def _safe(method: F) -> F:
    """A callback method that cannot break fit: a failure of the doctor's code becomes doctor-error and the
    doctor stops watching (fit trains on, unwatched); TrainingError, the doctor's deliberate stop, passes."""

    @functools.wraps(method)
    def safe(self: DoctorCallback, *args: Any, **kwargs: Any) -> Any:
        if self.broken and method.__name__ != "on_train_end":
            return None
        try:
            return method(self, *args, **kwargs)
        except TrainingError:
            raise
        except Exception as exc:
            self.fail(f"fit callback {method.__name__}()", exc)
            return None

    return cast(F, safe)


def doctor_callback(mode: str, **options: Any) -> DoctorCallback:
    """fit's doctor for a mode of MODES other than "off"."""
    return RepairingDoctorCallback(**options) if mode == "repair" else DoctorCallback(mode, **options)


class DoctorCallback(Callback):
    """Runs a Doctor during fit (modes "warn", "stop", "quiet"; RepairingDoctorCallback for "repair")."""

    def __init__(
        self,
        mode: str,
        *,
        data: Any = None,
        feature_names: Sequence[str] | None = None,
        printer: Callable[[str], None] | None = None,
    ) -> None:
        self.mode = mode
        self.data = data
        self.feature_names = feature_names
        self.printer = printer
        self.doctor: Doctor | None = None
        self.broken = False
        self._earlier: list[Finding] = []
        self._earlier_actions: list[str] = []
        self._failure: Finding | None = None  # doctor-error when no Doctor was there to hold it

    def fail(self, what: str, exc: BaseException) -> None:
        """The doctor's code failed inside fit: report it once, stop watching, let training go on."""
        self.broken = True
        if self.doctor is not None:
            self.doctor.internal_error(what, exc)
            with contextlib.suppress(Exception):  # training matters more than tidiness
                self.doctor._remove_all_hooks()
        elif self._failure is None:
            self._failure = Finding(
                "doctor-error",
                CODES["doctor-error"],
                f"The doctor's {what} failed with {first_line(exc)}; it is off for the rest of this run (training "
                "itself is not affected).",
                suggestion="nothing to change in your code; please report this trainwise bug with the message",
                subject=what,
            )
            if self.mode != "quiet":
                (self.printer or (lambda line: print(line, file=sys.stderr)))(self._failure.format())

    @_safe
    def on_train_begin(self, logs: Logs) -> None:
        state = self.state
        # a resumed run keeps what the doctor said before the interruption
        self._earlier, self._earlier_actions = list(state.findings), list(state.doctor_actions)
        self.doctor = Doctor(
            state.model,
            state.optimizer,
            loss_fn=state.loss_fn,
            mode="warn" if self.mode == "repair" else self.mode,  # type: ignore[arg-type]
            steps_per_epoch=state.steps_per_epoch,
            feature_names=self.feature_names,
            printer=self.printer,
            driven=True,
        )
        if self.data is not None:
            self.doctor.inspect_data(*self.data)

    @_safe
    def on_batch_end(self, batch: int, logs: Logs) -> None:
        doctor = self.doctor
        if doctor is None:
            return
        inputs = logs["inputs"]
        doctor.after_step(inputs if isinstance(inputs, torch.Tensor) else None)  # tuples, dicts: the hooks saw them
        # a full batch's loss is the epoch's: it arrives with on_epoch_end, already read
        doctor.record(None if doctor.losses_from_epochs else logs["loss"], target=logs["target"])

    @_safe
    def on_validation_end(self, epoch: int, logs: Logs) -> None:
        if self.doctor is not None:
            self.doctor.record(val_loss=logs["val_loss"])

    @_safe
    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        if self.doctor is not None:
            self.doctor.end_epoch(epoch, logs.get("loss"))

    @_safe
    def on_train_end(self, logs: Logs) -> None:
        found = [self._failure] if self._failure is not None else []
        actions: list[str] = []
        if self.doctor is not None:
            self.doctor.close()
            found += self.doctor.findings
            actions = self.doctor.actions
        said = {(finding.code, finding.subject) for finding in self._earlier}
        new = [finding for finding in found if (finding.code, finding.subject) not in said]
        self.state.findings = [*self._earlier, *new]
        self.state.doctor_actions = [*self._earlier_actions, *actions]


class RepairingDoctorCallback(DoctorCallback):
    """fit's doctor="repair": when the loss diverges or turns non-finite, roll back to the best epoch so
    far, divide the learning rate by 10 (at most 3 times) and carry on."""

    def __init__(self, **options: Any) -> None:
        super().__init__("repair", **options)
        self.repairs = 0

    @_safe
    def on_train_begin(self, logs: Logs) -> None:
        super().on_train_begin(logs)
        if self.broken:
            return
        self._best_loss = math.inf
        self._rollback = self._snapshot()
        self._seen = {code: 0 for code in REPAIR_CODES}

    def _snapshot(self) -> dict[str, Any]:
        return {
            "model": copy.deepcopy(self.state.model.state_dict()),
            "optimizer": copy.deepcopy(self.state.optimizer.state_dict()),
        }

    @_safe
    def on_epoch_begin(self, epoch: int, logs: Logs) -> None:
        self._candidate = self._snapshot()  # the weights this epoch's loss will be measured on

    @_safe
    def on_batch_end(self, batch: int, logs: Logs) -> None:
        super().on_batch_end(batch, logs)
        if self.doctor is None or self.broken:
            return
        self.doctor.flush()
        self._repair_if_needed()

    @_safe
    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        super().on_epoch_end(epoch, logs)
        if self.doctor is None or self.broken:
            return
        self.doctor.flush()  # a full batch's loss arrives here
        self._repair_if_needed()
        loss = logs.get("loss", math.nan)
        if math.isfinite(loss) and loss < self._best_loss:
            self._best_loss, self._rollback = loss, self._candidate

    def _repair_if_needed(self) -> None:
        doctor = self.doctor
        if doctor is None:
            return
        triggered = [code for code in REPAIR_CODES if doctor.raised.get(code, 0) > self._seen[code]]
        self._seen = {code: doctor.raised.get(code, 0) for code in REPAIR_CODES}
        if not triggered:
            return
        state = self.state
        if self.repairs >= MAX_REPAIRS:
            doctor.actions.append(f"{' and '.join(triggered)} again after {MAX_REPAIRS} repairs: stopped training")
            state.stop_training = True
            return
        self.repairs += 1
        lrs = [group["lr"] / 10 for group in state.optimizer.param_groups]
        state.model.load_state_dict(self._rollback["model"])
        state.optimizer.load_state_dict(self._rollback["optimizer"])
        for group, lr in zip(state.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        doctor.forget_losses()
        action = (
            f"step {doctor.step}: {' and '.join(triggered)}; rolled back to the best epoch so far and lowered "
            f"lr to {lrs[0]:g} (repair {self.repairs} of {MAX_REPAIRS})"
        )
        doctor.actions.append(action)
        doctor.printer(f"repair {action}")
