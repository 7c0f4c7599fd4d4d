"""Fault: a regression trained on a hand-written Pearson-correlation loss, 1 - corr(pred, y), with
pred.std() and y.std() computed per batch; 1001 rows in batches of 50 leave a last batch of one row, whose
(unbiased) std is NaN, so the loss and then every weight turn NaN in the first epoch.
Source: https://github.com/ziwei-jiang/PGGAN-PyTorch/issues/1 - loss is NaN from the second epoch: 65 images with
batch size 8 leave a batch of one sample, and torch.std over a single sample is NaN."""

import torch
from torch import nn

EXPECT = {"codes": ["nonfinite-loss"], "also_ok": []}


def pearson_loss(pred, target):
    pred = (pred - pred.mean()) / pred.std()
    target = (target - target.mean()) / target.std()
    return 1 - (pred * target).mean()


def train(tw=None):
    torch.manual_seed(0)
    X = torch.randn(1301, 12)
    y = X[:, :4] @ torch.tensor([1.0, -2.0, 0.5, 1.5]) + 0.3 * torch.randn(1301)
    X_train, y_train, X_val, y_val = X[:1001], y[:1001], X[1001:], y[1001:]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X_train, y_train), batch_size=50, shuffle=True)
    model = nn.Sequential(nn.Linear(12, 32), nn.Tanh(), nn.Linear(32, 1))
    loss_fn = pearson_loss
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    losses = []
    for _epoch in range(5):
        for xb, yb in loader:
            loss = loss_fn(model(xb).squeeze(1), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if doctor:
                doctor.record(loss, target=yb)
        with torch.no_grad():
            pred = model(X_val).squeeze(1)
            val_loss = loss_fn(pred, y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    bad = [i for i, v in enumerate(losses) if v != v]
    return {
        "ok": bool(bad) and val_loss != val_loss,
        "check": "the loss turned NaN and the model with it",
        "first_nan_step": bad[0] if bad else None,
        "steps_per_epoch": len(loader),
        "val_loss": val_loss,
    }
