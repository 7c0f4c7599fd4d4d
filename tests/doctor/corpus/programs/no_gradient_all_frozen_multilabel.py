"""Fault: meaning to freeze only the first layer, the person froze every parameter
(for p in model.parameters(): p.requires_grad = False), and when backward() failed with "does not require grad"
they added loss.requires_grad_(): the multi-label tagger now runs its optimizer over weights that never get a
gradient and stays at its random initialization.
Source: https://github.com/speechbrain/speechbrain/issues/735 - "element 0 of tensors does not require grad",
worked around with loss = Variable(loss, requires_grad=True) instead of finding where the graph was cut."""

import torch
from torch import nn

EXPECT = {"codes": ["no-gradient"], "also_ok": ["not-learning"]}


def make_data(n):
    X = torch.randn(n, 12)
    W = torch.linspace(-1, 1, 12 * 4).reshape(12, 4)
    Y = ((X @ W) + 0.2 * torch.randn(n, 4) > 0).float()  # 4 tags, several can be on at once
    return X, Y


def train(tw=None):
    torch.manual_seed(0)
    X, Y = make_data(1000)
    X_val, Y_val = make_data(250)
    model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 4))
    for p in model.parameters():
        p.requires_grad = False
    initial = [p.detach().clone() for p in model.parameters()]
    criterion = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _epoch in range(6):
        perm = torch.randperm(len(X))
        for i in range(0, len(X), 50):
            idx = perm[i : i + 50]
            loss = criterion(model(X[idx]), Y[idx])
            loss.requires_grad_()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=Y[idx])
        with torch.no_grad():
            logits = model(X_val)
            val_loss = criterion(logits, Y_val).item()
            accuracy = ((logits > 0).float() == Y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    unchanged = all(torch.equal(p, q) for p, q in zip(initial, model.parameters(), strict=True))
    return {
        "ok": unchanged and accuracy < 0.75,
        "check": "weights unchanged and per-tag accuracy far below the 0.95 the trainable model reaches",
        "unchanged": unchanged,
        "tag_accuracy": accuracy,
        "val_loss": val_loss,
    }
