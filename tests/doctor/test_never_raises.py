"""The doctor never breaks the program it watches: random small models, losses, targets and optimizers in a
hand-written loop and in fit, and the two crashes users reported, plus doctor-error, its own failure report."""

import math
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import trainwise
from tests.doctor.helpers import cpu_fit, full_batch_steps
from trainwise.doctor import Doctor
from trainwise.doctor import registry as doctor_registry
from trainwise.models import mlp

DOCTOR_DIR = str(Path(trainwise.__file__).parent / "doctor")
FEATURES, CLASSES = 3, 3


def doctor_frames(exc: BaseException) -> list[str]:
    """The frames of exc's traceback that lie in trainwise/doctor: where the doctor was on the stack."""
    return [f"{f.filename}:{f.lineno}" for f in traceback.extract_tb(exc.__traceback__) if DOCTOR_DIR in f.filename]


# ------------------------------------------------------------------------------------------- models


class Recurrent(nn.Module):
    def __init__(self, kind: type[nn.RNNBase], outputs: int) -> None:
        super().__init__()
        self.rnn = kind(FEATURES, 4, batch_first=True)
        self.head = nn.Linear(4, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x.unsqueeze(1).expand(-1, 2, -1))  # a sequence of two steps
        return self.head(out[:, -1])


class Detaching(nn.Module):
    """A custom forward that cuts the graph: the first layer never gets a gradient."""

    def __init__(self, outputs: int) -> None:
        super().__init__()
        self.first, self.head = nn.Linear(FEATURES, 4), nn.Linear(4, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.first(x)).detach())


class NumpyTrip(nn.Module):
    """A forward that leaves torch for numpy and comes back (the graph is cut there too)."""

    def __init__(self, outputs: int) -> None:
        super().__init__()
        self.first, self.head = nn.Linear(FEATURES, 4), nn.Linear(4, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.from_numpy(np.tanh(self.first(x).detach().numpy()))
        return self.head(hidden)


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0


def zero_penultimate(outputs: int) -> nn.Module:
    """Four weight layers; the last hidden one outputs exactly zero (a single frozen zero unit), so the
    activation scale from the first layer to the last hidden one is 0: the ZeroDivisionError users hit."""
    model = nn.Sequential(nn.Linear(FEATURES, 8), nn.Linear(8, 8), nn.Linear(8, 1), nn.Linear(1, outputs))
    with torch.no_grad():
        model[2].weight.zero_()
        model[2].bias.zero_()
    return model


def cnn(outputs: int) -> nn.Module:
    return nn.Sequential(nn.Unflatten(1, (1, FEATURES)), nn.Conv1d(1, 2, 2), nn.ReLU(), nn.Flatten(),
                         nn.Linear(2 * (FEATURES - 1), outputs))  # fmt: skip


MODELS: dict[str, Callable[[int], nn.Module]] = {
    "mlp": lambda o: nn.Sequential(nn.Linear(FEATURES, 8), nn.ReLU(), nn.Linear(8, o)),
    "deep-mlp": lambda o: mlp(FEATURES, o, hidden=(8, 8, 8)),
    "cnn": cnn,
    "rnn": lambda o: Recurrent(nn.RNN, o),
    "lstm": lambda o: Recurrent(nn.LSTM, o),
    "batchnorm": lambda o: nn.Sequential(nn.Linear(FEATURES, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, o)),
    "dropout": lambda o: nn.Sequential(nn.Linear(FEATURES, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, o)),
    "detach": Detaching,
    "numpy": NumpyTrip,
    "zero-layer": lambda o: nn.Sequential(nn.Linear(FEATURES, 8), Zero(), nn.ReLU(), nn.Linear(8, o)),
    "zero-penultimate": zero_penultimate,
}
LOSSES: dict[str, Callable[[], Callable[..., torch.Tensor]]] = {
    "mse": nn.MSELoss,
    "mse-sum": lambda: nn.MSELoss(reduction="sum"),
    "l1": nn.L1Loss,
    "cross_entropy": nn.CrossEntropyLoss,
    "nll": nn.NLLLoss,
    "bce_with_logits": nn.BCEWithLogitsLoss,
    "F.mse_loss": lambda: F.mse_loss,
    "F.cross_entropy": lambda: F.cross_entropy,
    "custom": lambda: lambda out, y: (out - y).abs().mean(),
}
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": lambda p, lr: torch.optim.SGD(p, lr=lr),
    "momentum": lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9, weight_decay=1e-2),
    "adam": lambda p, lr: torch.optim.Adam(p, lr=lr),
    "adamw": lambda p, lr: torch.optim.AdamW(p, lr=lr),
    "rmsprop": lambda p, lr: torch.optim.RMSprop(p, lr=lr),
    "adagrad": lambda p, lr: torch.optim.Adagrad(p, lr=lr),
}
TARGETS = ("regression", "classes", "labels-out-of-range", "wrong-shape", "integer-regression", "nan", "inf",
           "binary")  # fmt: skip


def make_target(kind: str, rows: int, outputs: int, g: torch.Generator) -> torch.Tensor:
    if kind == "regression":
        return torch.randn(rows, outputs, generator=g)
    if kind == "classes":
        return torch.randint(0, CLASSES, (rows,), generator=g)
    if kind == "labels-out-of-range":
        return torch.randint(0, CLASSES + 5, (rows,), generator=g) - 2
    if kind == "wrong-shape":
        return torch.randn(rows, generator=g)
    if kind == "integer-regression":
        return torch.randint(0, 5, (rows, outputs), generator=g)
    if kind == "binary":
        return torch.randint(0, 2, (rows, outputs), generator=g).float()
    return torch.full((rows, outputs), math.nan if kind == "nan" else math.inf)


def make_inputs(kind: str, rows: int, g: torch.Generator) -> torch.Tensor:
    if kind == "integer":
        return torch.randint(0, 10, (rows, FEATURES), generator=g)
    x = torch.randn(rows, FEATURES, generator=g)
    if kind == "large":
        return 1000 * x
    if kind == "nan" and rows:
        x[0, 0] = math.nan
    return x


case = st.fixed_dictionaries(
    {
        "model": st.sampled_from(sorted(MODELS)),
        "loss": st.sampled_from(sorted(LOSSES)),
        "optimizer": st.sampled_from(sorted(OPTIMIZERS)),
        "lr": st.sampled_from([1e-6, 1e-2, 10.0]),
        "rows": st.sampled_from([0, 1, 2, 9]),
        "inputs": st.sampled_from(["float", "integer", "large", "nan"]),
        "target": st.sampled_from(TARGETS),
        "outputs": st.sampled_from([1, CLASSES]),
        "steps": st.integers(1, 14),
        "seed": st.integers(0, 3),
    }
)


def user_error_or_fail(exc: BaseException, retry: Callable[[], object]) -> None:
    """An exception in the user's loop is allowed only where it is the user's: raised by torch (no doctor frame
    on its stack), or the doctor's deliberate TrainingError about a call that crashes without the doctor too."""
    if isinstance(exc, trainwise.TrainingError):
        with pytest.raises(Exception):  # noqa: B017 - torch's own error, whichever it is
            retry()
        return
    assert not doctor_frames(exc), f"the doctor raised {type(exc).__name__}: {exc}\n{doctor_frames(exc)}"


def assert_no_doctor_error(findings: list[trainwise.Finding]) -> None:
    errors = [f.format() for f in findings if f.code == "doctor-error"]
    assert not errors, errors


@settings(max_examples=50, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(case)
def test_watch_never_raises_into_a_hand_written_loop(c: dict) -> None:
    torch.manual_seed(c["seed"])
    g = torch.Generator().manual_seed(c["seed"])
    model = MODELS[c["model"]](c["outputs"])
    optimizer = OPTIMIZERS[c["optimizer"]](model.parameters(), c["lr"])
    loss_fn = LOSSES[c["loss"]]()
    x = make_inputs(c["inputs"], c["rows"], g)
    y = make_target(c["target"], c["rows"], c["outputs"], g)
    printed: list[str] = []
    doctor = trainwise.watch(model, optimizer, loss_fn=loss_fn, printer=printed.append, warmup=3, sample_every=2)
    try:
        for step in range(c["steps"]):
            model.train()
            try:
                loss = loss_fn(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            except Exception as exc:
                doctor.close()
                user_error_or_fail(exc, lambda: loss_fn(model(x), y).backward())
                return
            doctor.record(loss, target=y)
            if step % 5 == 4:  # validation, in eval mode without gradients
                model.eval()
                with torch.no_grad():
                    doctor.record(val_loss=loss_fn(model(x), y))
    finally:
        doctor.close()
    assert not model._forward_hooks and not model._forward_pre_hooks  # close() took every hook away
    assert_no_doctor_error(doctor.findings)
    assert len(printed) == len(doctor.findings)  # each finding printed once


fit_case = st.fixed_dictionaries(
    {
        "model": st.sampled_from(sorted(MODELS)),
        "loss": st.sampled_from(["mse", "cross_entropy", "l1", "bce_with_logits", "nll"]),
        "optimizer": st.sampled_from(["sgd", "adam", "rmsprop", "adagrad", "adamw"]),
        "lr": st.sampled_from([1e-6, 1e-2, 10.0]),
        "rows": st.sampled_from([1, 2, 9]),
        "batch_size": st.sampled_from([None, 1, 4]),
        "inputs": st.sampled_from(["float", "large", "nan"]),
        "target": st.sampled_from(TARGETS),
        "outputs": st.sampled_from([1, CLASSES]),
        "epochs": st.integers(1, 4),
        "seed": st.integers(0, 3),
    }
)


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(fit_case)
def test_fit_with_the_doctor_never_raises(c: dict) -> None:
    g = torch.Generator().manual_seed(c["seed"])
    x = make_inputs(c["inputs"], c["rows"], g)
    y = make_target(c["target"], c["rows"], c["outputs"], g)

    def run(doctor: str) -> trainwise.FitResult:
        torch.manual_seed(c["seed"])
        model = MODELS[c["model"]](c["outputs"])
        return cpu_fit(model, (x, y), loss=c["loss"], optimizer=c["optimizer"], lr=c["lr"],
                             epochs=c["epochs"], batch_size=c["batch_size"], doctor=doctor, progress=False)  # fmt: skip

    try:
        result = run("warn")
    except Exception as exc:
        user_error_or_fail(exc, lambda: run("off"))
        return
    assert_no_doctor_error(result.findings)


# ------------------------------------------------------------------------------------- the reported crashes


def test_a_layer_with_all_zero_activations_does_not_crash_optimizer_step() -> None:
    """ZeroDivisionError from the activation-scale check, raised out of optimizer.step()."""
    torch.manual_seed(0)
    model = zero_penultimate(1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    x, y = torch.randn(16, FEATURES), torch.randn(16, 1)
    with trainwise.watch(model, optimizer, loss_fn=nn.MSELoss(), mode="quiet") as doctor:
        full_batch_steps(doctor, model, optimizer, F.mse_loss, x, y, 5)
    assert doctor.step == 5 and len(doctor.obs.losses) == 5
    assert [std for _, std in doctor.obs.layer_stds][2] == 0.0  # the case that divided by zero
    assert {f.code for f in doctor.findings} <= {"no-gradient"}  # no doctor-error, no activation-scale claim


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
@pytest.mark.parametrize("shape", [(0, FEATURES), (0, 1, 4, 4), (4, 0)])
def test_an_empty_batch_passes_the_forward_hooks(shape: tuple[int, ...]) -> None:
    """A zero-row batch crashed the forward pre-hook (reshaping 0 elements to (0, -1))."""
    model = nn.Sequential(nn.Flatten(), nn.LazyLinear(2)) if len(shape) > 2 else nn.Linear(shape[1], 2)
    if len(shape) > 2:
        model(torch.zeros(1, *shape[1:]))  # materialise the lazy layer
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with trainwise.watch(model, optimizer, mode="quiet") as doctor:
        out = model(torch.zeros(shape))
        assert out.shape == (shape[0], 2)
        full = model(torch.randn(8, *shape[1:]))  # and the doctor keeps working after it
        loss = full.square().mean()
        loss.backward()
        optimizer.step()
        doctor.record(loss)
    assert doctor.step == 1 and doctor.obs.losses == [pytest.approx(float(loss.detach()))]
    assert not [f for f in doctor.findings if f.code == "doctor-error"]


# ------------------------------------------------------------------------------------------ doctor-error


def loop(doctor: Doctor, model: nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, FEATURES, generator=g), torch.randn(32, 1, generator=g)
    for _ in range(steps):
        loss = F.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        doctor.record(loss, target=y)


def test_a_check_that_raises_is_reported_once_and_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def broken_check(doctor: Doctor) -> None:
        calls.append(doctor.step)
        raise KeyError("no such layer")

    monkeypatch.setitem(doctor_registry.REGISTRY, "step", [broken_check, *doctor_registry.REGISTRY["step"]])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(FEATURES, 8), nn.ReLU(), nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    printed: list[str] = []
    with trainwise.watch(model, optimizer, loss_fn=nn.MSELoss(), printer=printed.append) as doctor:
        loop(doctor, model, optimizer, 40)
    assert calls == [1]  # it ran once (after the first step), raised, and stayed off for the other sampled steps
    [error] = [f for f in doctor.findings if f.code == "doctor-error"]
    assert error.severity == "info" and error.subject == "check test_never_raises.broken_check"
    assert "KeyError: 'no such layer'" in error.message and "training itself is not affected" in error.message
    assert doctor.raised["doctor-error"] == 1
    assert [line for line in printed if "doctor-error" in line] == [error.format()]
    assert doctor.step == 40 and len(doctor.obs.losses) == 40  # the rest of the doctor went on


def test_a_hook_that_raises_is_reported_once_and_detached(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_hook(self: Doctor, module: nn.Module, args: tuple) -> None:
        raise RuntimeError("hook machinery broke")

    monkeypatch.setattr(Doctor, "_on_forward_pre", broken_hook)
    model = nn.Linear(FEATURES, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    hooks_before = len(model._forward_pre_hooks)
    doctor = trainwise.watch(model, optimizer, loss_fn=nn.MSELoss(), mode="quiet")
    assert len(model._forward_pre_hooks) == hooks_before + 2  # the doctor's, and the first forward's census
    loop(doctor, model, optimizer, 3)
    assert len(model._forward_pre_hooks) == hooks_before  # detached at the first record()
    errors = [f for f in doctor.findings if f.code == "doctor-error"]
    assert [e.subject for e in errors] == ["forward pre-hook"]
    assert "RuntimeError: hook machinery broke" in errors[0].message
    assert doctor.step == 3  # the optimizer's hooks still count steps
    doctor.close()
    assert not model._forward_hooks and not optimizer._optimizer_step_post_hooks


def test_stop_mode_still_stops() -> None:
    """TrainingError is the doctor's deliberate word in stop mode: the safety net lets it through."""
    model = nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    x = torch.tensor([[35.7], [55.9], [58.2], [81.9], [56.3], [48.9]])
    y = torch.tensor([[0.5], [14.0], [15.0], [28.0], [11.0], [8.0]])
    doctor = trainwise.watch(model, optimizer, loss_fn=nn.MSELoss(), mode="stop", printer=lambda _: None)
    with pytest.raises(trainwise.TrainingError, match="nonfinite-loss"):
        full_batch_steps(doctor, model, optimizer, F.mse_loss, x, y, 60)
    doctor.close()


def test_a_failing_fit_callback_becomes_doctor_error_and_fit_finishes(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_end_epoch(self: Doctor, epoch: int, train_loss: float | None = None) -> None:
        raise ValueError("epoch bookkeeping broke")

    monkeypatch.setattr(Doctor, "end_epoch", broken_end_epoch)
    g = torch.Generator().manual_seed(0)
    X = torch.randn(40, FEATURES, generator=g)
    y = X.sum(1, keepdim=True)
    result = cpu_fit(nn.Linear(FEATURES, 1), (X, y), loss="mse", lr=0.05, epochs=5, progress=False,
                           doctor="quiet")  # fmt: skip
    assert result.epochs == 5 and result.history["loss"][-1] < result.history["loss"][0]
    [error] = [f for f in result.findings if f.code == "doctor-error"]
    assert error.subject == "fit callback on_epoch_end()" and "ValueError: epoch bookkeeping broke" in error.message


def test_record_of_a_loss_with_many_values_is_reported_not_raised() -> None:
    model = nn.Linear(FEATURES, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    with trainwise.watch(model, optimizer, mode="quiet") as doctor:
        doctor.record(torch.ones(4))
        doctor.record(torch.ones(4))
        doctor.record(torch.tensor(0.5))
    [error] = [f for f in doctor.findings if f.code == "doctor-error"]
    assert error.subject == "record()" and "shape (4,)" in error.message
    assert doctor.raised["doctor-error"] == 1 and doctor.obs.losses == [0.5]
