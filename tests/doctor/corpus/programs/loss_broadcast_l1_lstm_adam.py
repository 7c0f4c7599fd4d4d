"""Fault: a sequence-to-one forecaster squeezes its output to [B] but the next-value targets were sliced as
[B, 1]; L1Loss broadcasts them to [B, B], so the LSTM is trained to predict the batch median instead of each
window's next value.
Source: https://github.com/deepset-ai/FARM/issues/229 - "Using a target size (torch.Size([32, 1])) that is
different to the input size (torch.Size([32])) ... the logits were squeezed" in a regression head."""

import warnings

import torch
from torch import nn

EXPECT = {"codes": ["loss-broadcast"], "also_ok": []}


class Forecaster(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(1, 24, batch_first=True)
        self.fc = nn.Linear(24, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1]).squeeze()


def make_windows(n, gen):
    phase = 6.28 * torch.rand(n, 1, generator=gen)
    freq = 0.2 + 0.4 * torch.rand(n, 1, generator=gen)
    t = torch.arange(21).float()
    series = torch.sin(freq * t + phase) + 0.05 * torch.randn(n, 21, generator=gen)
    return series[:, :20].unsqueeze(-1), series[:, 20:21]  # inputs [n, 20, 1], next value [n, 1]


def train(tw=None):
    torch.manual_seed(0)
    warnings.filterwarnings("ignore", message="Using a target size")
    gen = torch.Generator().manual_seed(0)
    X_train, y_train = make_windows(640, gen)
    X_val, y_val = make_windows(160, gen)
    model = Forecaster()
    loss_fn = nn.L1Loss()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(5):
        model.train()
        perm = torch.randperm(len(X_train))
        for i in range(0, len(X_train), 32):
            idx = perm[i : i + 32]
            loss = loss_fn(model(X_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y_train[idx])
        model.eval()
        with torch.no_grad():
            pred = model(X_val)
            val_loss = loss_fn(pred, y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    r2 = 1 - ((pred - y_val.squeeze(1)) ** 2).mean().item() / y_val.var().item()
    return {
        "ok": r2 < 0.2,
        "check": "validation R^2 of the next value (matching shapes gets > 0.8)",
        "r2": r2,
        "val_loss": val_loss,
    }
