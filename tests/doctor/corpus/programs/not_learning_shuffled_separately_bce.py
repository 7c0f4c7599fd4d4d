"""Fault: before splitting, the person shuffled the feature matrix and the label vector with two separate
np.random.shuffle calls, so the pairs are broken; the binary classifier's BCE loss stays at ln(2) and its
accuracy at the majority rate, epoch after epoch, while gradients and learning rate look normal.
Source: https://www.onenoughtone.com/problems/synchronized-data-permutation - "If we shuffle X and y
independently, we would break the fundamental relationship between features and labels, effectively corrupting
our dataset"."""

import math

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": ["not-learning"], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1500, 10)).astype(np.float32)
    y = ((X[:, 0] + X[:, 1] * X[:, 2] - X[:, 3]) > 0).astype(np.float32)
    np.random.seed(0)
    np.random.shuffle(X)
    np.random.shuffle(y)
    X_train, y_train = torch.from_numpy(X[:1200]), torch.from_numpy(y[:1200]).unsqueeze(1)
    X_val, y_val = torch.from_numpy(X[1200:]), torch.from_numpy(y[1200:]).unsqueeze(1)
    loader = DataLoader(TensorDataset(X_train, y_train), batch_size=16, shuffle=True)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
    criterion = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _epoch in range(7):
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        model.eval()
        with torch.no_grad():
            logits = model(X_val)
            val_loss = criterion(logits, y_val).item()
            accuracy = ((logits > 0).float() == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy < 0.6,
        "check": "validation accuracy near 0.5 (shuffled together: 0.91)",
        "accuracy": accuracy,
        "val_loss": val_loss,
        "chance_loss": math.log(2),
    }
