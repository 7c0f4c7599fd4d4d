"""Healthy: a degree-3 polynomial fit done right: x is standardised before building [x, x^2, x^3], so the
features have comparable scales and plain SGD on a linear layer converges to the noise floor.
Source: https://discuss.pytorch.org/t/finding-polynomial-function-questions/104428 - "when I use [x, x^2, x^3]
as the input the model doesn't work anymore (huge test set loss)": raw x in -1000..1000 makes x^3 ~1e9; the
standardised version below is the fix."""

import torch
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    x = torch.empty(600).uniform_(-3, 5)
    y = 0.4 * x**3 - 2 * x**2 + 0.5 * x + 2 + 0.5 * torch.randn(600)
    x_std = (x - x.mean()) / x.std()
    features = torch.stack([x_std, x_std**2, x_std**3], dim=1)
    y_mean, y_sd = y.mean(), y.std()
    target = ((y - y_mean) / y_sd).unsqueeze(1)
    train_x, train_y, val_x, val_y = features[:500], target[:500], features[500:], target[500:]

    model = nn.Linear(3, 1)
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _ in range(60):
        perm = torch.randperm(500)
        for i in range(0, 500, 25):
            idx = perm[i : i + 25]
            loss = loss_fn(model(train_x[idx]), train_y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=train_y[idx])
        with torch.no_grad():
            val_loss = loss_fn(model(val_x), val_y).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    r2 = 1 - val_loss / val_y.var().item()
    return {"ok": r2 > 0.97, "check": "validation R^2 above 0.97", "r2": r2, "val_loss": val_loss}
