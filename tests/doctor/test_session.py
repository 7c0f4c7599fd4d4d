"""trainwise.autowatch() and `trainwise doctor script.py`: the doctor on loops that were not written for it,
found through torch's global hooks, and nothing left behind afterwards."""

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as module_hooks
from torch.optim import optimizer as optimizer_hooks

import trainwise
from tests.doctor.helpers import blobs
from trainwise.cli import main

TORCH_BACKWARD = torch.Tensor.backward
T_C = [0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0]
T_U = [35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4]

W1_SCRIPT = f"""
import sys
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
t_c = torch.tensor({T_C}).unsqueeze(1)
t_u = torch.tensor({T_U}).unsqueeze(1)
model = nn.Linear(1, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=float(sys.argv[1]) if len(sys.argv) > 1 else 1e-2)
for epoch in range(100):
    loss = F.mse_loss(model(t_u * SCALE), t_c)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print("final loss", loss.item())
"""


def w1_loop(scale: float = 1.0, lr: float = 1e-2) -> None:
    """W1 as the book writes it: raw Fahrenheit-like inputs, full batch, a functional loss."""
    torch.manual_seed(0)
    t_c, t_u = torch.tensor(T_C).unsqueeze(1), torch.tensor(T_U).unsqueeze(1)
    model = nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(100):
        loss = F.mse_loss(model(t_u * scale), t_c)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, criterion: nn.Module, X: torch.Tensor,
                y: torch.Tensor) -> None:  # fmt: skip
    """One epoch of the tutorials' minibatch loop, in batches of 32."""
    for xb, yb in zip(X.split(32), y.split(32), strict=True):
        loss = criterion(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def codes(session: trainwise.AutowatchSession) -> set[str]:
    return {f.code for f in session.findings}


def torch_state(*objects: Any) -> dict[str, Any]:
    """What a session may touch: torch's global hook registries, its functional losses, Tensor.backward and
    the hook dicts of the given modules and optimizers."""
    state: dict[str, Any] = {
        "forward_pre": dict(module_hooks._global_forward_pre_hooks),
        "forward": dict(module_hooks._global_forward_hooks),
        "step_pre": dict(optimizer_hooks._global_optimizer_pre_hooks),
        "step_post": dict(optimizer_hooks._global_optimizer_post_hooks),
        "backward": torch.Tensor.backward,
        "functional": {name: getattr(F, name) for name in dir(F) if not name.startswith("_")},
    }
    for i, obj in enumerate(objects):
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_optimizer_step_pre_hooks", "_optimizer_step_post_hooks"):
            if hasattr(obj, attr):
                state[f"{i}{attr}"] = dict(getattr(obj, attr))
    return state


def test_an_unmodified_loop_gets_the_diagnosis_watch_gives() -> None:
    with trainwise.autowatch(mode="quiet") as session:
        w1_loop()
    assert codes(session) == {"unscaled-inputs", "lr-too-high", "nonfinite-loss"}
    [patient] = session.patients
    assert isinstance(patient.model, nn.Linear) and isinstance(patient.optimizer, torch.optim.SGD)
    assert patient.doctor.step == 100 and len(patient.doctor.obs.losses) == 100  # every step's loss recorded
    assert session.report().startswith("Linear trained with SGD: trainwise doctor: 3 finding(s) in 100 steps")


def test_a_healthy_loop_is_silent_and_validation_passes_are_recorded_as_their_mean() -> None:
    X, y = blobs(n=512, classes=4)
    X_val, y_val = blobs(n=128, classes=4, seed=1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    criterion = nn.CrossEntropyLoss()
    means = []
    with trainwise.autowatch(mode="quiet") as session:
        for _ in range(3):
            model.train()
            for xb, yb in zip(X.split(32), y.split(32), strict=True):
                loss = criterion(model(xb), yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():  # validation in two batches: one pass, recorded as its mean
                values = [
                    criterion(model(xb), yb).item() for xb, yb in zip(X_val.split(64), y_val.split(64), strict=True)
                ]
            means.append(sum(values) / 2)
    assert [f for f in session.findings if f.severity != "info"] == []
    [doctor] = session.doctors
    assert [value for _, value in doctor.obs.val_losses] == pytest.approx(means)


def test_nothing_is_left_behind_even_when_the_program_raises() -> None:
    model = nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    before = torch_state(model, optimizer)
    with pytest.raises(RuntimeError, match="the user's own bug"), trainwise.autowatch(mode="quiet") as session:
        for _ in range(3):
            loss = F.mse_loss(model(torch.randn(8, 1)), torch.randn(8, 1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        raise RuntimeError("the user's own bug")
    assert len(session.patients) == 1
    assert torch_state(model, optimizer) == before


def test_two_optimizers_are_two_patients_each_with_its_model() -> None:
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    discriminator = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
    opt_g = torch.optim.Adam(generator.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=1e-3)
    bce = nn.BCEWithLogitsLoss()
    with trainwise.autowatch(mode="quiet") as session:
        for _ in range(20):
            real, noise = torch.randn(32, 2) + 3, torch.randn(32, 4)
            fake = generator(noise)
            d_loss = bce(discriminator(real), torch.ones(32, 1)) + bce(discriminator(fake.detach()), torch.zeros(32, 1))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            g_loss = bce(discriminator(generator(noise)), torch.ones(32, 1))
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
    patients = {id(p.optimizer): p.model for p in session.patients}
    assert patients == {id(opt_d): discriminator, id(opt_g): generator}
    assert all(doctor.step == 20 for doctor in session.doctors)


def test_autowatch_rejects_an_unknown_mode() -> None:
    with pytest.raises(trainwise.ConfigError, match="autowatch mode 'loud'"):
        trainwise.autowatch(mode="loud")  # type: ignore[arg-type]


def write_script(folder: Path, body: str, scale: float = 1.0) -> Path:
    script = folder / "train.py"
    script.write_text(textwrap.dedent(body).replace("SCALE", repr(scale)))
    return script


def test_trainwise_doctor_runs_a_script_unmodified_and_keeps_its_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = write_script(tmp_path, W1_SCRIPT)
    out = tmp_path / "findings.json"
    code = main(["doctor", "--json", str(out), str(script), "1e-2"])
    captured = capsys.readouterr()
    assert code == 0  # the script's own: findings do not change it
    assert "final loss nan" in captured.out  # the script's output, apart from the doctor's
    assert "warning unscaled-inputs" in captured.err and "error nonfinite-loss" in captured.err
    assert "Linear trained with SGD: trainwise doctor: 3 finding(s) in 100 steps" in captured.err
    assert {f["code"] for f in json.loads(out.read_text())} == {"unscaled-inputs", "lr-too-high", "nonfinite-loss"}
    assert main(["doctor", "--fail-on", "error", str(script), "1e-2"]) == 1
    scaled = write_script(tmp_path, W1_SCRIPT, scale=0.1)  # normalized inputs, a fitting lr: silent
    assert main(["doctor", "--fail-on", "warning", str(scaled), "1e-2"]) == 0
    assert "no problems found in 100 steps" in capsys.readouterr().err


def test_trainwise_doctor_reports_the_scripts_own_error_and_still_summarises(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = write_script(tmp_path, W1_SCRIPT.replace('print("final loss"', 'raise SystemExit(3)\nprint("x"'))
    assert main(["doctor", str(script)]) == 3
    crashing = tmp_path / "crash.py"
    crashing.write_text("def step():\n    raise ValueError('bad shape in my code')\n\nstep()\n")
    assert main(["doctor", str(crashing)]) == 1
    err = capsys.readouterr().err
    assert 'File "' + str(crashing) in err and "ValueError: bad shape in my code" in err
    assert "cli.py" not in err and "runpy" not in err  # the user's frames only
    assert "no training loop ran" in err
    assert main(["doctor", str(tmp_path / "missing.py")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path / 'missing.py'}: no such script; pass the path of a Python file: trainwise doctor train.py"
    )


def test_once_steady_only_the_models_seen_are_hooked_and_a_new_model_brings_the_global_hooks_back() -> None:
    torch.manual_seed(0)
    X, y = blobs(n=256, classes=4)
    first = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    optimizer = torch.optim.SGD(first.parameters(), lr=0.1)
    criterion = nn.CrossEntropyLoss()
    with trainwise.autowatch(mode="quiet") as session:
        train_epoch(first, optimizer, criterion, X, y)
        # steady: no global module hook, the layers inside the model run without hooks
        assert not module_hooks._global_forward_pre_hooks and not module_hooks._global_forward_hooks
        assert not first[0]._forward_hooks and not first[0]._forward_pre_hooks
        # one hook on the model (at the call's end) and none on the optimizer: the session passes them on to
        # the Doctor
        assert not first._forward_pre_hooks and len(first._forward_hooks) == 1
        assert not optimizer._optimizer_step_pre_hooks and not optimizer._optimizer_step_post_hooks
        # every loss came from the loss module, which sees it: backward() is torch's own
        assert torch.Tensor.backward is TORCH_BACKWARD
        assert session.doctors[0].step == 8 and len(session.doctors[0].obs.losses) == 8
        second = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))  # built while lean: seen again
        assert module_hooks._global_forward_hooks and torch.Tensor.backward is not TORCH_BACKWARD
        optimizer2 = torch.optim.Adam(second.parameters(), lr=1e-2)
        train_epoch(second, optimizer2, criterion, X, y)
    models = {id(p.optimizer): p.model for p in session.patients}
    assert models == {id(optimizer): first, id(optimizer2): second}
    assert [doctor.step for doctor in session.doctors] == [8, 8]  # the second met at its first step too


def test_a_model_first_run_after_the_session_went_lean_is_still_found() -> None:
    torch.manual_seed(0)
    X, y = blobs(n=256, classes=4)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    shadow = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))  # built before, first run later
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    criterion = nn.CrossEntropyLoss()
    with trainwise.autowatch(mode="quiet") as session:
        train_epoch(model, optimizer, criterion, X, y)
        shadow.eval()
        with torch.no_grad():  # a validation pass by a model the session has not seen: still recorded
            value = criterion(shadow(X[:64]), y[:64]).item()
        optimizer.zero_grad()
        criterion(model(X[:32]), y[:32]).backward()
        optimizer.step()
        shadow_optimizer = torch.optim.SGD(shadow.parameters(), lr=0.1)
        shadow.train()
        train_epoch(shadow, shadow_optimizer, criterion, X, y)
    first, second = session.patients
    assert [v for _, v in first.doctor.obs.val_losses] == pytest.approx([value])
    assert first.model is model and second.model is shadow
    assert second.doctor.step >= 7  # met at its first or second step


def test_a_model_built_before_and_first_trained_after_the_session_went_lean_gets_its_doctor() -> None:
    torch.manual_seed(0)
    X, y = blobs(n=256, classes=4)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    later = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))  # no hook of the lean session on it
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with trainwise.autowatch(mode="quiet") as session:
        train_epoch(model, optimizer, nn.CrossEntropyLoss(), X, y)
        train_epoch(later, torch.optim.SGD(later.parameters(), lr=0.1), nn.CrossEntropyLoss(), X, y)
    assert [p.model for p in session.patients] == [model, later]
    assert session.doctors[1].step == 7  # met at its second step, when its forward was seen


def test_a_loss_written_by_hand_keeps_backward_watched_once_lean() -> None:
    torch.manual_seed(0)
    X, y = blobs(n=256, classes=4)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    penalized = []
    with trainwise.autowatch(mode="quiet") as session:
        for xb, yb in zip(X.split(32), y.split(32), strict=True):
            loss = F.cross_entropy(model(xb), yb) + 1e-3 * model[0].weight.square().sum()  # weight decay by hand
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            penalized.append(loss.item())
            assert torch.Tensor.backward is not TORCH_BACKWARD
        assert session._lean
    assert session.doctors[0].obs.losses == pytest.approx(penalized)  # the loss with its penalty


def test_the_steps_between_samples_keep_the_record_watch_and_record_keep() -> None:
    """autowatch hands a step between samples to Doctor.quiet_step_end, not to the post-hook and record(): the
    losses, their steps, the targets' sums and the latest batch are what watch() and record() keep."""
    X = torch.randn(640, 8, generator=torch.Generator().manual_seed(0))
    y = X @ torch.linspace(-1, 1, 8).unsqueeze(1) + 0.1

    def train(doctor_for: Any) -> Any:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        criterion = nn.MSELoss()
        doctor = doctor_for(model, optimizer, criterion)
        for _ in range(8):  # 160 steps: the warm-up, five sampled pairs and the steps between them
            for xb, yb in zip(X.split(32), y.split(32), strict=True):
                loss = criterion(model(xb), yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if doctor is not None:
                    doctor.record(loss, target=yb)
        return doctor, xb

    with trainwise.autowatch(mode="quiet") as session:
        _, last_batch = train(lambda *_: None)
    watched, _ = train(lambda model, optimizer, criterion: trainwise.watch(model, optimizer, loss_fn=criterion))
    watched.close()
    [auto] = session.doctors
    assert auto.step == watched.step == 160
    assert auto.obs.losses == watched.obs.losses and auto.obs.loss_steps == watched.obs.loss_steps
    auto_sums, watched_sums = auto.obs.targets.totals(), watched.obs.targets.totals()
    assert auto_sums is not None and watched_sums is not None and auto.obs.targets.count == 640 * 8
    assert torch.equal(auto_sums[0], watched_sums[0]) and torch.equal(auto_sums[1], watched_sums[1])
    assert auto._last_input is last_batch and torch.equal(auto.last_target, y[-32:])
    assert {f.code for f in auto.findings} == {f.code for f in watched.findings}
