"""Healthy near miss of over_regularized_l2_by_hand_regression: the same L2 penalty added to the loss by hand,
with lam = 1e-4, small against an MSE of order 1: it keeps the weights in check and the regression fits well.
Source: https://discuss.d2l.ai/t/weight-decay/98 - the d2l weight-decay chapter, loss + lambda * l2_penalty(w):
"Experiment with the value of lambda ... plot training and test accuracy as a function of lambda"."""

import torch
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


def make_data(n):
    X = torch.randn(n, 8)
    W = torch.tensor(
        [[1.5, -2.0], [0.8, 1.0], [-1.2, 0.5], [2.0, 0.0], [0.0, -1.5], [0.5, 0.5], [0.0, 0.0], [1.0, -1.0]]
    )
    Y = X @ W + 0.5 * torch.tanh(X[:, :2]) + 0.1 * torch.randn(n, 2)
    return X, Y


def train(tw=None):
    torch.manual_seed(0)
    X, Y = make_data(1200)
    X_val, Y_val = make_data(300)
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 2))
    mse = nn.MSELoss()
    lam = 1e-4
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    doctor = tw.watch(model, optimizer, loss_fn=mse) if tw else None
    for _epoch in range(12):
        perm = torch.randperm(len(X))
        for i in range(0, len(X), 32):
            idx = perm[i : i + 32]
            l2_penalty = sum(p.pow(2).sum() for p in model.parameters())
            loss = mse(model(X[idx]), Y[idx]) + lam * l2_penalty
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=Y[idx])
        with torch.no_grad():
            val_mse = mse(model(X_val), Y_val).item()
        if doctor:
            doctor.record(val_loss=val_mse)
    if doctor:
        return doctor.findings
    r2 = 1 - val_mse / Y_val.var(0).mean().item()
    return {"ok": r2 > 0.95, "check": "validation R^2 above 0.95", "r2": r2, "val_mse": val_mse}
