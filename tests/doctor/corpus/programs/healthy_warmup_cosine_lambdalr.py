"""Healthy: an MLP classifier trained with SGD + momentum under a per-step LambdaLR schedule, linear warmup over
the first 10% of the steps, then cosine decay to zero; the lr starts tiny and ends tiny on purpose.
Source: https://mlcodepatterns.github.io/icse_sp8/4/26122/details.html - a "linear scaling rule, gradual
warmup, and LR decay" schedule: the lr is raised linearly for lr_warmup_steps, then decayed."""

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    n, classes = 2400, 6
    centers = 1.5 * torch.randn(classes, 16)
    y = torch.randint(0, classes, (n,))
    X = centers[y] + torch.randn(n, 16)
    train_ds = TensorDataset(X[:2000], y[:2000])
    X_val, y_val = X[2000:], y[2000:]
    loader = DataLoader(train_ds, batch_size=64, shuffle=True)

    model = nn.Sequential(nn.Linear(16, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    epochs = 10
    total = epochs * len(loader)
    warmup = total // 10

    def lr_lambda(step):
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    loss_fn = F.cross_entropy
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _ in range(epochs):
        model.train()
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
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
    return {
        "ok": accuracy > 0.9,
        "check": "validation accuracy above 0.9",
        "accuracy": accuracy,
        "val_loss": val_loss,
        "final_lr": scheduler.get_last_lr()[0],
    }
