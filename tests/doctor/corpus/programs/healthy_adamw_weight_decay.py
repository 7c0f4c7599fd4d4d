"""Healthy: an MLP classifier trained with AdamW(lr=1e-3, weight_decay=1e-4), a mild decoupled weight decay that
does not hold the weights back.
Source: https://anilkeshwani.github.io/garden/Clippings/python---AdamW-and-Adam-with-weight-decay---Stack-Overflow
- "is there any difference between torch.optim.Adam(weight_decay=0.01) and torch.optim.AdamW(weight_decay=0.01)?"."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


class MLP(nn.Module):
    def __init__(self, d_in, d_hidden, n_classes):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.fc2 = nn.Linear(d_hidden, d_hidden)
        self.fc3 = nn.Linear(d_hidden, n_classes)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def train(tw=None):
    torch.manual_seed(0)
    # two interleaved spirals' worth of nonlinearity: class = quadrant of a rotated feature pair
    X = torch.randn(3000, 12)
    angle = torch.atan2(X[:, 1], X[:, 0]) + 0.5 * X[:, 2]
    y = ((angle + torch.pi) / (torch.pi / 2)).long().clamp(max=3)
    train_dl = DataLoader(TensorDataset(X[:2500], y[:2500]), batch_size=64, shuffle=True)
    X_val, y_val = X[2500:], y[2500:]

    model = MLP(12, 64, 4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    doctor = tw.watch(model, optimizer, loss_fn=F.cross_entropy) if tw else None
    for _ in range(10):
        model.train()
        for xb, yb in train_dl:
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        model.eval()
        with torch.no_grad():
            out = model(X_val)
            val_loss = F.cross_entropy(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy > 0.85,
        "check": "validation accuracy above 0.85 (4 classes)",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
