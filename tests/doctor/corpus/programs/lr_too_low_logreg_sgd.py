"""Fault: logistic regression (one nn.Linear, BCEWithLogitsLoss) on standardized features, trained with plain
SGD at lr=1e-4 over manual minibatches: the loss creeps down from ln(2) and after 10 epochs the model is far
from the >90% accuracy that lr=0.1 reaches in one epoch.
Source: https://github.com/fizyr/keras-retinanet/pull/843 - "The learning rate 1e-5 is too small and is good
only for model fine-tuning, while there are many cases when it would be better to train ... from scratch"."""

import torch
from torch import nn

EXPECT = {"codes": ["lr-too-low"], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    n, d = 1000, 8
    X = torch.randn(n, d)
    true_w = torch.randn(d)
    y = (X @ true_w + 0.3 * torch.randn(n) > 0).float()
    X_train, y_train, X_test, y_test = X[:800], y[:800], X[800:], y[800:]
    model = nn.Linear(d, 1)
    loss_fn = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    batch_size = 16
    for _epoch in range(10):
        for start in range(0, len(X_train), batch_size):
            xb = X_train[start : start + batch_size]
            yb = y_train[start : start + batch_size].unsqueeze(1)
            logits = model(xb)
            loss = loss_fn(logits, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        with torch.no_grad():
            test_logits = model(X_test)
            test_loss = loss_fn(test_logits, y_test.unsqueeze(1)).item()
            accuracy = ((test_logits.squeeze(1) > 0).float() == y_test).float().mean().item()
        if doctor:
            doctor.record(val_loss=test_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy < 0.85,
        "check": "test accuracy below 0.85 after 10 epochs (lr=0.1 reaches 0.93)",
        "accuracy": accuracy,
        "test_loss": test_loss,
    }
