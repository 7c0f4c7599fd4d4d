"""Fault: a tabular regression read from CSV text with np.genfromtxt; a few rows have an empty field, which
genfromtxt turns into NaN, nobody imputes them, and every batch holding such a row gives a NaN loss that
poisons the weights.
Source: https://pythonhint.com/post/1021424426335883/deep-learning-nan-loss-reasons - "Deep-Learning Nan loss
reasons": the input data could be problematic, such as missing values, causing NaN values in the output."""

import io

import numpy as np
import torch
from torch import nn

EXPECT = {"codes": ["nonfinite-data"], "also_ok": ["nonfinite-loss"]}


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
    X, y = torch.from_numpy(data[:, :-1]), torch.from_numpy(data[:, -1:])
    X = (X - torch.from_numpy(np.nanmean(data[:, :-1], 0))) / torch.from_numpy(np.nanstd(data[:, :-1], 0))
    y = (y - y.mean()) / y.std()
    X_train, y_train, X_val, y_val = X[:1200], y[:1200], X[1200:], y[1200:]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X_train, y_train), batch_size=32, shuffle=True)
    model = nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Linear(32, 1))
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    losses = []
    for _epoch in range(4):
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if doctor:
                doctor.record(loss, target=yb)
        with torch.no_grad():
            val_loss = loss_fn(model(X_val), y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    bad = [i for i, v in enumerate(losses) if v != v]
    return {
        "ok": bool(bad) and val_loss != val_loss,
        "check": "NaN loss, model weights NaN afterwards",
        "nan_rows": int(torch.isnan(X).any(1).sum()),
        "first_nan_step": bad[0] if bad else None,
        "val_loss": val_loss,
    }
