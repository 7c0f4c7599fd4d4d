"""Fault: a regression net is built from an encoder and a head, and the loop clears gradients with
encoder.zero_grad() (left over from a stage that trained the encoder alone) instead of optimizer.zero_grad():
the head's gradients are never cleared, pile up step after step, and its SGD updates grow until the loss blows up.
Source: https://github.com/corenel/pytorch-adda/issues/19 - two models and their optimizers, and the question
which zero_grad() calls are needed: every parameter the step updates must have its gradient zeroed each step."""

import torch
from torch import nn

EXPECT = {"codes": ["missing-zero-grad"], "also_ok": ["lr-too-high", "nonfinite-loss", "dead-relu"]}


def make_data(n):
    X = torch.randn(n, 10)
    y = X[:, :3].sum(1, keepdim=True) - 0.5 * X[:, 3:4] * X[:, 4:5] + 0.1 * torch.randn(n, 1)
    return X, y


def train(tw=None):
    torch.manual_seed(0)
    X, y = make_data(1000)
    X_val, y_val = make_data(250)
    encoder = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
    head = nn.Linear(32, 1)
    model = nn.Sequential(encoder, head)
    criterion = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _epoch in range(10):
        perm = torch.randperm(len(X))
        for i in range(0, len(X), 32):
            idx = perm[i : i + 32]
            encoder.zero_grad()
            loss = criterion(model(X[idx]), y[idx])
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y[idx])
        with torch.no_grad():
            val_loss = criterion(model(X_val), y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    r2 = 1 - val_loss / y_val.var().item()
    return {
        "ok": not r2 > 0.5,
        "check": "validation R^2 below 0.5 (optimizer.zero_grad() gives 0.99)",
        "r2": r2,
        "val_loss": val_loss,
    }
