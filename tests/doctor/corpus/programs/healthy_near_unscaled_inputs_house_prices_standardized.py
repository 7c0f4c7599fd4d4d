"""Healthy near miss of unscaled-inputs: the same raw house features (square feet, bedrooms, year built, lot
size) are standardized with the training set's mean and std before the SGD linear regression, which then fits
well at an ordinary lr.
Source: https://community.deeplearning.ai/t/multiple-linear-regression-housing-prices-problem-cost-too-high/211759 -
housing regression that works once the features are z-score normalized."""

import torch
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


def make_houses(n):
    sqft = torch.empty(n).uniform_(700, 4000)
    bedrooms = torch.randint(1, 6, (n,)).float()
    year = torch.randint(1950, 2021, (n,)).float()
    lot = torch.empty(n).uniform_(2000, 20000)
    price = 0.12 * sqft + 15 * bedrooms + 2.0 * (year - 1950) + 0.004 * lot + 20 * torch.randn(n)  # in $1000
    return torch.stack([sqft, bedrooms, year, lot], 1), price.unsqueeze(1)


def train(tw=None):
    torch.manual_seed(0)
    X, y = make_houses(1200)
    X_train, y_train, X_val, y_val = X[:1000], y[:1000], X[1000:], y[1000:]
    mean, std = X_train.mean(0), X_train.std(0)
    X_train, X_val = (X_train - mean) / std, (X_val - mean) / std
    model = nn.Linear(4, 1)
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for epoch in range(20):
        perm = torch.randperm(1000)
        for i in range(0, 1000, 50):
            idx = perm[i : i + 50]
            loss = loss_fn(model(X_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y_train[idx])
        with torch.no_grad():
            val_loss = loss_fn(model(X_val), y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
        print(f"epoch {epoch}: val mse {val_loss:.1f}")
    if doctor:
        return doctor.findings
    r2 = 1 - val_loss / y_val.var().item()
    return {"ok": r2 > 0.9, "check": "validation R^2 above 0.9", "r2": r2, "val_mse": val_loss}
