"""Fault: a logistic regression for a rare disease (1% positives) is trained with plain BCEWithLogitsLoss and
SGD; the intercept absorbs the base rate and no patient is ever flagged, at 99% accuracy.
Source: https://learn-pytorch.oneoffcoder.com/class-imbalance.html - "a model can look accurate while failing on
the class you actually care about" on 950/50 synthetic data."""

import torch
from torch import nn

EXPECT = {"codes": ["class-imbalance"], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    n = 9000
    sick = (torch.rand(n) < 0.01).float()
    X = torch.randn(n, 6) + 1.5 * sick[:, None] * torch.tensor([1.0, 1.0, 0.5, 0.0, 0.0, 0.0])
    X_train, y_train, X_val, y_val = X[:5000], sick[:5000], X[5000:], sick[5000:]
    model = nn.Linear(6, 1)
    loss_fn = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(4):
        perm = torch.randperm(5000)
        for i in range(0, 5000, 100):
            idx = perm[i : i + 100]
            target = y_train[idx].unsqueeze(1)
            loss = loss_fn(model(X_train[idx]), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=target)
        with torch.no_grad():
            logits = model(X_val).squeeze(1)
            val_loss = loss_fn(logits, y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    pred = (logits > 0).float()
    recall = (pred[y_val == 1] == 1).float().mean().item() if y_val.sum() > 0 else 0.0
    return {
        "ok": recall < 0.1,
        "check": "recall of the sick patients",
        "recall": recall,
        "accuracy": (pred == y_val).float().mean().item(),
        "positives_in_val": y_val.sum().item(),
    }
