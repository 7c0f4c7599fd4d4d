"""Fault: the learning rate was copied from a tutorial that used a 10x smaller loss scale; with lr=3 the
first SGD steps throw the weights far away, the ReLUs die, and the loss sits at the chance level.
Source: https://github.com/MichalDanielDobrzanski/DeepLearningPython/issues/13 - a ReLU MLP whose accuracy
sits at 0.095 every epoch; answered: "Use a learning rate of 0.01" (and smaller initial weights)."""

import math

import torch
from torch import nn

EXPECT = {"codes": ["lr-too-high"], "also_ok": ["dead-relu", "nonfinite-loss", "not-learning"]}


def train(tw=None):
    torch.manual_seed(0)
    centers = 2 * torch.randn(10, 20)
    y = torch.randint(0, 10, (2000,))
    X = centers[y] + torch.randn(2000, 20)
    X_train, y_train, X_val, y_val = X[:1600], y[:1600], X[1600:], y[1600:]
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=3.0, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(8):
        model.train()
        perm = torch.randperm(1600)
        for i in range(0, 1600, 64):
            idx = perm[i : i + 64]
            loss = loss_fn(model(X_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y_train[idx])
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
        "ok": accuracy < 0.3,
        "check": "validation accuracy near chance (10 classes)",
        "accuracy": accuracy,
        "val_loss": val_loss,
        "chance_loss": math.log(10),
    }
