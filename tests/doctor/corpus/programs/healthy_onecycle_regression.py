"""Healthy: a small MLP regressor trained with AdamW under OneCycleLR (stepped every batch, as its docs say): the
lr rises to max_lr for 30% of the run and anneals to max_lr/1e4 at the end.
Source: https://velog.io/@youngs508/OneCycleLR - notes on OneCycleLR: "the 1cycle learning rate policy changes
the learning rate after every batch; step should be called after a batch has been used for training"."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


class Regressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(6, 64)
        self.hidden2 = nn.Linear(64, 64)
        self.out = nn.Linear(64, 1)

    def forward(self, x):
        x = torch.relu(self.hidden(x))
        x = torch.relu(self.hidden2(x))
        return self.out(x)


def train(tw=None):
    torch.manual_seed(0)
    X = torch.randn(1500, 6)
    y = (torch.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2] + 0.5 * X[:, 3] + 0.1 * torch.randn(1500)).unsqueeze(1)
    loader = DataLoader(TensorDataset(X[:1200], y[:1200]), batch_size=32, shuffle=True)
    X_val, y_val = X[1200:], y[1200:]
    model = Regressor()
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    epochs = 12
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, epochs=epochs, steps_per_epoch=len(loader))
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _ in range(epochs):
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if doctor:
                doctor.record(loss, target=yb)
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(X_val), y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    r2 = 1 - val_loss / y_val.var().item()
    return {"ok": r2 > 0.9, "check": "validation R^2 above 0.9", "r2": r2, "val_loss": val_loss}
