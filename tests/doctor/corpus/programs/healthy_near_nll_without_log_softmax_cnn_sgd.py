"""Healthy near miss: the CNN ends in nn.LogSoftmax(dim=1) and is trained with nn.NLLLoss, the pair that
CrossEntropyLoss fuses.
Source: https://github.com/pytorch/pytorch/issues/10033 - "nll_loss returns the negative likelihood instead of
the negative log likelihood" for probability inputs: "input is supposed to contain log-probabilities"."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(1500)
    X_train, y_train = images.float().unsqueeze(1) / 255, labels
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
        nn.Linear(16 * 7 * 7, 10),
        nn.LogSoftmax(dim=1),
    )
    loss_fn = nn.NLLLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
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
            val_loss = loss_fn(out, y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    accuracy = (out.argmax(1) == y_val).float().mean().item()
    return {
        "ok": accuracy > 0.7,
        "check": "validation accuracy above 0.7 after 3 epochs",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
