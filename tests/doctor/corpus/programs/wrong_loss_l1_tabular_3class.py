"""Fault: a 3-class table (species coded 0, 1, 2 in alphabetical order) is fitted by linear regression, one
output and L1Loss on the codes, as if the species were a quantity; in feature space species 2 lies between
0 and 1, so no linear output puts the codes in order and the rounded predictions are poor.
Source: https://github.com/hanbt/learn_dl/issues/61 - "why use MSE as the loss function for a classification
problem" (a regression loss on class labels)."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": ["wrong-loss"], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    direction = torch.tensor([1.0, 0.8, -0.5, 0.3])
    position = torch.tensor([0.0, 6.0, 3.0])  # species 2 sits between species 0 and 1
    species = torch.randint(0, 3, (1500,))
    X = position[species, None] * direction + 0.8 * torch.randn(1500, 4)
    y = species.float()
    loader = DataLoader(TensorDataset(X[:1200], y[:1200]), batch_size=32, shuffle=True)
    X_val, y_val = X[1200:], species[1200:]
    model = nn.Linear(4, 1)
    loss_fn = nn.L1Loss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(8):
        model.train()
        for xb, yb in loader:
            out = model(xb).squeeze(1)
            loss = loss_fn(out, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        model.eval()
        with torch.no_grad():
            out = model(X_val).squeeze(1)
            val_loss = loss_fn(out, y_val.float()).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    accuracy = (out.round().clamp(0, 2).long() == y_val).float().mean().item()
    return {
        "ok": accuracy < 0.8,
        "check": "validation accuracy of the rounded prediction (3 outputs + CrossEntropyLoss: 0.97)",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
