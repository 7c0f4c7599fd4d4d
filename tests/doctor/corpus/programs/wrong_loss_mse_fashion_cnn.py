"""Fault: Fashion-MNIST is treated as regression: the CNN has one output, the class ids 0..9 are the float
targets of MSELoss, and predictions are rounded; the ids have no order (a bag is not "between" a sneaker and
an ankle boot), so the model predicts the middle ids and most rounded guesses are wrong.
Source: https://jaeman.notion.site/MNIST-via-Regression-1e95d7580ec180abaee4e429b7bb93bf - classifying MNIST
digits "via regression" on the label value with an MSE-style loss instead of cross-entropy."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn

EXPECT = {"codes": ["wrong-loss"], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(1500)
    X_train, y_train = images.float().unsqueeze(1) / 255, labels.float().unsqueeze(1)
    images, labels = fashion_mnist(500, test=True)
    X_val, y_val = images.float().unsqueeze(1) / 255, labels
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 7 * 7, 32),
        nn.ReLU(),
        nn.Linear(32, 1),
    )
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(3):
        model.train()
        perm = torch.randperm(len(X_train))
        for i in range(0, len(X_train), 64):
            idx = perm[i : i + 64]
            loss = loss_fn(model(X_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y_train[idx])
        model.eval()
        with torch.no_grad():
            out = model(X_val)
            val_loss = loss_fn(out, y_val.float().unsqueeze(1)).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    pred = out.squeeze(1).round().clamp(0, 9).long()
    accuracy = (pred == y_val).float().mean().item()
    return {
        "ok": accuracy < 0.5,
        "check": "validation accuracy of the rounded prediction (10 outputs + CrossEntropyLoss: 0.67)",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
