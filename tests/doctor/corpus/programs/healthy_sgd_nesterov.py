"""Healthy: a two-hidden-layer MLP classifier trained with SGD(momentum=0.9, nesterov=True) on minibatches.
Source: https://torch.mlverse.org/docs/reference/optim_sgd.html - optim_sgd: "Implements stochastic gradient
descent (optionally with momentum). Nesterov momentum is based on the formula from On the importance of
initialization and momentum in deep learning"."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    n = 2000
    X = torch.randn(n, 2) * 1.5
    r = X.norm(dim=1)
    y = (r > 1.4).long() + (r > 2.4).long()  # three rings
    X = torch.cat([X, torch.randn(n, 4)], dim=1)  # plus noise features
    loader = DataLoader(TensorDataset(X[:1600], y[:1600]), batch_size=32, shuffle=True)
    X_val, y_val = X[1600:], y[1600:]

    model = nn.Sequential(nn.Linear(6, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, nesterov=True)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _ in range(12):
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        model.eval()
        with torch.no_grad():
            out = model(X_val)
            val_loss = loss_fn(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {"ok": accuracy > 0.9, "check": "validation accuracy above 0.9", "accuracy": accuracy, "val_loss": val_loss}
