"""The learning-rate family: lr-too-high, lr-too-low and not-learning on the faults that tutorials and forum
questions show, their causes, fit's repair and stop modes, and silence on the near-miss healthy variants."""

import math
import re
import statistics
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import trainwise
from tests.doctor.helpers import cpu_fit, full_batch_steps, generator
from trainwise.doctor import Doctor, Finding, watch
from trainwise.doctor.findings import nice_number
from trainwise.models import mlp

T_U = torch.tensor([35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4]).unsqueeze(1)
T_C = torch.tensor([0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0]).unsqueeze(1)


def regression(n: int = 256, features: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = generator(seed)
    X = torch.randn(n, features, generator=g)
    w = torch.randn(features, 1, generator=g) / math.sqrt(features)
    return X, torch.sin(2 * X @ w) + 0.1 * torch.randn(n, 1, generator=g)


def xor(n: int = 512, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes by the sign of x0 * x1, blurred: a small MLP can learn it, a linear model cannot."""
    g = generator(seed)
    X = torch.randn(n, 2, generator=g)
    y = (X[:, 0] * X[:, 1] > 0).long()
    return X + 0.3 * torch.randn(n, 2, generator=g), y


def blobs(n: int = 600, classes: int = 3, features: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = generator(seed)
    centers = torch.randn(classes, features, generator=g)
    y = torch.arange(n) % classes
    return centers[y] + torch.randn(n, features, generator=g), y


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: tuple[torch.Tensor, torch.Tensor],
    loss_fn: nn.Module,
    *,
    epochs: int,
    batch_size: int | None = None,
) -> Doctor:
    """The tutorials' loop: DataLoader with shuffling, zero_grad/backward/step, doctor.record each step."""
    X, y = data
    loader = DataLoader(TensorDataset(X, y), batch_size=batch_size or len(X), shuffle=True, generator=generator(1))
    with watch(model, optimizer, loss_fn=loss_fn, mode="quiet") as doctor:
        for _ in range(epochs):
            for xb, yb in loader:
                loss = loss_fn(model(xb), yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                doctor.record(loss, target=yb)
    return doctor


def codes(findings: list[Finding]) -> set[str]:
    return {f.code for f in findings}


def finding(findings: list[Finding], code: str) -> Finding:
    return next(f for f in findings if f.code == code)


def suggested_lr(f: Finding) -> float:
    match = re.search(r"lr to about (\d[\d.e+-]*)", f.suggestion)
    assert match, f.suggestion
    return float(match.group(1))


# ------------------------------------------------------------------------------------------- lr-too-high


def test_temperature_raw_inputs_at_lr_1e_2_diverge_to_inf_caused_by_the_lr() -> None:
    """Deep Learning with PyTorch, ch. 5: w=1, b=0, plain gradient descent on raw t_u at lr 1e-2."""
    model = nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.zero_()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    loss_fn = nn.MSELoss()
    with watch(model, optimizer, loss_fn=loss_fn, mode="quiet") as doctor:
        full_batch_steps(doctor, model, optimizer, loss_fn, T_U, T_C, 100)
    found = codes(doctor.findings)
    assert {"lr-too-high", "nonfinite-loss"} <= found and "nonfinite-data" not in found
    high, nonfinite = finding(doctor.findings, "lr-too-high"), finding(doctor.findings, "nonfinite-loss")
    assert "learning rate too high" in nonfinite.message
    assert high.step is not None and nonfinite.step is not None and high.step <= nonfinite.step
    # a linear model's loss is quadratic: the growth per step tells the stable lr (2 / curvature = 3.4e-4)
    assert suggested_lr(high) < 3.4e-4
    assert high.evidence["growth_per_step"] > 100


def test_mlp_regression_with_sgd_lr_10_turns_non_finite_caused_by_the_lr() -> None:
    torch.manual_seed(0)
    model = mlp(8, 1, hidden=(64, 64))
    doctor = train(model, torch.optim.SGD(model.parameters(), lr=10.0), regression(), nn.MSELoss(), epochs=2,
                   batch_size=32)  # fmt: skip
    found = codes(doctor.findings)
    assert {"lr-too-high", "nonfinite-loss"} <= found
    assert not found & {"nonfinite-data", "exploding-gradients", "lr-too-low", "not-learning"}
    assert "learning rate too high" in finding(doctor.findings, "nonfinite-loss").message
    assert suggested_lr(finding(doctor.findings, "lr-too-high")) <= 1.0  # at least 10x lower


def test_mlp_regression_with_sgd_lr_1_oscillates_in_fit() -> None:
    torch.manual_seed(0)
    result = cpu_fit(mlp(8, 1, hidden=(64, 64)), regression(), loss="mse", lr=1.0, epochs=10, batch_size=32,
                           progress=False, doctor="quiet")  # fmt: skip
    high = finding(result.findings, "lr-too-high")
    assert high.evidence["lr"] == 1.0 and high.evidence["update_to_weight"] > 0.1
    assert 0 < suggested_lr(high) < 1.0
    assert "nonfinite-loss" not in codes(result.findings)


def test_adam_at_lr_1_on_a_classifier_jumps_far_above_its_start() -> None:
    torch.manual_seed(0)
    model = mlp(2, 2, hidden=(64, 64))
    doctor = train(model, torch.optim.Adam(model.parameters(), lr=1.0), xor(), nn.CrossEntropyLoss(), epochs=4,
                   batch_size=32)  # fmt: skip
    high = finding(doctor.findings, "lr-too-high")
    assert "rose from" in high.message and high.evidence["lr"] == 1.0
    assert 0 < suggested_lr(high) < 1.0
    assert "nonfinite-loss" not in codes(doctor.findings)


@pytest.mark.parametrize("lr", [0.1, 0.3])
def test_a_good_sgd_lr_on_the_same_mlp_is_silent(lr: float) -> None:
    torch.manual_seed(0)
    result = cpu_fit(mlp(8, 1, hidden=(64, 64)), regression(), loss="mse", lr=lr, epochs=10, batch_size=32,
                           progress=False, doctor="quiet")  # fmt: skip
    assert not codes(result.findings) & {"lr-too-high", "lr-too-low", "nonfinite-loss", "not-learning"}


def test_a_good_adam_lr_on_the_same_classifier_is_silent() -> None:
    torch.manual_seed(0)
    model = mlp(2, 2, hidden=(64, 64))
    doctor = train(model, torch.optim.Adam(model.parameters(), lr=1e-2), xor(), nn.CrossEntropyLoss(), epochs=4,
                   batch_size=32)  # fmt: skip
    assert not codes(doctor.findings) & {"lr-too-high", "lr-too-low", "not-learning"}


def test_noisy_minibatch_losses_are_not_divergence() -> None:
    """Batches of 4 from data with heavy-tailed noise: single losses jump 100x, the run is healthy."""
    g = generator(5)
    X = torch.randn(400, 3, generator=g)
    # Student's t with 2 degrees of freedom (normal / sqrt(chi2_2 / 2)): heavy tails, the odd sample is far off
    noise = torch.randn(400, 1, generator=g) / torch.sqrt(-torch.log(torch.rand(400, 1, generator=g)))
    y = X @ torch.tensor([[1.0], [-1.0], [0.5]]) + 0.5 * noise
    torch.manual_seed(0)
    model = mlp(3, 1, hidden=(32,))
    doctor = train(model, torch.optim.SGD(model.parameters(), lr=0.01), (X, y), nn.MSELoss(), epochs=6, batch_size=4)
    losses = doctor.obs.losses
    assert max(losses[200:]) > 50 * min(losses[200:])  # really noisy
    assert not codes(doctor.findings) & {"lr-too-high", "nonfinite-loss", "lr-too-low"}


# ------------------------------------------------------------------------------------------- repair and stop


def lowered_lrs(actions: list[str]) -> list[float]:
    return [float(m.group(1)) for action in actions if (m := re.search(r"lowered lr to (\S+) ", action))]


def temperature_model() -> nn.Linear:
    model = nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.zero_()
    return model


def test_fit_repair_rolls_back_and_lowers_the_lr_until_the_loss_stays_finite() -> None:
    result = cpu_fit(temperature_model(), (T_U, T_C), loss="mse", lr=1e-2, epochs=100, progress=False,
                           doctor="repair")  # fmt: skip
    actions = result.doctor_actions
    assert 1 <= len(actions) <= 3 and all("rolled back" in action for action in actions)
    lrs = lowered_lrs(actions)
    assert lrs == pytest.approx([1e-2 / 10 ** (i + 1) for i in range(len(actions))])
    assert result.history["lr"][-1] == pytest.approx(lrs[-1])
    assert math.isfinite(result.history["loss"][-1]) and result.history["loss"][-1] < 1763.9  # below the start
    assert "lr-too-high" in codes(result.findings)
    assert "repair: step" in "\n".join(f"repair: {a}" for a in actions)


def test_fit_repair_lowers_the_lr_at_most_three_times_then_stops() -> None:
    """lr 10 on raw temperatures needs a 1e-5 lr: three repairs (1, 0.1, 0.01) are not enough, so fit stops."""
    result = cpu_fit(temperature_model(), (T_U, T_C), loss="mse", lr=10.0, epochs=100, progress=False,
                           doctor="repair")  # fmt: skip
    *repairs, last = result.doctor_actions
    assert lowered_lrs(repairs) == [1.0, 0.1, 0.01]
    assert "after 3 repairs: stopped training" in last
    assert result.status == "stopped" and result.epochs < 100


def test_fit_repair_on_a_diverging_mlp_ends_finite() -> None:
    torch.manual_seed(0)
    result = cpu_fit(mlp(8, 1, hidden=(64, 64)), regression(), loss="mse", lr=10.0, epochs=10, batch_size=32,
                           progress=False, doctor="repair")  # fmt: skip
    assert 1 <= len(result.doctor_actions) <= 3
    assert result.history["lr"][-1] <= 1.0
    assert all(math.isfinite(v) for v in result.history["loss"][-3:])
    assert result.history["loss"][-1] < 1.0


def test_fit_stop_raises_at_the_first_error() -> None:
    torch.manual_seed(0)
    with pytest.raises(trainwise.TrainingError, match=r"nonfinite-loss.*learning rate too high"):
        cpu_fit(mlp(8, 1, hidden=(64, 64)), regression(), loss="mse", lr=10.0, epochs=10, batch_size=32,
                      progress=False, doctor="stop")  # fmt: skip


# ------------------------------------------------------------------------------------------- lr-too-low


def test_rmsprop_at_lr_1e_6_crawls() -> None:
    """The W4 write-up's mistake on another model: RMSprop moves each weight by about lr per step."""
    torch.manual_seed(0)
    model = mlp(10, 3, hidden=(64,))
    doctor = train(model, torch.optim.RMSprop(model.parameters(), lr=1e-6), blobs(), nn.CrossEntropyLoss(), epochs=3,
                   batch_size=32)  # fmt: skip
    low = finding(doctor.findings, "lr-too-low")
    assert low.evidence["update_to_weight"] < 1e-4
    assert suggested_lr(low) >= 1e-5  # at least 10x higher
    assert not codes(doctor.findings) & {"lr-too-high", "not-learning"}


@pytest.mark.parametrize("lr", [1e-6, 1e-7])
def test_sgd_at_a_tiny_lr_crawls_in_fit_with_noisy_minibatches(lr: float) -> None:
    torch.manual_seed(0)
    result = cpu_fit(mlp(8, 1, hidden=(32,)), regression(seed=3), loss="mse", lr=lr, epochs=8, batch_size=16,
                           progress=False, doctor="quiet")  # fmt: skip
    low = finding(result.findings, "lr-too-low")
    assert low.evidence["update_to_weight"] < 1e-5
    assert suggested_lr(low) >= 100 * lr
    assert "not-learning" not in codes(result.findings)


def test_a_good_lr_on_the_same_models_is_not_too_low() -> None:
    torch.manual_seed(0)
    model = mlp(10, 3, hidden=(64,))
    doctor = train(model, torch.optim.RMSprop(model.parameters(), lr=1e-3), blobs(), nn.CrossEntropyLoss(), epochs=3,
                   batch_size=32)  # fmt: skip
    assert not codes(doctor.findings) & {"lr-too-low", "lr-too-high", "not-learning"}
    torch.manual_seed(0)
    result = cpu_fit(mlp(8, 1, hidden=(32,)), regression(seed=3), loss="mse", lr=0.05, epochs=8, batch_size=16,
                           progress=False, doctor="quiet")  # fmt: skip
    assert not codes(result.findings) & {"lr-too-low", "lr-too-high", "not-learning"}


def test_a_converged_run_whose_loss_stops_changing_is_not_too_low_or_not_learning() -> None:
    """The temperature model on standardized inputs converges in ~100 steps; then 900 steps of a flat loss."""
    model = temperature_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.MSELoss()
    inputs = (T_U - T_U.mean()) / T_U.std()
    with watch(model, optimizer, loss_fn=loss_fn, mode="quiet") as doctor:
        full_batch_steps(doctor, model, optimizer, loss_fn, inputs, T_C, 1000)
    losses = doctor.obs.losses
    assert losses[-1] == pytest.approx(2.927646, abs=1e-4)  # the least-squares optimum
    assert max(losses[-900:]) - min(losses[-900:]) < 1e-4  # and it stopped changing
    assert codes(doctor.findings) == set()


def test_a_converged_adam_classifier_with_flat_loss_is_silent() -> None:
    torch.manual_seed(0)
    result = cpu_fit(mlp(10, 3, hidden=(32,)), blobs(), loss="cross_entropy", optimizer="adam", lr=1e-2,
                           epochs=40, batch_size=64, progress=False, doctor="quiet")  # fmt: skip
    assert result.history["loss"][-1] < 0.05
    assert not codes(result.findings) & {"lr-too-low", "not-learning", "lr-too-high"}


# ------------------------------------------------------------------------------------------- not-learning


def test_labels_shuffled_apart_from_their_inputs_do_not_learn() -> None:
    """y = y[torch.randperm(n)] shuffles the labels alone: each input now has a random label."""
    X, y = blobs(n=960, classes=2, features=10, seed=2)
    shuffled = y[torch.randperm(len(y), generator=generator(3))]
    torch.manual_seed(0)
    model = mlp(10, 2, hidden=(64,))
    doctor = train(model, torch.optim.SGD(model.parameters(), lr=0.1), (X, shuffled), nn.CrossEntropyLoss(),
                   epochs=20, batch_size=32)  # fmt: skip
    stuck = finding(doctor.findings, "not-learning")
    assert stuck.evidence["constant_prediction_loss"] == pytest.approx(math.log(2), rel=0.01)
    assert stuck.evidence["gradient_cosine"] < 0.2
    assert "targets belong to the inputs" in stuck.suggestion
    assert not codes(doctor.findings) & {"lr-too-low", "lr-too-high"}


def test_regression_targets_shuffled_before_fit_do_not_learn() -> None:
    X, y = regression(n=1024, features=8, seed=4)
    shuffled = y[torch.randperm(len(y), generator=generator(5))]
    torch.manual_seed(0)
    result = cpu_fit(mlp(8, 1, hidden=(32, 32)), (X, shuffled), loss="mse", optimizer="adam", lr=1e-3,
                           epochs=16, batch_size=32, progress=False, doctor="quiet")  # fmt: skip
    stuck = finding(result.findings, "not-learning")
    assert stuck.evidence["last_losses_mean"] > 0.9 * stuck.evidence["constant_prediction_loss"]
    assert codes(result.findings) == {"not-learning"}


def test_the_same_data_with_matching_labels_learns() -> None:
    X, y = blobs(n=960, classes=2, features=10, seed=2)
    torch.manual_seed(0)
    model = mlp(10, 2, hidden=(64,))
    doctor = train(model, torch.optim.SGD(model.parameters(), lr=0.1), (X, y), nn.CrossEntropyLoss(), epochs=20,
                   batch_size=32)  # fmt: skip
    assert codes(doctor.findings) == set()
    X, y = regression(n=1024, features=8, seed=4)
    torch.manual_seed(0)
    result = cpu_fit(mlp(8, 1, hidden=(32, 32)), (X, y), loss="mse", optimizer="adam", lr=1e-3, epochs=16,
                           batch_size=32, progress=False, doctor="quiet")  # fmt: skip
    assert codes(result.findings) == set()


# --------------------------------------------------------------------------- runs trained further, repair's numbers


def w1_normalized_fit(model: nn.Module, epochs: int, **options: object) -> trainwise.FitResult:
    return cpu_fit(model, (T_U, T_C), loss="mse", optimizer="sgd", lr=1e-2, epochs=epochs, normalize=0.1,
                         progress=False, doctor="quiet", **options)  # fmt: skip


def test_a_resumed_or_continued_converged_run_is_not_told_to_raise_its_lr(tmp_path: Path) -> None:
    """W1 normalized converges by epoch ~3000: resumed from a checkpoint there, or fit again on the trained model,
    its doctor starts with a small gradient that keeps shrinking and must not call that a stalled lr."""
    torch.manual_seed(0)
    first = w1_normalized_fit(nn.Linear(1, 1), 3000, run_dir=tmp_path, callbacks=[trainwise.Checkpoint()])
    assert first.run is not None and first.findings == []
    torch.manual_seed(0)
    model = nn.Linear(1, 1)
    resumed = w1_normalized_fit(model, 5000, run_dir=tmp_path, resume=first.run)
    assert len(resumed.history["loss"]) == 5000 and resumed.history["loss"][-1] == pytest.approx(2.927647, abs=1e-5)
    assert "lr-too-low" not in codes(resumed.findings)
    continued = w1_normalized_fit(model, 2000)  # the same trained model, a new fit
    assert continued.history["loss"][-1] == pytest.approx(2.927645, abs=1e-5)
    assert codes(continued.findings) == set()


def test_a_real_crawl_from_a_trained_start_is_still_too_low() -> None:
    """The converged-run exemption needs the loss at the floor of its slope: the same model started far from
    its optimum at lr 1e-6 (a deterministic, steadily shrinking gradient too) is still told to raise the lr."""
    model = temperature_model()
    result = cpu_fit(model, (T_U, T_C), loss="mse", optimizer="sgd", lr=1e-6, epochs=300, normalize=0.1,
                           progress=False, doctor="quiet")  # fmt: skip
    low = finding(result.findings, "lr-too-low")
    assert low.evidence["remaining_loss_drop"] > 0.01 * result.history["loss"][-1]
    assert suggested_lr(low) >= 10 * 1e-6


def test_repair_reports_one_measurement_in_message_and_evidence() -> None:
    """The summary said lr 0.01 and growth 3.32e+03 while the Evidence said lr 0.001 and growth 23.7: a finding
    raised again after a repair must not mix the second measurement's numbers into the first's text."""
    result = cpu_fit(temperature_model(), (T_U, T_C), loss="mse", optimizer="sgd", lr=1e-2, epochs=100,
                           progress=False, doctor="repair")  # fmt: skip
    assert len(result.doctor_actions) >= 1  # repaired at least once, so lr-too-high was measured again
    high = finding(result.findings, "lr-too-high")
    evidence = high.evidence
    assert f"The learning rate {evidence['lr']:g} is too high" in high.message
    assert f"grew {evidence['growth_per_step']:.3g}x per step" in high.message
    growth, lr = evidence["growth_per_step"], evidence["lr"]
    assert high.suggestion == f"lower lr to about {nice_number(lr / (1 + math.sqrt(growth))):g}"  # the same numbers


# ------------------------------------------------------------------------------------------- the loss's level


def levels_after(losses: list[float], chunk: int) -> dict[str, object]:
    """The episode after reading `losses` in flushes of `chunk` values."""
    from types import SimpleNamespace

    from trainwise.doctor.learning_rate import _Episode, _update_levels

    episode, doctor = _Episode(), SimpleNamespace(obs=SimpleNamespace(losses=[]), flushed_from=0)
    for start in range(0, len(losses), chunk):
        doctor.flushed_from = len(doctor.obs.losses)
        doctor.obs.losses.extend(losses[start : start + chunk])
        _update_levels(doctor, episode)  # type: ignore[arg-type]
    fields = vars(episode)
    return {**fields, "window": list(episode.window)}


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=70, max_size=300),
    st.lists(st.tuples(st.integers(0, 299), st.sampled_from([math.nan, math.inf, -math.inf])), max_size=3),
    st.integers(32, 64),
)
def test_levels_moved_along_in_bulk_are_those_of_one_loss_at_a_time(
    losses: list[float], bad: list[tuple[int, float]], chunk: int
) -> None:
    for index, value in bad:  # a few non-finite losses: those flushes go one by one
        losses[index % len(losses)] = value
    one_by_one = levels_after(losses, 1)
    assert levels_after(losses, chunk) == one_by_one
    assert one_by_one["seen"] == len(losses)


def test_a_long_finite_run_moves_its_level_in_bulk_to_the_median_of_its_last_values() -> None:
    losses = [float(v) for v in torch.linspace(10, 1, 300)] + [1.0, 50.0, 1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 9.0]
    episode = levels_after(losses, 103)  # the first flush one by one, the next two in bulk
    assert episode["level"] == 3.0  # the median of the last 9, the outlier 50 ignored
    assert episode["level_of"] == 9
    medians = [statistics.median(losses[max(0, end - 9) : end]) for end in range(3, len(losses) + 1)]
    assert episode["best_level"] == min(medians)  # the lowest median of 3 or more values
    assert (episode["peak"], episode["peak_at"]) == (50.0, 302)
