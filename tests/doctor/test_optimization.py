"""The optimization family on realistic faults: missing zero_grad, gradients that never arrive, parameters
the optimizer does not hold, and regularization strong enough to stop learning; and their healthy
near-misses (gradient accumulation, zero_grad(set_to_none=False), frozen layers, usual decay and dropout)."""

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.doctor.helpers import Net, blobs, generator, regression
from tests.doctor.helpers import cpu_fit as fit
from trainwise.doctor import Doctor, Finding, watch

MY_CODES = {"missing-zero-grad", "no-gradient", "params-not-optimized", "over-regularized"}


def mlp(features: int = 16, hidden: int = 32, classes: int = 4) -> nn.Sequential:
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes))


Step = Callable[[nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor], torch.Tensor]


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: tuple[torch.Tensor, torch.Tensor],
    step: Step,
    *,
    steps: int = 40,
    batch_size: int = 32,
    loss_fn: nn.Module | None = None,
) -> Doctor:
    """A hand-written loop over random minibatches; `step` is the user's training step, returning the loss."""
    X, y = data
    g = generator(1)
    with watch(model, optimizer, loss_fn=loss_fn, mode="quiet") as doctor:
        for _ in range(steps):
            index = torch.randint(0, len(X), (batch_size,), generator=g)
            xb, yb = X[index], y[index]
            loss = step(model, optimizer, xb, yb)
            doctor.record(loss, target=yb)
    return doctor


def codes(findings: list[Finding] | Doctor) -> set[str]:
    items = findings.findings if isinstance(findings, Doctor) else findings
    return {f.code for f in items}


def only(findings: list[Finding] | Doctor, code: str) -> Finding:
    items = findings.findings if isinstance(findings, Doctor) else findings
    [finding] = [f for f in items if f.code == code]
    return finding


def problems(findings: list[Finding] | Doctor) -> list[str]:
    items = findings.findings if isinstance(findings, Doctor) else findings
    return [f.format() for f in items if f.severity != "info"]


# ----------------------------------------------------------------------------- the usual steps


def proper_step(model: nn.Module, optimizer: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    optimizer.zero_grad()
    loss = F.cross_entropy(model(xb), yb)
    loss.backward()
    optimizer.step()
    return loss


def no_zero_grad_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor
) -> torch.Tensor:
    loss = F.cross_entropy(model(xb), yb)  # pytorch#47175: optimizer.zero_grad() forgotten
    loss.backward()
    optimizer.step()
    return loss


# ----------------------------------------------------------------------------- missing-zero-grad


def test_forgotten_zero_grad_with_sgd_is_missing_zero_grad() -> None:
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    doctor = train(model, optimizer, blobs(), no_zero_grad_step, loss_fn=nn.CrossEntropyLoss())
    assert codes(doctor) == {"missing-zero-grad"}
    finding = only(doctor, "missing-zero-grad")
    assert finding.severity == "error" and finding.subject is None
    # every checked step pair showed the previous gradient still inside the new one
    assert finding.evidence["steps_with_stale_gradient"] == finding.evidence["steps_checked"] >= 2
    assert finding.step is not None and finding.step <= 3  # the first checkable step pairs
    assert "zero_grad()" in finding.suggestion


def test_forgotten_zero_grad_in_a_cnn_with_adam_is_missing_zero_grad() -> None:
    torch.manual_seed(0)
    g = generator(3)
    X, y = torch.randn(256, 1, 8, 8, generator=g), torch.randint(0, 3, (256,), generator=g)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    doctor = train(model, optimizer, (X, y), no_zero_grad_step, steps=25)
    assert codes(doctor) & MY_CODES == {"missing-zero-grad"}
    assert only(doctor, "missing-zero-grad").evidence["steps_with_stale_gradient"] >= 2


@pytest.mark.parametrize("accumulate", [2, 4])
def test_gradient_accumulation_is_not_a_missing_zero_grad(accumulate: int) -> None:
    """Several backward() calls, then one step(), then zero_grad(): the gradient is the accumulated sum, legitly."""
    torch.manual_seed(0)
    X, y = blobs(seed=2)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    g = generator(1)
    with watch(model, optimizer, loss_fn=loss_fn, mode="quiet") as doctor:
        for i in range(40 * accumulate):
            index = torch.randint(0, len(X), (16,), generator=g)
            loss = loss_fn(model(X[index]), y[index]) / accumulate
            loss.backward()
            if (i + 1) % accumulate == 0:
                optimizer.step()
                optimizer.zero_grad()
            doctor.record(loss * accumulate, target=y[index])
    assert doctor.step == 40
    assert doctor.obs.zero_grad_checked >= 10 and doctor.obs.zero_grad_missed == 0
    assert problems(doctor) == []


@pytest.mark.parametrize("clear", ["optimizer.zero_grad(set_to_none=False)", "model.zero_grad()"])
def test_other_ways_of_clearing_gradients_are_silent(clear: str) -> None:
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    def step(model: nn.Module, optimizer: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        if clear == "model.zero_grad()":
            model.zero_grad()
        else:
            optimizer.zero_grad(set_to_none=False)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
        return loss

    doctor = train(model, optimizer, blobs(seed=3), step, steps=40, loss_fn=nn.CrossEntropyLoss())
    assert doctor.obs.zero_grad_checked >= 10
    assert problems(doctor) == []


# ----------------------------------------------------------------------------- no-gradient


def test_zero_grad_between_backward_and_step_is_no_gradient() -> None:
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    def step(model: nn.Module, optimizer: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.zero_grad()  # wipes the gradients step() was about to use
        optimizer.step()
        return loss

    doctor = train(model, optimizer, blobs(), step, steps=20, loss_fn=nn.CrossEntropyLoss())
    assert codes(doctor) == {"no-gradient"}
    finding = only(doctor, "no-gradient")
    assert finding.severity == "error" and finding.subject is None and finding.step == 1
    assert finding.evidence["parameters"] == 4
    assert "zero_grad() ran between backward() and step()" in finding.message


def test_zero_grad_without_set_to_none_between_backward_and_step_is_no_gradient() -> None:
    """zero_grad(set_to_none=False) leaves gradients of exactly zero instead of None: step() does nothing."""
    torch.manual_seed(0)
    X, y = regression()
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(model: nn.Module, optimizer: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        loss = F.mse_loss(model(xb), yb)
        loss.backward()
        optimizer.zero_grad(set_to_none=False)
        optimizer.step()
        return loss

    doctor = train(model, optimizer, (X, y), step, steps=20, loss_fn=nn.MSELoss())
    assert codes(doctor) == {"no-gradient"}
    finding = only(doctor, "no-gradient")
    assert finding.step == 3  # raised after the third optimizer step, all three with an all-zero gradient
    assert finding.evidence["steps_with_zero_gradient"] == 3
    assert finding.evidence["loss"] > 0.1
    assert "between backward() and step()" in finding.suggestion


def test_loss_rebuilt_from_item_is_no_gradient() -> None:
    """`loss = torch.tensor(loss.item(), requires_grad=True)`: backward() runs but reaches no parameter."""
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    def step(model: nn.Module, optimizer: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss = torch.tensor(loss.item(), requires_grad=True)
        loss.backward()
        optimizer.step()
        return loss

    doctor = train(model, optimizer, blobs(), step, steps=12, loss_fn=nn.CrossEntropyLoss())
    assert codes(doctor) == {"no-gradient"}
    finding = only(doctor, "no-gradient")
    assert finding.step == 1 and finding.evidence["parameters"] == 4
    assert finding.evidence["steps_checked"] == 12  # never a gradient, on any step


def test_loss_from_detached_numpy_outputs_is_no_gradient() -> None:
    """Outputs taken through .detach().numpy() and back, made to require grad so backward() does not raise."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(model: nn.Module, optimizer: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        optimizer.zero_grad()
        prediction = torch.tensor(model(xb).detach().numpy(), requires_grad=True)
        loss = F.mse_loss(prediction, yb)
        loss.backward()
        optimizer.step()
        return loss

    doctor = train(model, optimizer, regression(), step, steps=12)  # no loss_fn given to the doctor
    assert codes(doctor) == {"no-gradient"}
    assert only(doctor, "no-gradient").evidence["parameters"] == 4


def test_layer_defined_but_never_used_is_no_gradient_on_that_layer_in_fit() -> None:
    class Forgotten(Net):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(F.relu(self.fc1(x)))  # fc2 was defined in __init__ but is skipped here

    torch.manual_seed(0)
    result = fit(Forgotten(), blobs(), loss="cross_entropy", lr=0.05, epochs=2, batch_size=32, progress=False,
                 doctor="quiet")  # fmt: skip
    assert codes(result.findings) == {"no-gradient"}
    finding = only(result.findings, "no-gradient")
    assert finding.severity == "error" and finding.subject == "fc2.weight"
    assert finding.evidence["parameters_without_gradient"] == 2  # fc2.weight and fc2.bias
    assert finding.evidence["steps_checked"] >= 10
    assert "fc2.weight, fc2.bias" in finding.message


def test_layer_used_on_some_steps_only_is_not_no_gradient() -> None:
    """A layer skipped at random (as in W3's dynamic net) gets gradients on most steps: healthy."""

    class Sometimes(Net):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            h = F.relu(self.fc1(x))
            if self.calls % 3:
                h = F.relu(self.fc2(h))
            return self.fc(h)

    torch.manual_seed(0)
    model = Sometimes()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    doctor = train(model, optimizer, blobs(), proper_step, steps=60, loss_fn=nn.CrossEntropyLoss())
    assert doctor.obs.params_without_grad.get("fc2.weight", 0) > 0  # some steps did skip it
    assert problems(doctor) == []


# ----------------------------------------------------------------------------- params-not-optimized


def test_optimizer_made_before_replacing_the_head_is_params_not_optimized() -> None:
    """Fine-tuning as written: optimizer first, then `model.fc = nn.Linear(...)` for the new classes."""
    torch.manual_seed(0)
    model = Net(outputs=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.fc = nn.Linear(32, 4)
    doctor = train(model, optimizer, blobs(), proper_step, steps=30, loss_fn=nn.CrossEntropyLoss())
    assert codes(doctor) == {"params-not-optimized"}
    finding = only(doctor, "params-not-optimized")
    assert finding.severity == "error" and finding.subject == "fc.weight" and finding.step == 0
    assert finding.evidence == {"not_optimized": 2, "model_params": 6, "foreign_params": 2}
    assert "(fc.weight, fc.bias)" in finding.message and "before those layers were replaced" in finding.message
    assert "torch.optim.SGD(model.parameters(), ...)" in finding.suggestion


def test_optimizer_of_another_model_instance_is_params_not_optimized_in_fit() -> None:
    torch.manual_seed(0)
    model, other = mlp(), mlp()
    optimizer = torch.optim.Adam(other.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    result = fit(model, blobs(n=256), loss="cross_entropy", optimizer=optimizer, epochs=1, batch_size=32,
                 progress=False, doctor="quiet")  # fmt: skip
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))  # nothing trained
    assert codes(result.findings) == {"params-not-optimized"}
    finding = only(result.findings, "params-not-optimized")
    assert finding.subject is None
    assert finding.evidence == {"model_params": 4, "optimizer_params": 4}
    assert "none of this model's parameters" in finding.message
    assert "torch.optim.Adam(model.parameters(), ...)" in finding.suggestion


@pytest.mark.parametrize("when", ["frozen before the optimizer", "frozen after the optimizer"])
def test_frozen_layers_outside_the_optimizer_are_fine(when: str) -> None:
    torch.manual_seed(0)
    model = Net()
    if when == "frozen before the optimizer":
        for p in [*model.fc1.parameters(), *model.fc2.parameters()]:
            p.requires_grad_(False)
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        for p in [*model.fc1.parameters(), *model.fc2.parameters()]:
            p.requires_grad_(False)
    doctor = train(model, optimizer, blobs(), proper_step, steps=30, loss_fn=nn.CrossEntropyLoss())
    assert problems(doctor) == []


# ----------------------------------------------------------------------------- over-regularized


def test_dropout_p_as_keep_probability_is_over_regularized() -> None:
    """Dropout(p=0.9) written as if p were TensorFlow 1's keep_prob."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Dropout(p=0.9), nn.Linear(64, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    doctor = train(model, optimizer, blobs(), proper_step, steps=20, loss_fn=nn.CrossEntropyLoss())
    assert codes(doctor) == {"over-regularized"}
    finding = only(doctor, "over-regularized")
    assert finding.severity == "warning" and finding.subject == "2" and finding.step == 0
    assert finding.evidence == {"dropout": 0.9}
    assert "drops 90%" in finding.message and finding.suggestion.startswith("use p = 0.1")


def test_weight_decay_1_with_sgd_is_over_regularized_in_fit() -> None:
    torch.manual_seed(0)
    result = fit(Net(), blobs(), loss="cross_entropy", lr=0.05, weight_decay=1.0, epochs=8, batch_size=32,
                 progress=False, doctor="quiet")  # fmt: skip
    # (learning_rate's update/weight check adds lr-too-high: the shrunken weights make every step look big)
    assert codes(result.findings) & MY_CODES == {"over-regularized"}
    finding = only(result.findings, "over-regularized")
    assert finding.severity == "warning" and finding.subject is None
    assert result.history["loss"][-1] == pytest.approx(math.log(4), abs=0.01)  # collapsed to chance level
    assert finding.evidence["weight_decay"] == 1.0
    assert finding.evidence["decay_pull"] > 1  # the decay outpulls the data from the first step
    assert finding.evidence["weight_norm_vs_start"] < 0.5
    assert finding.suggestion.startswith("lower weight_decay to about 1e-4")


def test_weight_decay_10_typo_with_adam_on_regression_is_over_regularized() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 64), nn.Tanh(), nn.Linear(64, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=10)

    def step(model: nn.Module, optimizer: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.mse_loss(model(xb), yb)
        loss.backward()
        optimizer.step()
        return loss

    doctor = train(model, optimizer, regression(), step, steps=120, loss_fn=nn.MSELoss())
    assert codes(doctor) & MY_CODES == {"over-regularized"}
    finding = only(doctor, "over-regularized")
    assert finding.evidence["weight_decay"] == 10
    assert finding.evidence["decay_pull"] > 10
    assert finding.evidence["weight_norm_vs_start"] < 0.5


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda p: torch.optim.SGD(p, lr=0.05, weight_decay=1e-4),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=5e-4),
        lambda p: torch.optim.AdamW(p, lr=3e-3, weight_decay=0.01),
    ],
    ids=["sgd-1e-4", "sgd-momentum-5e-4", "adamw-1e-2"],
)
def test_usual_weight_decay_and_dropout_are_silent(make_optimizer: Callable[..., torch.optim.Optimizer]) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 4))
    optimizer = make_optimizer(model.parameters())
    doctor = train(model, optimizer, blobs(), proper_step, steps=150, loss_fn=nn.CrossEntropyLoss())
    assert len(doctor.obs.samples) >= 10  # long enough for the weight-decay check to have looked
    assert problems(doctor) == []


@pytest.mark.parametrize("lam", [1.0, 1e-4])
def test_an_l2_penalty_added_to_the_loss_by_hand_is_over_regularized_when_it_outweighs_the_data(lam: float) -> None:
    X, y = regression()
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    def penalized_step(
        model: nn.Module, optimizer: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor
    ) -> torch.Tensor:
        penalty = sum(p.pow(2).sum() for p in model.parameters())
        loss = F.mse_loss(model(xb), yb) + lam * penalty
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    doctor = train(model, optimizer, (X, y), penalized_step, steps=300)
    if lam < 1e-2:  # a mild penalty: the data's gradient leads, the weights grow
        assert problems(doctor) == []
        return
    finding = only(doctor, "over-regularized")
    assert finding.evidence["gradient_weight_cosine"] >= 0.5
    assert finding.evidence["weight_norm_vs_start"] < 1


def test_zero_grad_on_one_part_of_the_model_is_missing_zero_grad_on_the_other() -> None:
    X, y = blobs()
    encoder = nn.Sequential(nn.Linear(16, 32), nn.ReLU())
    head = nn.Linear(32, 4)
    model = nn.Sequential(encoder, head)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def encoder_only_zero_grad(
        model: nn.Module, optimizer: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor
    ) -> torch.Tensor:
        loss = F.cross_entropy(model(xb), yb)
        encoder.zero_grad()  # the head's gradients pile up
        loss.backward()
        optimizer.step()
        return loss

    doctor = train(model, optimizer, (X, y), encoder_only_zero_grad)
    assert "missing-zero-grad" in codes(doctor)
