"""Healthy: a regression MLP with SGD + momentum and ReduceLROnPlateau(patience=2, factor=0.5) stepped on the
validation loss after each epoch; the lr is cut a few times as the loss levels off.
Source: https://dav.files.josie.cloud/recovery/part%205/recup_dir.228/f2613327488.txt - the ReduceLROnPlateau
docstring: "scheduler = ReduceLROnPlateau(optimizer, 'min') ... # Note that step should be called after
validate() scheduler.step(val_loss)"."""

import torch
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau

EXPECT = {"codes": [], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    X = torch.randn(1200, 8)
    y = (X[:, :4].sum(1, keepdim=True) + torch.relu(X[:, 4:5]) * X[:, 5:6]) + 0.1 * torch.randn(1200, 1)
    X_tr, y_tr, X_va, y_va = X[:1000], y[:1000], X[1000:], y[1000:]

    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))
    criterion = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    scheduler = ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=2)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _ in range(25):
        model.train()
        idx = torch.randperm(1000)
        for b in range(0, 1000, 50):
            sel = idx[b : b + 50]
            optimizer.zero_grad()
            loss = criterion(model(X_tr[sel]), y_tr[sel])
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y_tr[sel])
        model.eval()
        with torch.no_grad():
            val_loss = criterion(model(X_va), y_va).item()
        scheduler.step(val_loss)
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    r2 = 1 - val_loss / y_va.var().item()
    return {
        "ok": r2 > 0.95,
        "check": "validation R^2 above 0.95",
        "r2": r2,
        "final_lr": optimizer.param_groups[0]["lr"],
    }
