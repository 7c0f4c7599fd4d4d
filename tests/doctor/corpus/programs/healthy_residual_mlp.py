"""Healthy: a custom nn.Module with residual blocks (x + block(x), LayerNorm inside the block), six blocks deep,
trained with Adam on a nonlinear regression; the skip connections keep gradients flowing to the first layer.
Source: https://github.com/rballentine25/wildfire-thesis-research - notes on skip (residual) connections in
PyTorch: "usually implemented by adding the input of a layer (or block) back to its output", out += identity."""

import torch
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


class ResidualBlock(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, x):
        identity = x
        out = self.fc2(torch.relu(self.fc1(self.norm(x))))
        return identity + out


class ResNetMLP(nn.Module):
    def __init__(self, n_in, width=32, depth=6):
        super().__init__()
        self.stem = nn.Linear(n_in, width)
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(depth)])
        self.head = nn.Linear(width, 1)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


def train(tw=None):
    torch.manual_seed(0)
    X = torch.randn(1200, 4)
    y = (torch.sin(2 * X[:, 0]) + 0.5 * X[:, 1] * X[:, 2] + torch.cos(X[:, 3])).unsqueeze(1)
    y = y + 0.05 * torch.randn_like(y)
    X_train, y_train, X_val, y_val = X[:1000], y[:1000], X[1000:], y[1000:]

    model = ResNetMLP(4)
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _ in range(12):
        model.train()
        perm = torch.randperm(1000)
        for i in range(0, 1000, 50):
            idx = perm[i : i + 50]
            optimizer.zero_grad()
            loss = loss_fn(model(X_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y_train[idx])
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(X_val), y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    r2 = 1 - val_loss / y_val.var().item()
    return {"ok": r2 > 0.9, "check": "validation R^2 above 0.9", "r2": r2, "val_loss": val_loss}
