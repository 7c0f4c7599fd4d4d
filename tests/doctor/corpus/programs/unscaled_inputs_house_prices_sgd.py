"""Fault: raw house features (square feet in the thousands, lot size in the tens of thousands, year built near
2000) go straight into a linear regression trained with SGD; the lr that keeps the big columns from diverging
barely moves the bias and the small columns, so the fit stays poor where standardized features reach R^2 ~0.9.
Source: https://thepalindrome.org/p/linear-regression-and-the-exploding-gradients - California housing with raw
features: NaN at lr 1e-6, stuck at the start at lr 1e-7."""

import torch
from torch import nn

EXPECT = {"codes": ["unscaled-inputs"], "also_ok": []}


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
    model = nn.Linear(4, 1)
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=5e-9)  # 1e-8 gave nan
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
    return {
        "ok": r2 < 0.5,
        "check": "validation R^2 poor (standardized features with SGD reach ~0.9)",
        "r2": r2,
        "val_mse": val_loss,
    }
