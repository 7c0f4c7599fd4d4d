"""Healthy near miss: a review-score model regresses the average star rating of a product, which is stored
rounded to half stars (1.0, 1.5, ..., 5.0); the target takes few values but is a genuine quantity, so one
output with MSELoss is the right loss.
Source: https://stats.stackexchange.com/questions/461353/multi-class-classification-for-regression/461418 - a
continuous target that only needs a coarse resolution is still a regression target."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    X = torch.randn(2000, 8)
    score = 3 + 0.8 * X[:, 0] - 0.5 * X[:, 1] + 0.4 * X[:, 2] * X[:, 3] + 0.1 * torch.randn(2000)
    stars = (score.clamp(1, 5) * 2).round() / 2  # stored in half stars
    loader = DataLoader(TensorDataset(X[:1600], stars[:1600, None]), batch_size=32, shuffle=True)
    X_val, y_val = X[1600:], stars[1600:, None]
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(8):
        model.train()
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        model.eval()
        with torch.no_grad():
            pred = model(X_val)
            val_loss = loss_fn(pred, y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    r2 = 1 - val_loss / y_val.var().item()
    return {"ok": r2 > 0.8, "check": "validation R^2 above 0.8", "r2": r2, "distinct_targets": len(stars.unique())}
