"""Small seeded data sets and the tutorials' full-batch step, shared by the doctor's tests."""

from collections.abc import Callable

import torch
from torch import nn

from trainwise.doctor import Doctor


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
