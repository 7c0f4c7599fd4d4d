"""Fault: a semi-supervised table marks unlabelled rows with -1 (scikit-learn's convention) and the hand-written
negative log-likelihood indexes log-probabilities with the labels; -1 silently picks the last class, so most
rows are trained towards class 4 and the classifier predicts it everywhere.
Source: https://github.com/EricFillion/happy-transformer/issues/248 - "IndexError: Target -1 is out of bounds"
(the lowest valid label is 0); with hand-written indexing the same -1 raises nothing."""

import torch
from torch import nn

EXPECT = {"codes": ["label-out-of-range"], "also_ok": []}


def nll(logits, y):
    log_probs = torch.log_softmax(logits, dim=1)
    return -log_probs[torch.arange(len(y)), y].mean()


def train(tw=None):
    torch.manual_seed(0)
    centers = 3 * torch.randn(5, 16)
    y_true = torch.randint(0, 5, (3000,))
    X = centers[y_true] + torch.randn(3000, 16)
    y = y_true.clone()
    y[torch.rand(3000) < 0.6] = -1  # only 40% of the rows were annotated
    X_train, y_train = X[:2400], y[:2400]
    X_val, y_val = X[2400:], y_true[2400:]
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 5))
    loss_fn = nll
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(5):
        perm = torch.randperm(len(X_train))
        for i in range(0, len(X_train), 64):
            idx = perm[i : i + 64]
            loss = loss_fn(model(X_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y_train[idx])
        with torch.no_grad():
            out = model(X_val)
            val_loss = loss_fn(out, y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    pred = out.argmax(1)
    accuracy = (pred == y_val).float().mean().item()
    return {
        "ok": accuracy < 0.5,
        "check": "validation accuracy (5 separable classes; skipping -1 rows gives > 0.95)",
        "accuracy": accuracy,
        "share_predicted_class_4": (pred == 4).float().mean().item(),
    }
