"""Small seeded data sets, the tutorials' custom module and full-batch step, shared by the doctor's tests."""

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

import trainwise
from trainwise.doctor import Doctor, Finding

# fit on the CPU on any machine: these tests judge the doctor's verdicts on CPU-made data and numbers, and
# device "auto" would move the model to a GPU where there is one
cpu_fit = functools.partial(trainwise.fit, device="cpu")


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def blobs(n: int = 512, classes: int = 4, features: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian clusters, one per class, in shuffled order."""
    g = generator(seed)
    centers = 1.5 * torch.randn(classes, features, generator=g)
    y = (torch.arange(n) % classes)[torch.randperm(n, generator=g)]
    return centers[y] + torch.randn(n, features, generator=g), y


def regression(n: int = 512, features: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = generator(seed)
    X = torch.randn(n, features, generator=g)
    return X, torch.tanh(X @ torch.randn(features, 1, generator=g)) + 0.05 * torch.randn(n, 1, generator=g)


def full_batch_steps(
    doctor: Doctor,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    X: torch.Tensor,
    y: torch.Tensor,
    steps: int,
) -> None:
    """The tutorials' loop on the whole data: forward, loss, zero_grad, backward, step, record."""
    for _ in range(steps):
        loss = loss_fn(model(X), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        doctor.record(loss, target=y)


class Net(nn.Module):
    """The tutorials' custom module: layers in __init__, F.relu in forward."""

    def __init__(self, features: int = 16, hidden: int = 32, outputs: int = 4) -> None:
        super().__init__()
        self.fc1 = nn.Linear(features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc = nn.Linear(hidden, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.fc2(F.relu(self.fc1(x)))))


def found(findings: list[Finding], code: str) -> Finding:
    """The one finding with this code (the test fails, listing them all, when there is not exactly one)."""
    matches = [f for f in findings if f.code == code]
    assert len(matches) == 1, f"expected one {code}, got {[f.format() for f in findings]}"
    return matches[0]
