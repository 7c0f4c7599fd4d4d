"""Fault: Fashion-MNIST standardized per pixel, (X - X.mean(0)) / X.std(0); border pixels are 0 in every image, so
their std is 0, 0/0 gives NaN in every image, and the loss is NaN from the first batch.
Source: https://stats.stackexchange.com/questions/35304/how-to-standardize-an-array-if-standard-deviation-is-zero/108922
- "One of the columns have standard deviation = 0. def standardize(X): return (X - mean(X)) / std(X). So this
code doesn't work.\""""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn

EXPECT = {"codes": ["nonfinite-data"], "also_ok": ["nonfinite-loss"]}


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(1500)
    X = images.reshape(-1, 784).float()
    X = (X - X.mean(0)) / X.std(0)  # per-pixel standardization
    X_train, y_train, X_val, y_val = X[:1200], labels[:1200], X[1200:], labels[1200:]
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(3):
        perm = torch.randperm(1200)
        for i in range(0, 1200, 64):
            idx = perm[i : i + 64]
            loss = loss_fn(model(X_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y_train[idx])
        with torch.no_grad():
            out = model(X_val)
            val_loss = loss_fn(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": val_loss != val_loss and accuracy < 0.2,
        "check": "NaN loss and chance accuracy",
        "nan_pixels": int(torch.isnan(X).any(0).sum()),
        "val_loss": val_loss,
        "accuracy": accuracy,
    }
