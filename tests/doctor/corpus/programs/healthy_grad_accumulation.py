"""Healthy: gradient accumulation over 4 micro-batches of 16 (an effective batch of 64): each micro-batch loss
is divided by accumulation_steps, backward() every micro-batch, optimizer.step() and zero_grad() every 4th.
Source: https://discuss.pytorch.org/t/pytorch-gradient-accumulation/55955 - "pytorch gradient accumulation":
loss = loss / accumulation_steps; loss.backward(); if (i+1) % accumulation_steps == 0: optimizer.step();
model.zero_grad()."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    centers = 1.5 * torch.randn(5, 16)
    y = torch.randint(0, 5, (2200,))
    X = centers[y] + torch.randn(2200, 16)
    training_set = DataLoader(TensorDataset(X[:1920], y[:1920]), batch_size=16, shuffle=True)
    X_val, y_val = X[1920:], y[1920:]

    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 5))
    loss_function = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    accumulation_steps = 4
    doctor = tw.watch(model, optimizer, loss_fn=loss_function) if tw else None
    for _ in range(5):
        model.train()
        model.zero_grad()
        for i, (inputs, labels) in enumerate(training_set):
            predictions = model(inputs)
            loss = loss_function(predictions, labels)
            loss = loss / accumulation_steps
            loss.backward()
            if (i + 1) % accumulation_steps == 0:
                optimizer.step()
                model.zero_grad()
            if doctor:
                doctor.record(loss * accumulation_steps, target=labels)
        model.eval()
        with torch.no_grad():
            out = model(X_val)
            val_loss = loss_function(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy > 0.95,
        "check": "validation accuracy above 0.95",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
