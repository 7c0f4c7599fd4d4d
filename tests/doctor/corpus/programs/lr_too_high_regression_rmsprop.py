"""Fault: a multi-output MLP regression trained with RMSprop at lr=0.1 (the value the person used with SGD):
RMSprop divides every step by the gradient's running RMS, so each weight moves by about 0.1 per step however
close it is to the minimum; the loss jumps around far above what the network reaches at lr=1e-3.
Source: https://github.com/keras-team/keras/pull/6182 - "Rmsprop with default learning rate cannot converge
in this example ... the loss will decrease at the beginning but start increasing after few epochs due to too
large learning rate"."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": ["lr-too-high"], "also_ok": ["nonfinite-loss", "dead-relu"]}


def make_data(n):
    X = torch.rand(n, 6) * 2 - 1
    Y = torch.stack([torch.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2], X[:, 3] ** 2 - X[:, 4], 0.5 * X[:, 5] + X[:, 0]], 1)
    return X, Y + 0.05 * torch.randn_like(Y)


def train(tw=None):
    torch.manual_seed(0)
    X, Y = make_data(1200)
    X_val, Y_val = make_data(300)
    loader = DataLoader(TensorDataset(X, Y), batch_size=32, shuffle=True)
    model = nn.Sequential(nn.Linear(6, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=0.1)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(8):
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(X_val), Y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    r2 = 1 - val_loss / Y_val.var(0).mean().item()
    return {
        "ok": r2 < 0.5,
        "check": "validation R^2 below 0.5 (lr=1e-3 reaches above 0.9)",
        "r2": r2,
        "val_loss": val_loss,
    }
