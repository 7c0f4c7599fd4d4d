"""Healthy near miss of params_not_optimized_python_list_mlp: the same configurable MLP with its hidden layers
in an nn.ModuleList, so they are registered and trained.
Source: https://github.com/pytorch/pytorch/issues/715 - "You can build a list of modules, and wrap them in
nn.ModuleList and assign that as self.hids. This will register them properly"."""

import torch
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


class MLP(nn.Module):
    def __init__(self, n_in, hidden_sizes, n_out):
        super().__init__()
        self.hidden = nn.ModuleList()
        size = n_in
        for h in hidden_sizes:
            self.hidden.append(nn.Linear(size, h))
            size = h
        self.out = nn.Linear(size, n_out)

    def forward(self, x):
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.out(x)


def make_data(n):
    X = torch.rand(n, 8) * 2 - 1
    y = torch.sin(3 * X[:, 0]) + X[:, 1] * X[:, 2] + X[:, 3] ** 2 - X[:, 4]
    return X, (y + 0.05 * torch.randn(n)).unsqueeze(1)


def train(tw=None):
    torch.manual_seed(0)
    X, y = make_data(1500)
    X_val, y_val = make_data(300)
    model = MLP(8, [16, 16], 1)
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(15):
        perm = torch.randperm(len(X))
        for i in range(0, len(X), 64):
            idx = perm[i : i + 64]
            optimizer.zero_grad()
            loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y[idx])
        with torch.no_grad():
            val_loss = loss_fn(model(X_val), y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    r2 = 1 - val_loss / y_val.var().item()
    return {
        "ok": r2 > 0.8,
        "check": "validation R^2 above 0.8",
        "r2": r2,
        "n_params_in_optimizer": sum(p.numel() for g in optimizer.param_groups for p in g["params"]),
    }
