"""Fault: a skewed target (daily sales) log-transformed with torch.log instead of log1p; days with zero sales
become -inf targets, the MSE on any batch holding one is inf, and its gradient turns the weights NaN.
Source: https://pythonkb.com/python-deep-learning-nan-loss-reasons - "reasons for Nan loss": inputs that contain
NaN/inf values propagate through the computation and give a NaN loss (log of zero is -inf)."""

import torch
from torch import nn

EXPECT = {"codes": ["nonfinite-data"], "also_ok": ["nonfinite-loss"]}


class SalesNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(10, 64)
        self.fc2 = nn.Linear(64, 32)
        self.out = nn.Linear(32, 1)

    def forward(self, x):
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.out(x).squeeze(1)


def train(tw=None):
    torch.manual_seed(0)
    X = torch.randn(1400, 10)
    rate = torch.exp(0.8 * X[:, 0] + 0.5 * X[:, 1] - 0.4 * X[:, 2] + 1.5)
    sales = torch.poisson(rate)  # a few days sell nothing
    y = torch.log(sales)
    X_train, y_train, X_val, y_val = X[:1100], y[:1100], X[1100:], y[1100:]
    model = SalesNet()
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    losses = []
    for _epoch in range(4):
        perm = torch.randperm(1100)
        for i in range(0, 1100, 50):
            idx = perm[i : i + 50]
            loss = loss_fn(model(X_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if doctor:
                doctor.record(loss, target=y_train[idx])
        with torch.no_grad():
            val_loss = loss_fn(model(X_val), y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    finite = [v for v in losses if abs(v) != float("inf") and v == v]
    return {
        "ok": len(finite) < len(losses),
        "check": "inf/NaN training losses",
        "zero_sale_days": int((sales == 0).sum()),
        "nonfinite_steps": len(losses) - len(finite),
        "last_loss": losses[-1],
    }
