"""Fault: a 4-class problem is trained with one output and BCEWithLogitsLoss on the class ids 0..3 as floats
(copied from a binary tutorial); ids 2 and 3 are not probabilities, every class but 0 pushes the single logit
up, and the classes cannot be told apart.
Source: http://coloradmin.cn/o/993191.html - CrossEntropyLoss is for multi-class tasks with class-index
targets, BCEWithLogitsLoss for binary and multi-label targets in [0, 1]."""

import torch
from torch import nn

EXPECT = {"codes": ["wrong-loss"], "also_ok": ["label-out-of-range"]}


def train(tw=None):
    torch.manual_seed(0)
    centers = 2.5 * torch.randn(4, 6)
    y = torch.randint(0, 4, (2000,))
    X = centers[y] + torch.randn(2000, 6)
    X_train, y_train, X_val, y_val = X[:1600], y[:1600], X[1600:], y[1600:]
    model = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 1))
    loss_fn = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(5):
        perm = torch.randperm(1600)
        for i in range(0, 1600, 64):
            idx = perm[i : i + 64]
            target = y_train[idx].float().unsqueeze(1)
            loss = loss_fn(model(X_train[idx]), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=target)
        with torch.no_grad():
            out = model(X_val)
            val_loss = loss_fn(out, y_val.float().unsqueeze(1)).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    pred = (torch.sigmoid(out.squeeze(1)) * 3).round().long()  # the person's decoding of the single output
    accuracy = (pred == y_val).float().mean().item()
    return {
        "ok": accuracy < 0.5,
        "check": "validation accuracy (4 separable classes; 4 outputs + CrossEntropyLoss: 0.98)",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
