"""Healthy near miss of nonfinite_loss_manual_bce_logistic: the same hand-written binary cross-entropy on sigmoid
probabilities, but the probabilities are clamped to [1e-6, 1 - 1e-6] before the logs, so a confident sigmoid that
rounds to 1.0 costs at most -log(1e-6) instead of inf/NaN; every loss stays finite and the classifier is accurate.
Source: https://ai.stackexchange.com/questions/6622/how-is-division-by-zero-avoided-when-implementing-back-propagation-for-a-neural
- how log(0) is avoided when implementing cross-entropy on sigmoid outputs."""

import torch
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(10, 32)
        self.out = nn.Linear(32, 1)

    def forward(self, x):
        return torch.sigmoid(self.out(torch.relu(self.hidden(x)))).squeeze(1)


def bce(p, y, eps=1e-6):
    p = p.clamp(eps, 1 - eps)
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
    with torch.no_grad():
        accuracy = ((model(X_val) > 0.5).float() == y_val).float().mean().item()
    finite = all(v == v and abs(v) != float("inf") for v in losses)
    return {
        "ok": finite and accuracy > 0.9,
        "check": "every loss finite, validation accuracy above 0.9",
        "accuracy": accuracy,
        "last_loss": losses[-1],
        "val_loss": val_loss,
    }
