"""Fault: the regression target is a 1-D column (shape [N]) while the model outputs [N, 1]; MSELoss broadcasts
them to [N, N] (only a UserWarning), every prediction is pulled towards every target, and the model learns the
mean price.
Source: http://hk.javashuo.com/article/p-mrjxlmph-gd.html - "y_hat has shape [n, 1] and y has shape [n]: their
difference has shape [n, n] ... so the model cannot be trained"."""

import warnings

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": ["loss-broadcast"], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    warnings.filterwarnings("ignore", message="Using a target size")
    X = torch.randn(1500, 8)
    price = X[:, 0] * 2 - X[:, 1] + 0.5 * X[:, 2] * X[:, 3] + torch.sin(X[:, 4]) + 0.3 * torch.randn(1500)
    train_ds = TensorDataset(X[:1200], price[:1200])
    X_val, y_val = X[1200:], price[1200:]
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
    r2 = 1 - ((pred.squeeze(1) - y_val) ** 2).mean().item() / y_val.var().item()
    return {
        "ok": r2 < 0.2,
        "check": "validation R^2 (the same model with matching shapes gets > 0.9)",
        "r2": r2,
        "val_loss": val_loss,
    }
