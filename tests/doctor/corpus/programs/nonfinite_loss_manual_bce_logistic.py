"""Fault: binary cross-entropy written by hand on sigmoid probabilities, -(y*log(p) + (1-y)*log(1-p)); once the
classifier is confident, sigmoid rounds to exactly 1.0 in float32, log(1 - p) is -inf, 0 * -inf is NaN, and the
NaN gradient wipes out the weights.
Source: https://qa.1r1g.com/sf/ask/3426577661 - "custom binary cross-entropy y*log(p) + (1-y)*log(1-p): after a
few iterations the loss is NaN" (answer: the naive form breaks when p reaches 0 or 1)."""

import torch
from torch import nn

EXPECT = {"codes": ["nonfinite-loss"], "also_ok": []}


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(10, 32)
        self.out = nn.Linear(32, 1)

    def forward(self, x):
        return torch.sigmoid(self.out(torch.relu(self.hidden(x)))).squeeze(1)


def bce(p, y):
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()


def train(tw=None):
    torch.manual_seed(0)
    X = torch.randn(1200, 10)
    y = (X[:, :3].sum(1) > 0).float()
    X_train, y_train, X_val, y_val = X[:1000], y[:1000], X[1000:], y[1000:]
    model = Classifier()
    loss_fn = bce
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    losses = []
    for _epoch in range(6):
        for i in range(0, 1000, 50):
            xb, yb = X_train[i : i + 50], y_train[i : i + 50]
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if doctor:
                doctor.record(loss, target=yb)
        with torch.no_grad():
            val_loss = loss_fn(model(X_val), y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    finite = torch.isfinite(torch.tensor(losses))
    first_bad = int((~finite).nonzero()[0]) if not finite.all() else None
    return {
        "ok": first_bad is not None,
        "check": "the training loss turned NaN/inf",
        "first_bad_step": first_bad,
        "best_loss": min(v for v in losses if v == v),
        "last_loss": losses[-1],
    }
