"""Healthy training runs of many kinds: the doctor must report no warning and no error on any of them."""

from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tests.doctor.helpers import cpu_fit as fit
from tests.doctor.helpers import full_batch_steps
from trainwise.doctor import Finding, watch
from trainwise.models import cnn, mlp


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def blobs(n: int = 600, classes: int = 3, features: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = generator(seed)
    centers = 0.6 * torch.randn(classes, features, generator=g)  # overlapping classes, as real data
    y = torch.arange(n) % classes
    X = centers[y] + torch.randn(n, features, generator=g)
    return X, y


def regression(n: int = 512, features: int = 5, outputs: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = generator(seed)
    X = torch.randn(n, features, generator=g)
    W = torch.randn(features, outputs, generator=g)
    return X, torch.tanh(X @ W) + 0.05 * torch.randn(n, outputs, generator=g)


def images(n: int = 384, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """12x12 images whose class is the quadrant holding a bright square."""
    g = generator(seed)
    y = torch.arange(n) % 4
    X = 0.1 * torch.randn(n, 1, 12, 12, generator=g)
    for i, label in enumerate(y.tolist()):
        row, col = divmod(label, 2)
        X[i, 0, row * 6 + 1 : row * 6 + 5, col * 6 + 1 : col * 6 + 5] += 1.0
    return X, y


def problems(findings: list[Finding]) -> list[str]:
    return [f.format() for f in findings if f.severity != "info"]


FIT_RUNS: dict[str, Callable[[], list[Finding]]] = {
    "linear regression, full batch SGD, long after convergence": lambda: (
        fit(nn.Linear(5, 1), regression(), loss="mse", lr=0.1, epochs=3000, progress=False).findings
    ),
    "MLP regression, Adam, minibatches": lambda: (
        fit(
            mlp(5, 1, hidden=(32, 32)),
            regression(),
            loss="mse",
            optimizer="adam",
            lr=3e-3,
            epochs=40,
            batch_size=32,
            progress=False,
        ).findings
    ),
    "MLP classifier, SGD momentum, dropout, stratified validation": lambda: (
        fit(
            mlp(8, 3, hidden=(64,), dropout=0.2),
            blobs(),
            loss="cross_entropy",
            lr=0.05,
            momentum=0.9,
            epochs=30,
            batch_size=16,
            val_split=0.2,
            stratify=True,
            metrics=["accuracy"],
            progress=False,
        ).findings
    ),
    "MLP classifier with batchnorm, Adam, validation": lambda: (
        fit(
            mlp(8, 4, hidden=(64, 64), batchnorm=True),
            blobs(classes=4, seed=1),
            loss="cross_entropy",
            optimizer="adam",
            lr=1e-3,
            epochs=20,
            batch_size=32,
            val_split=0.25,
            progress=False,
        ).findings
    ),
    "small CNN with batchnorm and dropout, Adam": lambda: (
        fit(
            cnn(144, 4, image_size=12, channels=(8, 16), hidden=32),
            images(),
            loss="cross_entropy",
            optimizer="adam",
            lr=2e-3,
            epochs=8,
            batch_size=32,
            val_split=0.25,
            progress=False,
        ).findings
    ),
    "binary logistic regression, BCE with logits, SGD": lambda: (
        fit(
            nn.Linear(8, 1),
            (blobs(classes=2)[0], blobs(classes=2)[1].float().unsqueeze(1)),
            loss="bce_with_logits",
            lr=0.1,
            epochs=200,
            progress=False,
        ).findings
    ),
    "multi-output regression, AdamW with weight decay 1e-4, cosine schedule": lambda: (
        fit(
            mlp(5, 3, hidden=(32,)),
            regression(outputs=3, seed=2),
            loss="huber",
            optimizer="adamw",
            lr=3e-3,
            weight_decay=1e-4,
            scheduler="cosine",
            epochs=30,
            batch_size=64,
            progress=False,
        ).findings
    ),
}


@pytest.mark.parametrize("name", list(FIT_RUNS))
def test_healthy_fit_runs_are_silent(name: str) -> None:
    torch.manual_seed(0)
    assert problems(FIT_RUNS[name]()) == []


def hand_written(
    model: nn.Module,
    data: tuple[torch.Tensor, torch.Tensor],
    loss_fn: nn.Module,
    make_optimizer: Callable[..., torch.optim.Optimizer],
    *,
    epochs: int,
    batch_size: int,
    validate: bool = True,
    accumulate: int = 1,
) -> list[Finding]:
    """The tutorials' loop: shuffled DataLoader, zero_grad/backward/step, eval() validation, train() again."""
    X, y = data
    n_val = len(X) // 5
    train = DataLoader(TensorDataset(X[n_val:], y[n_val:]), batch_size=batch_size, shuffle=True,
                       generator=generator(1))  # fmt: skip
    optimizer = make_optimizer(model.parameters())
    with watch(model, optimizer, loss_fn=loss_fn, mode="quiet") as doctor:
        for _ in range(epochs):
            model.train()
            for i, (xb, yb) in enumerate(train):
                loss = loss_fn(model(xb), yb) / accumulate
                loss.backward()
                if (i + 1) % accumulate == 0:
                    optimizer.step()
                    optimizer.zero_grad()
                doctor.record(loss * accumulate, target=yb)
            if validate:
                model.eval()
                with torch.no_grad():
                    doctor.record(val_loss=loss_fn(model(X[:n_val]), y[:n_val]))
    return doctor.findings


def test_healthy_hand_written_classifier_sgd() -> None:
    torch.manual_seed(0)
    findings = hand_written(mlp(8, 3, hidden=(32,)), blobs(), nn.CrossEntropyLoss(),
                            lambda p: torch.optim.SGD(p, lr=0.05), epochs=20, batch_size=16)  # fmt: skip
    assert problems(findings) == []


def test_healthy_hand_written_regression_adam_huber() -> None:
    torch.manual_seed(0)
    findings = hand_written(mlp(5, 1, hidden=(64, 64)), regression(seed=3), nn.HuberLoss(),
                            lambda p: torch.optim.Adam(p, lr=1e-3), epochs=20, batch_size=32)  # fmt: skip
    assert problems(findings) == []


def test_healthy_hand_written_cnn_with_dropout() -> None:
    torch.manual_seed(0)
    findings = hand_written(cnn(144, 4, image_size=12, channels=(8,), hidden=32, dropout=0.3), images(seed=4),
                            nn.CrossEntropyLoss(), lambda p: torch.optim.Adam(p, lr=2e-3), epochs=6,
                            batch_size=32)  # fmt: skip
    assert problems(findings) == []


def test_healthy_gradient_accumulation_is_not_a_missing_zero_grad() -> None:
    torch.manual_seed(0)
    findings = hand_written(mlp(8, 3, hidden=(32,)), blobs(seed=5), nn.CrossEntropyLoss(),
                            lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), epochs=10, batch_size=16,
                            accumulate=2)  # fmt: skip
    assert problems(findings) == []


def test_healthy_full_batch_regression_converges_and_stays_flat() -> None:
    torch.manual_seed(0)
    X, y = regression(n=200, seed=6)
    model = nn.Linear(5, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.MSELoss()
    with watch(model, optimizer, loss_fn=loss_fn, mode="quiet") as doctor:
        full_batch_steps(doctor, model, optimizer, loss_fn, X, y, 2000)
    assert problems(doctor.findings) == []
