"""The numerics family: non-finite data and losses traced to their cause, exploding and vanishing gradients,
on the faults that tutorials and forum questions show, and silence on the near-miss healthy variants."""

import io
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import trainwise
from tests.doctor.helpers import cpu_fit, full_batch_steps, generator
from trainwise.doctor import Doctor, Finding, watch
from trainwise.doctor.core import Mode
from trainwise.models import mlp


def codes(findings: list[Finding]) -> set[str]:
    return {f.code for f in findings}


def finding(findings: list[Finding], code: str) -> Finding:
    return next(f for f in findings if f.code == code)


def regression(n: int = 256, features: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = generator(seed)
    X = torch.randn(n, features, generator=g)
    w = torch.randn(features, 1, generator=g) / math.sqrt(features)
    return X, torch.sin(2 * X @ w) + 0.1 * torch.randn(n, 1, generator=g)


def classes(n: int = 256, features: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = generator(seed)
    X = torch.randn(n, features, generator=g)
    return X, (X[:, :4].sum(1) > 0).long()


def csv_with_a_missing_value(row: int, column: int, missing_target: bool = False) -> str:
    """A small house-price-like CSV, as exported from a spreadsheet with one empty cell."""
    X, y = regression(n=200, features=4, seed=7)
    lines = ["rooms,area,age,distance,price"]
    for i, values in enumerate(torch.cat([X, y], 1).tolist()):
        cells = [f"{v:.4f}" for v in values]
        if i == row:
            cells[4 if missing_target else column] = ""
        lines.append(",".join(cells))
    return "\n".join(lines)


def load_csv(text: str) -> tuple[torch.Tensor, torch.Tensor]:
    data = np.genfromtxt(io.StringIO(text), delimiter=",", skip_header=1, dtype=np.float32)  # "" -> nan
    return torch.from_numpy(data[:, :4]), torch.from_numpy(data[:, 4:])


def minibatch_loop(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    loss_fn: nn.Module,
    *,
    epochs: int,
    batch_size: int,
    mode: Mode = "quiet",
) -> Doctor:
    """In order, batch by batch, as `for i in range(0, len(X), batch_size)` loops do."""
    with watch(model, optimizer, loss_fn=loss_fn, mode=mode, printer=lambda _: None) as doctor:
        for _ in range(epochs):
            for i in range(0, len(X), batch_size):
                xb, yb = X[i : i + batch_size], y[i : i + batch_size]
                loss = loss_fn(model(xb), yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                doctor.record(loss, target=yb)
    return doctor


# ------------------------------------------------------------------------------------------- non-finite data


def test_a_missing_value_in_a_csv_gives_nonfinite_data_not_a_learning_rate() -> None:
    # row 135 lands in batch 13: between the doctor's sampled steps (0-9, 10-11, 20-21, ...)
    X, y = load_csv(csv_with_a_missing_value(row=135, column=1))
    assert torch.isnan(X).sum() == 1
    torch.manual_seed(0)
    model = mlp(4, 1, hidden=(32,))
    doctor = minibatch_loop(model, torch.optim.SGD(model.parameters(), lr=0.05), X, y, nn.MSELoss(), epochs=2,
                            batch_size=10)  # fmt: skip
    found = codes(doctor.findings)
    assert found == {"nonfinite-data", "nonfinite-loss"}  # and not lr-too-high: the loss was falling
    data = finding(doctor.findings, "nonfinite-data")
    assert data.subject == "inputs" and data.severity == "error"
    assert data.evidence["step"] == 14  # the 14th step's batch (rows 130-139), recorded after optimizer.step()
    assert "dropna" in data.suggestion
    assert "NaN or inf values in the training inputs" in finding(doctor.findings, "nonfinite-loss").message


def test_a_missing_value_stops_a_watched_loop_in_stop_mode() -> None:
    X, y = load_csv(csv_with_a_missing_value(row=135, column=1))
    torch.manual_seed(0)
    model = mlp(4, 1, hidden=(32,))
    with pytest.raises(trainwise.TrainingError, match="nonfinite-data"):
        minibatch_loop(model, torch.optim.SGD(model.parameters(), lr=0.05), X, y, nn.MSELoss(), epochs=2,
                       batch_size=10, mode="stop")  # fmt: skip


def test_a_missing_target_in_fit_is_found_before_training_and_stop_mode_raises() -> None:
    X, y = load_csv(csv_with_a_missing_value(row=57, column=0, missing_target=True))
    torch.manual_seed(0)
    result = cpu_fit(mlp(4, 1, hidden=(32,)), (X, y), loss="mse", optimizer="adam", lr=1e-3, epochs=2,
                           batch_size=16, progress=False, doctor="quiet")  # fmt: skip
    data = finding(result.findings, "nonfinite-data")
    assert data.subject == "targets" and data.step == 0 and data.evidence["bad_samples"] == 1
    assert "NaN or inf values in the training targets" in finding(result.findings, "nonfinite-loss").message
    assert not codes(result.findings) & {"lr-too-high", "exploding-gradients"}
    with pytest.raises(trainwise.TrainingError, match="nonfinite-data"):
        cpu_fit(mlp(4, 1, hidden=(32,)), (X, y), loss="mse", lr=1e-3, epochs=2, progress=False, doctor="stop")


def test_clean_data_in_the_same_loop_is_silent() -> None:
    X, y = load_csv(csv_with_a_missing_value(row=-1, column=0))
    assert bool(torch.isfinite(X).all())
    torch.manual_seed(0)
    model = mlp(4, 1, hidden=(32,))
    doctor = minibatch_loop(model, torch.optim.SGD(model.parameters(), lr=0.05), X, y, nn.MSELoss(), epochs=2,
                            batch_size=10)  # fmt: skip
    assert codes(doctor.findings) == set()


# ------------------------------------------------------------------------------------------- non-finite loss


def hand_written_bce(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy as often typed in: sigmoid then log. sigmoid(17) rounds to 1.0 in float32."""
    p = torch.sigmoid(output)
    return -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()


def separable_points() -> tuple[torch.Tensor, torch.Tensor]:
    X = 20 * torch.rand(200, 1, generator=generator(0)) - 10
    return X, (X > 0).float()


@pytest.mark.parametrize("lr", [0.5, 0.1])
def test_log_of_zero_in_a_hand_written_loss_is_blamed_on_the_loss(lr: float) -> None:
    X, y = separable_points()
    model = nn.Linear(1, 1)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    with watch(model, optimizer, loss_fn=hand_written_bce, mode="quiet") as doctor:
        full_batch_steps(doctor, model, optimizer, hand_written_bce, X, y, 250)
    losses = doctor.obs.losses
    first_nan = next(i for i, v in enumerate(losses) if not math.isfinite(v))
    assert losses[first_nan - 1] < losses[0] / 5  # the loss was falling nicely until then
    assert codes(doctor.findings) == {"nonfinite-loss"}  # not the data, not the learning rate
    nonfinite = finding(doctor.findings, "nonfinite-loss")
    assert "the loss computation itself" in nonfinite.message
    assert "binary_cross_entropy_with_logits" in nonfinite.suggestion


def test_the_same_model_with_the_fused_loss_is_silent() -> None:
    X, y = separable_points()
    model = nn.Linear(1, 1)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    with watch(model, optimizer, loss_fn=F.binary_cross_entropy_with_logits, mode="quiet") as doctor:
        for _ in range(250):
            loss = F.binary_cross_entropy_with_logits(model(X), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            doctor.record(loss, target=y)
    assert all(math.isfinite(v) for v in doctor.obs.losses)
    assert codes(doctor.findings) == set()


# ------------------------------------------------------------------------------------------- exploding gradients


def normal_init(model: nn.Module, std: float = 1.0) -> nn.Module:
    """`nn.init.normal_(m.weight)`: its default std is 1, not the fan-in scaled 1/sqrt(fan_in)."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            nn.init.zeros_(module.bias)
    return model


def test_a_deep_relu_mlp_with_normal_init_explodes_to_nan() -> None:
    X, y = regression()
    torch.manual_seed(0)
    model = normal_init(mlp(8, 1, hidden=(64,) * 6), std=0.5)
    doctor = minibatch_loop(model, torch.optim.SGD(model.parameters(), lr=1e-3), X, y, nn.MSELoss(), epochs=1,
                            batch_size=32)  # fmt: skip
    found = codes(doctor.findings)
    assert {"exploding-gradients", "nonfinite-loss"} <= found
    assert "lr-too-high" not in found  # lr 1e-3 is no fault: the init is
    exploding = finding(doctor.findings, "exploding-gradients")
    assert exploding.evidence["backward_growth"] > 100 and exploding.evidence["weight_layers"] == 7
    assert "kaiming" in exploding.suggestion and "clip" in exploding.suggestion
    assert "exploding gradients" in finding(doctor.findings, "nonfinite-loss").message


def test_a_deep_relu_mlp_with_std_1_init_explodes_at_the_first_step() -> None:
    X, y = regression()
    torch.manual_seed(0)
    model = normal_init(mlp(8, 1, hidden=(64,) * 8))
    doctor = minibatch_loop(model, torch.optim.SGD(model.parameters(), lr=1e-3), X, y, nn.MSELoss(), epochs=1,
                            batch_size=32)  # fmt: skip
    assert {"exploding-gradients", "nonfinite-loss"} <= codes(doctor.findings)
    assert "lr-too-high" not in codes(doctor.findings)
    assert finding(doctor.findings, "exploding-gradients").evidence["backward_growth"] > 1e4


class SharedBlock(nn.Module):
    """One hidden layer applied `repeats` times (weight sharing, like an unrolled recurrent net)."""

    def __init__(self, inputs: int, width: int, outputs: int, repeats: int, activation: nn.Module) -> None:
        super().__init__()
        self.first, self.block, self.last = nn.Linear(inputs, width), nn.Linear(width, width), nn.Linear(width, outputs)
        self.repeats, self.activation = repeats, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.activation(self.first(x))
        for _ in range(self.repeats):
            h = self.activation(self.block(h))
        return self.last(h)


def test_a_repeated_tanh_weight_matrix_drawn_like_torch_randn_explodes_in_fit() -> None:
    torch.manual_seed(0)
    model = SharedBlock(8, 32, 1, repeats=10, activation=nn.Tanh())
    nn.init.normal_(model.block.weight)  # as W_hh = torch.randn(32, 32) in a hand-rolled RNN
    result = cpu_fit(model, regression(), loss="mse", optimizer="adam", lr=1e-3, epochs=3, batch_size=32,
                           progress=False, doctor="quiet")  # fmt: skip
    assert codes(result.findings) == {"exploding-gradients"}
    exploding = finding(result.findings, "exploding-gradients")
    assert exploding.evidence["weight_layers"] == 12  # the shared layer counts each time it is used
    assert math.isfinite(result.history["loss"][-1])  # Adam survives it, but the early layers learn badly


# ------------------------------------------------------------------------------------------- vanishing gradients


def test_a_ten_layer_sigmoid_mlp_has_vanishing_gradients() -> None:
    X, y = classes()
    torch.manual_seed(0)
    model = mlp(16, 2, hidden=(64,) * 10, activation="sigmoid")
    doctor = minibatch_loop(model, torch.optim.SGD(model.parameters(), lr=0.1), X, y, nn.CrossEntropyLoss(),
                            epochs=3, batch_size=32)  # fmt: skip
    vanishing = finding(doctor.findings, "vanishing-gradients")
    assert vanishing.evidence["first_to_last_ratio"] < 1e-6 and vanishing.evidence["layers"] == 11
    assert "ReLU" in vanishing.suggestion
    assert "exploding-gradients" not in codes(doctor.findings)


def test_a_twelve_layer_relu_mlp_with_default_init_has_vanishing_gradients_in_fit() -> None:
    """PyTorch's default Linear init scales weights by 1/sqrt(3 fan_in): each ReLU layer shrinks the signal ~2.4x."""
    torch.manual_seed(0)
    result = cpu_fit(mlp(8, 1, hidden=(64,) * 12), regression(), loss="mse", optimizer="adam", lr=1e-3,
                           epochs=3, batch_size=32, progress=False, doctor="quiet")  # fmt: skip
    vanishing = finding(result.findings, "vanishing-gradients")
    assert vanishing.evidence["backward_growth"] < 1e-3 and vanishing.evidence["layers"] == 13
    assert codes(result.findings) == {"vanishing-gradients"}


def kaiming(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return model


@pytest.mark.parametrize(
    "make",
    [
        lambda: mlp(8, 1, hidden=(64, 64)),  # a shallow ReLU net
        lambda: mlp(8, 1, hidden=(64, 64), activation="sigmoid"),  # shallow sigmoid: fine at this depth
        lambda: kaiming(mlp(8, 1, hidden=(64,) * 8)),  # deep, but initialized for its depth
    ],
    ids=["relu-2", "sigmoid-2", "relu-8-kaiming"],
)
def test_well_scaled_nets_have_neither_vanishing_nor_exploding_gradients(make: Callable[[], nn.Module]) -> None:
    torch.manual_seed(0)
    result = cpu_fit(make(), regression(), loss="mse", optimizer="adam", lr=1e-3, epochs=3, batch_size=32,
                           progress=False, doctor="quiet")  # fmt: skip
    assert not codes(result.findings) & {"vanishing-gradients", "exploding-gradients"}


def test_tiny_inputs_are_not_vanishing_gradients() -> None:
    """Inputs in thousandths shrink the first layer's weight gradient, not the backward signal."""
    X, y = regression()
    torch.manual_seed(0)
    result = cpu_fit(mlp(8, 1, hidden=(64,) * 4), (X * 1e-3, y), loss="mse", optimizer="sgd", lr=0.05,
                           epochs=3, batch_size=32, progress=False, doctor="quiet")  # fmt: skip
    assert not codes(result.findings) & {"vanishing-gradients", "exploding-gradients"}
