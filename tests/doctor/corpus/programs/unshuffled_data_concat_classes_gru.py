"""Fault: sensor recordings are loaded one activity at a time and concatenated (walking, then running, then
cycling, then resting), and the GRU classifier is trained on consecutive slices of that array; each epoch it
sees one activity for hundreds of steps and forgets the others, so validation accuracy stays near chance.
Source: https://dailydoseofds.beehiiv.com/p/why-is-it-important-to-shuffle-your - "if your data is ordered by
labels, ... the model receiving a label-ordered dataset fails to converge"."""

import math

import torch
from torch import nn

EXPECT = {"codes": ["unshuffled-data"], "also_ok": []}


def recordings(activity, n, steps=24):
    t = torch.arange(steps).float()
    freq = 0.3 + 0.25 * activity + 0.05 * torch.randn(n, 1)
    phase = 2 * math.pi * torch.rand(n, 1)
    amplitude = 1 + 0.3 * torch.randn(n, 1)
    signal = amplitude * torch.sin(freq * t + phase) + 0.3 * torch.randn(n, steps)
    return signal.unsqueeze(2), torch.full((n,), activity)


class ActivityGRU(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(1, 32, batch_first=True)
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        _, h = self.gru(x)
        return self.head(h[-1])


def train(tw=None):
    torch.manual_seed(0)
    parts = [recordings(a, 300) for a in range(4)]
    X = torch.cat([p[0] for p in parts])
    y = torch.cat([p[1] for p in parts])
    val = [recordings(a, 50) for a in range(4)]
    X_val, y_val = torch.cat([v[0] for v in val]), torch.cat([v[1] for v in val])
    model = ActivityGRU()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for epoch in range(4):
        model.train()
        for i in range(0, len(X), 25):
            xb, yb = X[i : i + 25], y[i : i + 25]
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        model.eval()
        with torch.no_grad():
            out = model(X_val)
            val_loss = loss_fn(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
        print(f"epoch {epoch}: val loss {val_loss:.3f}, accuracy {accuracy:.3f}")
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy < 0.4,
        "check": "validation accuracy near chance (4 classes; shuffled: ~0.9)",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
