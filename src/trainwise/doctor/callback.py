"""The doctor inside trainwise's own loop: a callback that feeds it and, in "repair" mode, acts on it."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

from trainwise.callbacks import Callback, Logs
from trainwise.doctor.core import Doctor

REPAIR_CODES = ("nonfinite-loss", "lr-too-high")
MAX_REPAIRS = 3
MODES = ("warn", "stop", "repair", "quiet", "off")


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

    def on_batch_end(self, batch: int, logs: Logs) -> None:
        doctor = self.doctor
        assert doctor is not None
        doctor.after_step(logs["inputs"])
        # a full batch's loss is the epoch's: it arrives with on_epoch_end, already read
        doctor.record(None if doctor.losses_from_epochs else logs["loss"], target=logs["target"])

    def on_validation_end(self, epoch: int, logs: Logs) -> None:
        assert self.doctor is not None
        self.doctor.record(val_loss=logs["val_loss"])

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        assert self.doctor is not None
        self.doctor.end_epoch(epoch, logs.get("loss"))

    def on_train_end(self, logs: Logs) -> None:
        if self.doctor is None:
            return
        self.doctor.close()
        said = {(finding.code, finding.subject) for finding in self._earlier}
        new = [finding for finding in self.doctor.findings if (finding.code, finding.subject) not in said]
        self.state.findings = [*self._earlier, *new]
        self.state.doctor_actions = [*self._earlier_actions, *self.doctor.actions]


class RepairingDoctorCallback(DoctorCallback):
    """fit's doctor="repair": when the loss diverges or turns non-finite, roll back to the best epoch so
    far, divide the learning rate by 10 (at most 3 times) and carry on."""

    def __init__(self, **options: Any) -> None:
        super().__init__("repair", **options)
        self.repairs = 0

    def on_train_begin(self, logs: Logs) -> None:
        super().on_train_begin(logs)
        self._best_loss = math.inf
        self._rollback = self._snapshot()
        self._seen = {code: 0 for code in REPAIR_CODES}

    def _snapshot(self) -> dict[str, Any]:
        return {
            "model": copy.deepcopy(self.state.model.state_dict()),
            "optimizer": copy.deepcopy(self.state.optimizer.state_dict()),
        }

    def on_epoch_begin(self, epoch: int, logs: Logs) -> None:
        self._candidate = self._snapshot()  # the weights this epoch's loss will be measured on

    def on_batch_end(self, batch: int, logs: Logs) -> None:
        super().on_batch_end(batch, logs)
        assert self.doctor is not None
        self.doctor.flush()
        self._repair_if_needed()

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        super().on_epoch_end(epoch, logs)
        assert self.doctor is not None
        self.doctor.flush()  # a full batch's loss arrives here
        self._repair_if_needed()
        loss = logs.get("loss", math.nan)
        if math.isfinite(loss) and loss < self._best_loss:
            self._best_loss, self._rollback = loss, self._candidate

    def _repair_if_needed(self) -> None:
        doctor = self.doctor
        assert doctor is not None
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
