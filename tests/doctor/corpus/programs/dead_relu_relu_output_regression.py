"""Fault: a multi-output regression net copied from a project with positive targets ends with nn.ReLU() after the
output layer; the targets here are mostly negative (log10 concentrations around -2), the MSE pushes the outputs
below zero, the output ReLUs die for every sample, the predictions are stuck at 0 and the gradient stops.
Source: https://math.techqa.club/are-relu-a-very-bad-choice-as-last-layer-for-regression-4483706 - "Are ReLU a very
bad choice as last layer for regression?": an output ReLU whose pre-activation is always below 0 gets zero gradient
and the network never learns anything."""

import torch
from torch import nn

EXPECT = {"codes": ["dead-relu"], "also_ok": ["not-learning"]}


def train(tw=None):
    torch.manual_seed(0)
    X = torch.randn(1500, 10)
    W = 0.4 * torch.randn(10, 4)
    Y = X @ W - 2.0 + 0.1 * torch.randn(1500, 4)  # log10 concentrations of 4 compounds: mostly negative
    X_train, Y_train, X_val, Y_val = X[:1200], Y[:1200], X[1200:], Y[1200:]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X_train, Y_train), batch_size=32, shuffle=True)
    model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 4), nn.ReLU())
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(5):
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        with torch.no_grad():
            pred = model(X_val)
            val_loss = loss_fn(pred, Y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    r2 = 1 - val_loss / ((Y_val - Y_val.mean(0)) ** 2).mean().item()
    return {
        "ok": r2 < 0 and (pred == 0).float().mean().item() > 0.9,
        "check": "outputs stuck at 0, R^2 below 0",
        "zero_outputs": (pred == 0).float().mean().item(),
        "r2": r2,
        "val_loss": val_loss,
    }
