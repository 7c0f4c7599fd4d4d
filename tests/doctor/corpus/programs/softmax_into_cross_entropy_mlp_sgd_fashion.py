"""Fault: the Fashion-MNIST MLP ends in nn.Softmax(dim=1) and is trained with nn.CrossEntropyLoss, which applies
log-softmax itself; the doubled softmax squashes the gradients and plain SGD barely moves in the same budget.
Source: https://discuss.pytorch.org/t/cross-entropy-loss-is-not-decreasing/43814/16 - "loss stays the same,
equal to 2.30 ... Check if you pass the softmax into the CrossEntropy loss. If you do, correct it"."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn

EXPECT = {"codes": ["softmax-into-cross-entropy"], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(2500)
    X = images.view(-1, 784).float() / 255
    X_train, y_train, X_val, y_val = X[:2000], labels[:2000], X[2000:], labels[2000:]
    model = nn.Sequential(
        nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10), nn.Softmax(dim=1)
    )
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(4):
        model.train()
        perm = torch.randperm(2000)
        for i in range(0, 2000, 32):
            idx = perm[i : i + 32]
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
        "ok": accuracy < 0.5,
        "check": "validation accuracy after 4 epochs (without the Softmax: 0.62)",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
