"""Fault: a 15-layer tanh MLP for multi-output regression with PyTorch's default init (weights ~ U(-1/sqrt(fan_in),
1/sqrt(fan_in)), a gain of about 0.58 per layer); the signal and the gradient shrink layer after layer, the first
layers get gradients orders of magnitude below the last, and plain SGD leaves the fit no better than the mean
(R^2 0.00, where 3 tanh layers reach 0.40 and the 15 layers with BatchNorm 0.33 in the same 6 epochs).
Source: https://paudelanil9.com.np/posts/whysigmoidfails - "Why sigmoid fails": with saturating activations the
gradient at each layer is the product of the derivatives of all later layers and vanishes in deep networks."""

import torch
from torch import nn

EXPECT = {"codes": ["vanishing-gradients"], "also_ok": ["not-learning"]}


def train(tw=None):
    torch.manual_seed(0)
    X = torch.randn(1500, 6)
    Y = torch.stack([torch.sin(X[:, 0]) + X[:, 1] * X[:, 2], torch.cos(X[:, 3]) - X[:, 4], X[:, 5] ** 2], 1)
    Y = (Y - Y.mean(0)) / Y.std(0)
    X_train, Y_train, X_val, Y_val = X[:1200], Y[:1200], X[1200:], Y[1200:]
    layers = [nn.Linear(6, 32), nn.Tanh()]
    for _ in range(14):
        layers += [nn.Linear(32, 32), nn.Tanh()]
    model = nn.Sequential(*layers, nn.Linear(32, 3))
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(6):
        perm = torch.randperm(1200)
        for i in range(0, 1200, 32):
            idx = perm[i : i + 32]
            loss = loss_fn(model(X_train[idx]), Y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=Y_train[idx])
        with torch.no_grad():
            val_loss = loss_fn(model(X_val), Y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    r2 = 1 - val_loss / Y_val.var(0).mean().item()
    return {"ok": r2 < 0.1, "check": "validation R^2 near 0 (no better than the mean)", "r2": r2, "val_loss": val_loss}
