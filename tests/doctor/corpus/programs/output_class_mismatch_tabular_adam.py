"""Fault: a 3-class tabular classifier (customer churn: stays / leaves / downgrades) whose model was copied
from a 10-class example; the 7 extra outputs never get a label, so after a short training they still
hold a share of the probability: the predicted confidences understate every real class.
Source: https://datascience.stackexchange.com/questions/64248/how-is-loss-computed-for-multiclass-cnn-with-an-output-layer-larger-than-the-num
- the closest thread found: a final layer wider than the classes, "it didn't give an error"."""

import torch
from torch import nn

EXPECT = {"codes": ["output-class-mismatch"], "also_ok": []}


class Classifier(nn.Module):
    def __init__(self, n_features, n_classes=10):
        super().__init__()
        self.hidden = nn.Linear(n_features, 32)
        self.out = nn.Linear(32, n_classes)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


def train(tw=None):
    torch.manual_seed(0)
    n = 1500
    X = torch.randn(n, 12)
    scores = X @ torch.randn(12, 3) + 0.5 * torch.randn(n, 3)
    y = scores.argmax(1)
    X_train, y_train, X_val, y_val = X[:1200], y[:1200], X[1200:], y[1200:]
    model = Classifier(12)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(4):
        perm = torch.randperm(1200)
        for i in range(0, 1200, 32):
            idx = perm[i : i + 32]
            loss = loss_fn(model(X_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y_train[idx])
        with torch.no_grad():
            logits = model(X_val)
            val_loss = loss_fn(logits, y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    impossible = logits.softmax(1)[:, 3:].sum(1).mean().item()
    accuracy = (logits.argmax(1) == y_val).float().mean().item()
    return {
        "ok": impossible > 0.01,
        "check": "mean probability given to the 7 classes that do not exist > 1%",
        "impossible_mass": impossible,
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
