"""Fault: a house-price regressor with one output used CrossEntropyLoss, and to silence "expected scalar type
Long" the prices in millions (0.05..0.95) were cast with .long(); every target becomes class 0, cross-entropy over a
single output is always 0, and the model never trains.
Source: https://openillumi.com/?p=73112 - nn.CrossEntropyLoss expects logits over classes and class-index
targets, not the values a model should regress to."""

import torch
from torch import nn

EXPECT = {"codes": ["wrong-loss"], "also_ok": ["no-gradient", "not-learning"]}


def train(tw=None):
    torch.manual_seed(0)
    X = torch.randn(1200, 6)
    price = 450_000 + 60_000 * (X @ torch.tensor([1.0, -0.8, 0.5, 0.3, 0.0, 0.6])) + 20_000 * torch.randn(1200)
    price = price.clamp(50_000, 950_000) / 1e6  # in millions
    X_train, y_train, X_val, y_val = X[:1000], price[:1000], X[1000:], price[1000:]
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 1))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    start = [p.detach().clone() for p in model.parameters()]
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(5):
        perm = torch.randperm(1000)
        for i in range(0, 1000, 50):
            idx = perm[i : i + 50]
            target = y_train[idx].long()
            loss = loss_fn(model(X_train[idx]), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=target)
        with torch.no_grad():
            val_loss = loss_fn(model(X_val), y_val.long()).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    moved = max((p.detach() - p0).abs().max().item() for p, p0 in zip(model.parameters(), start, strict=True))
    return {
        "ok": moved == 0.0,
        "check": "the weights never moved in 5 epochs (the loss was 0 throughout)",
        "largest_weight_change": moved,
        "val_loss": val_loss,
    }
