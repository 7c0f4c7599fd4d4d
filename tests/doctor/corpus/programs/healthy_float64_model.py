"""Healthy: a model trained in double precision end to end (numpy float64 data, torch.from_numpy keeps float64,
model.double()), as scientific users do to avoid "expected scalar type Double but found Float".
Source: https://www.codegenes.net/blog/convert-to-double-pytorch - "Converting to double in PyTorch": when you
need double precision for an entire model, convert all the model's parameters with model.double()."""

import numpy as np
import torch
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(1000, 2))
    y = np.exp(-(x**2).sum(1, keepdims=True)) + 0.3 * x[:, :1] + 0.02 * rng.standard_normal((1000, 1))
    X, Y = torch.from_numpy(x), torch.from_numpy(y)  # float64 tensors
    X_train, Y_train, X_val, Y_val = X[:800], Y[:800], X[800:], Y[800:]

    model = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1)).double()
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _ in range(20):
        perm = torch.randperm(800)
        for i in range(0, 800, 40):
            idx = perm[i : i + 40]
            optimizer.zero_grad()
            loss = loss_fn(model(X_train[idx]), Y_train[idx])
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=Y_train[idx])
        with torch.no_grad():
            val_loss = loss_fn(model(X_val), Y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    r2 = 1 - val_loss / Y_val.var().item()
    return {
        "ok": r2 > 0.97 and next(model.parameters()).dtype == torch.float64,
        "check": "validation R^2 above 0.97, parameters float64",
        "r2": r2,
        "val_loss": val_loss,
    }
