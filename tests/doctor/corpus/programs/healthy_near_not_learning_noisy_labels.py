"""Healthy near miss of not-learning: a hard but learnable task. 35% of the training labels were flipped by
the annotators, so the best possible cross-entropy is close to ln(2) and the training loss hardly moves, yet the
classifier does learn the true boundary (high accuracy on clean labels).
Source: https://datascience.stackexchange.com/questions/28481/reason-for-having-both-low-loss-and-same-predicted-class
- a binary classifier whose loss settles near 0.6; the loss level alone does not say whether it learned."""

import math

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    X = torch.randn(1500, 5)
    clean = (X[:, 0] + 0.8 * X[:, 1] - 0.5 * X[:, 2] > 0).float()
    flip = (torch.rand(1500) < 0.35).float()
    noisy = (clean + flip) % 2
    X_train, y_train = X[:1200], noisy[:1200].unsqueeze(1)
    X_val, y_val_clean = X[1200:], clean[1200:]
    loader = DataLoader(TensorDataset(X_train, y_train), batch_size=16, shuffle=True)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 1))
    criterion = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _epoch in range(7):
        model.train()
        total = 0.0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item()
            if doctor:
                doctor.record(loss, target=yb)
        train_loss = total / len(loader)
        model.eval()
        with torch.no_grad():
            logits = model(X_val)
            val_loss = criterion(logits, noisy[1200:].unsqueeze(1)).item()
            clean_accuracy = ((logits.squeeze(1) > 0).float() == y_val_clean).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": clean_accuracy > 0.9,
        "check": "accuracy on the clean validation labels above 0.9 (while the noisy training loss stays near ln 2)",
        "clean_accuracy": clean_accuracy,
        "train_loss": train_loss,
        "chance_loss": math.log(2),
    }
