"""Healthy near miss of nonfinite_data_csv_missing_value: the same CSV with empty fields read by np.genfromtxt, but
the missing values (NaN) are imputed with their column's mean before standardizing, so every batch is finite and
the regression trains normally.
Source: https://stats.stackexchange.com/questions/35304/how-to-standardize-an-array-if-standard-deviation-is-zero/108922
- preparing columns for regression: handle the problematic values before standardizing."""

import io

import numpy as np
import torch
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


def make_csv(rows=1500, seed=0):
    rng = np.random.default_rng(seed)
    lines = ["area,rooms,age,lot_frontage,distance,price"]
    for _ in range(rows):
        area, rooms, age = rng.normal(120, 30), rng.integers(1, 7), rng.uniform(0, 80)
        frontage, distance = rng.normal(20, 5), rng.uniform(1, 30)
        price = 2.0 * area + 15 * rooms - 0.8 * age + 3 * frontage - 2.5 * distance + rng.normal(0, 10)
        field = "" if rng.random() < 0.02 else f"{frontage:.1f}"  # 2% of the lots have no frontage recorded
        lines.append(f"{area:.1f},{rooms},{age:.1f},{field},{distance:.2f},{price:.1f}")
    return "\n".join(lines)


def train(tw=None):
    torch.manual_seed(0)
    data = np.genfromtxt(io.StringIO(make_csv()), delimiter=",", skip_header=1, dtype=np.float32)
    features = data[:, :-1]
    features = np.where(np.isnan(features), np.nanmean(features, 0), features)  # impute with the column mean
    X, y = torch.from_numpy(features), torch.from_numpy(data[:, -1:])
    X = (X - X.mean(0)) / X.std(0)
    y = (y - y.mean()) / y.std()
    X_train, y_train, X_val, y_val = X[:1200], y[:1200], X[1200:], y[1200:]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X_train, y_train), batch_size=32, shuffle=True)
    model = nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Linear(32, 1))
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(4):
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        with torch.no_grad():
            val_loss = loss_fn(model(X_val), y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    r2 = 1 - val_loss / y_val.var().item()
    return {"ok": r2 > 0.9, "check": "validation R^2 above 0.9", "r2": r2, "val_loss": val_loss}
