"""Fault: the regression loss is MSELoss(reduction="sum") (as in an old tutorial with size_average=False) while
the learning rate was taken from a mean-loss example; with batches of 128 every SGD step is 128x too large and
the loss blows up.
Source: https://discuss.pytorch.org/t/how-are-losses-aggregated-over-multiple-computed-batches/160041 - summed
gradients "is the same as using a 10x higher learning rate"; the lr must be adjusted to the sum."""

import torch
from torch import nn

EXPECT = {"codes": ["sum-reduction"], "also_ok": ["lr-too-high", "nonfinite-loss", "exploding-gradients"]}


def train(tw=None):
    torch.manual_seed(0)
    X = torch.randn(2048, 10)
    y = X[:, :5].sum(1, keepdim=True) + 0.5 * torch.tanh(X[:, 5:6]) + 0.1 * torch.randn(2048, 1)
    X_train, y_train, X_val, y_val = X[:1792], y[:1792], X[1792:], y[1792:]
    model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1))
    loss_fn = nn.MSELoss(reduction="sum")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    best = float("inf")
    for _epoch in range(5):
        perm = torch.randperm(1792)
        for i in range(0, 1792, 128):
            idx = perm[i : i + 128]
            loss = loss_fn(model(X_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y_train[idx])
        with torch.no_grad():
            val_loss = loss_fn(model(X_val), y_val).item() / len(X_val)
        best = min(best, val_loss)
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": not val_loss < 1.0,
        "check": "validation MSE per sample ends above the targets' variance (~5) or "
        "non-finite (reduction='mean' at this lr trains to ~0.1)",
        "val_mse": val_loss,
        "best_val_mse": best,
    }
