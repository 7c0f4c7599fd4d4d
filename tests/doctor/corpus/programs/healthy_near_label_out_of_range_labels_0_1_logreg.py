"""Healthy near miss: a UCI-style binary table codes its classes as 1 and 2, and the script maps them to 0/1
(y - 1) before BCEWithLogitsLoss, as the loss requires.
Source: https://github.com/pytorch/pytorch/issues/15666 - "the labels were 1..10 as opposed to 0..9 ... it
seems to enforce that the labels start at 0" (here the labels are shifted to 0/1 first)."""

import torch
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    X = torch.randn(1200, 8)
    w = torch.randn(8)
    y = torch.where(X @ w + 0.3 * torch.randn(1200) > 0, 2.0, 1.0)  # class column as stored in the file
    X_train, y_train, X_val, y_val = X[:1000], y[:1000], X[1000:], y[1000:]
    model = nn.Linear(8, 1)
    loss_fn = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(10):
        perm = torch.randperm(1000)
        for i in range(0, 1000, 50):
            idx = perm[i : i + 50]
            target = y_train[idx].unsqueeze(1) - 1
            loss = loss_fn(model(X_train[idx]), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=target)
        with torch.no_grad():
            logits = model(X_val)
            val_loss = loss_fn(logits, y_val.unsqueeze(1) - 1).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    pred = torch.where(logits.squeeze(1) > 0, 2.0, 1.0)
    accuracy = (pred == y_val).float().mean().item()
    return {
        "ok": accuracy > 0.9,
        "check": "validation accuracy above 0.9",
        "accuracy": accuracy,
        "share_predicted_2": (pred == 2).float().mean().item(),
        "val_loss": val_loss,
    }
