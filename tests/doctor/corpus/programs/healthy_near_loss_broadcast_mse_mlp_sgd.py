"""Healthy near miss: the regression targets are kept as a [N, 1] column, the shape of the model's output, so
MSELoss compares each prediction with its own target.
Source: http://hk.javashuo.com/article/p-mrjxlmph-gd.html - "y_hat has shape [n, 1] and y has shape [n]: their
difference has shape [n, n] ... so the model cannot be trained"."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    X = torch.randn(1500, 8)
    price = X[:, 0] * 2 - X[:, 1] + 0.5 * X[:, 2] * X[:, 3] + torch.sin(X[:, 4]) + 0.3 * torch.randn(1500)
    train_ds = TensorDataset(X[:1200], price[:1200].unsqueeze(1))
    X_val, y_val = X[1200:], price[1200:].unsqueeze(1)
    loader = DataLoader(train_ds, batch_size=32, shuffle=True)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(6):
        model.train()
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        model.eval()
        with torch.no_grad():
            pred = model(X_val)
            val_loss = loss_fn(pred, y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    r2 = 1 - ((pred - y_val) ** 2).mean().item() / y_val.var().item()
    return {"ok": r2 > 0.9, "check": "validation R^2 above 0.9", "r2": r2, "val_loss": val_loss}
