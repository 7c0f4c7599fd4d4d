"""The generalization family: overfitting when a large model memorizes a small training set, and silence when
the validation loss only plateaus, jitters or bumps early."""

import torch
from torch import nn

from tests.doctor.helpers import cpu_fit
from trainwise.doctor import Doctor, Finding, watch
from trainwise.models import mlp


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def codes(findings: list[Finding]) -> set[str]:
    return {f.code for f in findings}


def two_informative_of_twenty(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """20 features of which 2 decide the class (with label noise): few samples leave 18 to memorize by."""
    g = generator(seed)
    X = torch.randn(n, 20, generator=g)
    return X, ((X[:, 0] + X[:, 1] + 0.8 * torch.randn(n, generator=g)) > 0).long()


def noisy_sine(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = generator(seed)
    X = torch.rand(n, 1, generator=g) * 6 - 3
    return X, torch.sin(X) + 0.3 * torch.randn(n, 1, generator=g)


Data = tuple[torch.Tensor, torch.Tensor]


def watched_full_batch(model: nn.Module, lr: float, epochs: int, train: Data, val: Data) -> tuple[Doctor, list[float]]:
    """Full-batch Adam; validation after every epoch in eval mode, reported with doctor.record(val_loss=...)."""
    (X, y), (X_val, y_val) = train, val
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.MSELoss()
    val_losses: list[float] = []
    with watch(model, optimizer, loss_fn=loss_fn, mode="quiet") as doctor:
        for _ in range(epochs):
            model.train()
            loss = loss_fn(model(X), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            doctor.record(loss, target=y)
            model.eval()
            with torch.no_grad():
                val_loss = loss_fn(model(X_val), y_val)
            doctor.record(val_loss=val_loss)
            val_losses.append(float(val_loss))
    return doctor, val_losses


def test_a_large_mlp_on_40_samples_overfits_in_fit() -> None:
    torch.manual_seed(0)
    result = cpu_fit(mlp(20, 2, hidden=(128, 128)), two_informative_of_twenty(40, seed=1),
                           val_data=two_informative_of_twenty(200, seed=2), loss="cross_entropy", optimizer="adam",
                           lr=1e-3, epochs=20, batch_size=8, progress=False, doctor="quiet")  # fmt: skip
    assert codes(result.findings) == {"overfitting"}
    [overfitting] = result.findings
    best = overfitting.evidence["best_validation"]
    val = result.history["val_loss"]
    assert 5 <= best <= 15 and min(val) < overfitting.evidence["val_loss"]
    assert overfitting.evidence["train_loss"] < overfitting.evidence["val_loss"] / 2
    assert f"stop near epoch {int(best)}" in overfitting.suggestion and "weight decay" in overfitting.suggestion
    assert val[-1] > 1.1 * min(val)  # and it went on rising after the finding


def test_a_large_mlp_on_40_noisy_points_overfits_in_a_watched_loop() -> None:
    torch.manual_seed(0)
    doctor, val_losses = watched_full_batch(mlp(1, 1, hidden=(128, 128, 128)), 3e-3, 120, noisy_sine(40, seed=3),
                                            noisy_sine(200, seed=4))  # fmt: skip
    assert codes(doctor.findings) == {"overfitting"}
    [overfitting] = doctor.findings
    assert overfitting.evidence["val_loss"] > 1.05 * overfitting.evidence["best_val_loss"]
    assert "stop near validation" in overfitting.suggestion  # a user loop without epochs counts validations
    assert min(val_losses) < 0.11 < val_losses[-1]


def test_the_same_mlp_with_weight_decay_plateaus_and_is_not_overfitting() -> None:
    torch.manual_seed(0)
    data, val_data = two_informative_of_twenty(40, seed=1), two_informative_of_twenty(200, seed=2)
    result = cpu_fit(mlp(20, 2, hidden=(128, 128)), data, val_data=val_data, loss="cross_entropy",
                           optimizer="adam", lr=3e-3, weight_decay=0.05, epochs=40, batch_size=10, progress=False,
                           doctor="quiet")  # fmt: skip
    val, train = result.history["val_loss"], result.history["loss"]
    assert max(val[-20:]) - min(val[-20:]) < 0.05 * min(val)  # a plateau
    assert train[-1] < val[-1] / 2  # far below: the gap alone is not overfitting
    assert codes(result.findings) == set()


def test_an_unstable_start_whose_validation_loss_then_keeps_falling_is_not_overfitting() -> None:
    """Adam at lr 1e-2 bounces in its first epochs (validation 10 -> 0.3 -> 0.4 -> 0.2 ...), then settles."""
    torch.manual_seed(0)
    doctor, val_losses = watched_full_batch(mlp(1, 1, hidden=(256, 256)), 1e-2, 100, noisy_sine(40, seed=0),
                                            noisy_sine(200, seed=5))  # fmt: skip
    assert max(val_losses[:10]) > 10 * min(val_losses)
    assert "overfitting" not in codes(doctor.findings)
