"""Fault: to log and average the loss the person rebuilt it from a Python float,
loss = torch.tensor(criterion(out, y).item(), requires_grad=True): backward() runs without error, but the new
tensor has no graph behind it, every .grad stays None and the MLP never changes.
Source: https://github.com/isayev/ReLeaSE/issues/39 - "Weights are not updating ... the grad for each of the
layers comes back as none" after the loss was rebuilt with .item(); answered: this detaches the loss from the
computational graph, there is nothing to backpropagate."""

import torch
from torch import nn

EXPECT = {"codes": ["no-gradient"], "also_ok": ["not-learning"]}


def train(tw=None):
    torch.manual_seed(0)
    centers = 2 * torch.randn(5, 16)
    y = torch.randint(0, 5, (1500,))
    X = centers[y] + torch.randn(1500, 16)
    X_train, y_train, X_val, y_val = X[:1200], y[:1200], X[1200:], y[1200:]
    model = nn.Sequential(nn.Linear(16, 64), nn.Tanh(), nn.Linear(64, 5))
    initial = [p.detach().clone() for p in model.parameters()]
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _epoch in range(5):
        running = 0.0
        perm = torch.randperm(1200)
        for i in range(0, 1200, 40):
            idx = perm[i : i + 40]
            out = model(X_train[idx])
            loss = torch.tensor(criterion(out, y_train[idx]).item(), requires_grad=True)
            running += loss.item()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y_train[idx])
        with torch.no_grad():
            val_out = model(X_val)
            val_loss = criterion(val_out, y_val).item()
            accuracy = (val_out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    unchanged = all(torch.equal(p, q) for p, q in zip(initial, model.parameters(), strict=True))
    return {
        "ok": unchanged and accuracy < 0.5,
        "check": "weights unchanged and validation accuracy far below the 1.0 the same model reaches",
        "unchanged": unchanged,
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
