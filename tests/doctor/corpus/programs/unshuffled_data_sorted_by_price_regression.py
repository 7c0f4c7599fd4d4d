"""Fault: the listings table was sorted by price (for a plot) before training, and the loop slices it in that
order every epoch; SGD with momentum follows the latest, most expensive batches, so each epoch ends with the
model predicting high prices for everything and the validation R^2 is poor (shuffled: ~0.9).
Source: https://errorhandle.ai/stochastic-gradient-descent-for-regression-with-shuffle-data-performs-better-than-unshuffled-why
- "unshuffled data (e.g. sorted by target variable) biases the gradient updates in one direction"."""

import torch
from torch import nn

EXPECT = {"codes": ["unshuffled-data"], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    n = 1500
    X = torch.randn(n, 6)  # standardized features: area, rooms, age, distance, ...
    w = torch.tensor([1.5, 0.8, -0.6, -1.0, 0.4, 0.3])
    price = X @ w + 0.3 * torch.randn(n)
    X_val, y_val = X[1200:], price[1200:].unsqueeze(1)
    X_train, y_train = X[:1200], price[:1200]
    order = torch.argsort(y_train)  # df.sort_values("price")
    X_train, y_train = X_train[order], y_train[order].unsqueeze(1)
    model = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 1))
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for epoch in range(10):
        for i in range(0, 1200, 20):
            xb, yb = X_train[i : i + 20], y_train[i : i + 20]
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
        print(f"epoch {epoch}: val mse {val_loss:.3f}")
    if doctor:
        return doctor.findings
    r2 = 1 - val_loss / y_val.var().item()
    return {"ok": r2 < 0.5, "check": "validation R^2 poor (shuffled batches reach ~0.9)", "r2": r2, "val_mse": val_loss}
