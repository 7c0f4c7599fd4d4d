"""Fault: a GRU forecaster whose loss is computed in NumPy (the person's own weighted error from an earlier
NumPy project): the predictions go through .detach().numpy(), the result is wrapped back with
torch.tensor(..., requires_grad=True), and backward() reaches no weight, so the GRU never trains.
Source: https://github.com/isayev/ReLeaSE/issues/39 - the loss built from log_probs.cpu().detach().numpy():
"the grad for each of the layers comes back as none ... optimizer.step() is not working"."""

import numpy as np
import torch
from torch import nn

EXPECT = {"codes": ["no-gradient"], "also_ok": ["not-learning"]}


class Forecaster(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(1, 24, batch_first=True)
        self.out = nn.Linear(24, 1)

    def forward(self, x):
        h, _ = self.gru(x)
        return self.out(h[:, -1])


def make_windows(n, length=16):
    phase = torch.rand(n, 1) * 6.28
    freq = 0.3 + 0.4 * torch.rand(n, 1)
    t = torch.arange(length + 1).float()
    series = torch.sin(freq * t + phase) + 0.05 * torch.randn(n, length + 1)
    return series[:, :length].unsqueeze(-1), series[:, length:]


def weighted_error(pred, target):
    return float(np.mean((pred - target) ** 2 * (1 + np.abs(target))))


def train(tw=None):
    torch.manual_seed(0)
    X, y = make_windows(800)
    X_val, y_val = make_windows(200)
    model = Forecaster()
    initial = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    mse = nn.MSELoss()
    doctor = tw.watch(model, optimizer, loss_fn=mse) if tw else None
    for _epoch in range(5):
        for i in range(0, len(X), 32):
            pred = model(X[i : i + 32])
            loss = torch.tensor(weighted_error(pred.detach().numpy(), y[i : i + 32].numpy()), requires_grad=True)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y[i : i + 32])
        with torch.no_grad():
            val_loss = mse(model(X_val), y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    unchanged = all(torch.equal(p, q) for p, q in zip(initial, model.parameters(), strict=True))
    r2 = 1 - val_loss / y_val.var().item()
    return {
        "ok": unchanged and r2 < 0.2,
        "check": "weights unchanged and validation R^2 near 0 (an MSE loss on the tensors reaches 0.96)",
        "unchanged": unchanged,
        "r2": r2,
        "val_loss": val_loss,
    }
