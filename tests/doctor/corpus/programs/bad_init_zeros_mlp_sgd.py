"""Fault: an MLP "initialized cleanly" with nn.init.zeros_ on every weight and bias; all sigmoid hidden units start
identical, get identical gradients and stay copies of each other, so the 64-unit layer works like a single unit
and Fashion-MNIST accuracy stays far below the same net with its default init (0.22 against 0.56).
Source: https://community.deeplearning.ai/t/week-1-programming-assignment-initialization-exercise-1-initialize-parameters-zeros/121049
- the zero-initialization exercise: "none of the weights get adjusted" / zero init fails to break symmetry."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn

EXPECT = {"codes": ["bad-init"], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(2000)
    X = images.reshape(-1, 784).float() / 255
    X_train, y_train, X_val, y_val = X[:1600], labels[:1600], X[1600:], labels[1600:]
    model = nn.Sequential(nn.Linear(784, 64), nn.Sigmoid(), nn.Linear(64, 64), nn.Sigmoid(), nn.Linear(64, 10))
    for p in model.parameters():
        nn.init.zeros_(p)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(4):
        perm = torch.randperm(1600)
        for i in range(0, 1600, 32):
            idx = perm[i : i + 32]
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
    w = model[0].weight
    copies = bool(torch.allclose(w, w[:1].expand_as(w)))
    return {
        "ok": copies and accuracy < 0.6,
        "check": "hidden units still identical, low accuracy",
        "units_identical": copies,
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
