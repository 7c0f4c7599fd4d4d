"""Fault: a hand-written focal loss for multi-label tagging with gamma=0.5; once a tag's sigmoid rounds to exactly
1.0 (or 0.0), d/dp (1 - p)**0.5 is inf, times log(p) = 0 gives a NaN gradient, the weights turn NaN and every
loss after that is NaN (the eps inside the log does not help).
Source: https://github.com/kornia/kornia/issues/918 - "NaN gradients on backward pass with focal loss" when
sigmoid(prediction) equals 1. or 0. and 0 < gamma < 1."""

import torch
from torch import nn

EXPECT = {"codes": ["nonfinite-loss"], "also_ok": []}


class Tagger(nn.Module):
    def __init__(self, n_features=20, n_tags=5):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_features, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Linear(64, n_tags)

    def forward(self, x):
        return self.head(self.body(x))


def focal_loss(logits, target, gamma=0.5, eps=1e-8):
    p = torch.sigmoid(logits)
    pos = -((1 - p) ** gamma) * target * torch.log(p + eps)
    neg = -(p**gamma) * (1 - target) * torch.log(1 - p + eps)
    return (pos + neg).mean()


def train(tw=None):
    torch.manual_seed(0)
    X = torch.randn(1200, 20)
    W = torch.randn(20, 5)
    Y = (X @ W > 1.0).float()  # 5 tags, several may be on at once
    X_train, Y_train, X_val, Y_val = X[:1000], Y[:1000], X[1000:], Y[1000:]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X_train, Y_train), batch_size=32, shuffle=True)
    model = Tagger()
    loss_fn = focal_loss
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    losses = []
    for _epoch in range(7):
        model.train()
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if doctor:
                doctor.record(loss, target=yb)
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(X_val), Y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    bad = [i for i, v in enumerate(losses) if v != v]
    return {
        "ok": bool(bad),
        "check": "the training loss turned NaN",
        "first_nan_step": bad[0] if bad else None,
        "best_loss": min(v for v in losses if v == v),
        "val_loss": val_loss,
    }
