"""Healthy: multi-output regression, one network predicting three targets of very different units, each target
standardised with the training mean and std before MSELoss, so no single output dominates the loss.
Source: https://discuss.pytorch.org/t/two-dimensional-mse-loss-in-mlp-training/180059 - an MLP with a
two-dimensional target of very different magnitudes (~0.4 and ~-22): "one variable is predicted pretty good,
the other completely wrong"; scaling the targets is the usual fix, done here."""

import torch
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    X = torch.randn(1500, 6)
    temperature = 20 + 5 * X[:, 0] - 3 * X[:, 1] * X[:, 2] + 0.5 * torch.randn(1500)
    humidity = 0.6 + 0.1 * torch.tanh(X[:, 3] + X[:, 0]) + 0.01 * torch.randn(1500)
    wind = 300 + 80 * X[:, 4] + 40 * X[:, 5] ** 2 + 10 * torch.randn(1500)
    Y = torch.stack([temperature, humidity, wind], dim=1)
    Y_mean, Y_std = Y[:1200].mean(0), Y[:1200].std(0)
    Y = (Y - Y_mean) / Y_std
    X_train, Y_train, X_val, Y_val = X[:1200], Y[:1200], X[1200:], Y[1200:]

    model = nn.Sequential(nn.Linear(6, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    criterion = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _ in range(15):
        model.train()
        perm = torch.randperm(1200)
        for i in range(0, 1200, 40):
            idx = perm[i : i + 40]
            loss = criterion(model(X_train[idx]), Y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=Y_train[idx])
        model.eval()
        with torch.no_grad():
            pred = model(X_val)
            val_loss = criterion(pred, Y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    r2 = (1 - ((pred - Y_val) ** 2).mean(0) / Y_val.var(0)).tolist()
    return {
        "ok": min(r2) > 0.9,
        "check": "validation R^2 above 0.9 for each of the 3 targets",
        "r2_temperature": r2[0],
        "r2_humidity": r2[1],
        "r2_wind": r2[2],
    }
