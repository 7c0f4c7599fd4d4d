"""Healthy: a small MLP regressor trained with RMSprop(lr=1e-3, alpha=0.99), the PyTorch defaults apart from lr.
Source: https://www.codecademy.com/resources/docs/pytorch/optimizers/rmsprop - "RMSProp": a simple feed-forward
network (Linear, ReLU, Linear), MSELoss, optim.RMSprop(model.parameters(), lr=0.01, alpha=0.99, ...)."""

import torch
import torch.nn as nn
import torch.optim as optim

EXPECT = {"codes": [], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    x = torch.randn(1000, 10)
    w = torch.randn(10, 1) / 3
    target = torch.relu(x @ w) - 0.5 * torch.relu(-x @ w) + 0.1 * torch.randn(1000, 1)
    x_train, t_train, x_val, t_val = x[:800], target[:800], x[800:], target[800:]

    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
    criterion = nn.MSELoss()
    optimizer = optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.99)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _ in range(20):
        model.train()
        perm = torch.randperm(800)
        for i in range(0, 800, 32):
            idx = perm[i : i + 32]
            output = model(x_train[idx])
            loss = criterion(output, t_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=t_train[idx])
        model.eval()
        with torch.no_grad():
            val_loss = criterion(model(x_val), t_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    r2 = 1 - val_loss / t_val.var().item()
    return {"ok": r2 > 0.9, "check": "validation R^2 above 0.9", "r2": r2, "val_loss": val_loss}
