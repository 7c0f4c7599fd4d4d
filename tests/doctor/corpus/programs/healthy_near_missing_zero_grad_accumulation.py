"""Healthy near miss of missing-zero-grad: deliberate gradient accumulation. The loss of each of 4 small
batches is divided by 4 and backpropagated, then one optimizer.step() and one optimizer.zero_grad(): gradients
add up on purpose within a group, and are cleared after each step.
Source: https://github.com/huggingface/accelerate/issues/1299 - with gradient accumulation, zero_grad() belongs
after the step, or it discards the accumulated gradient."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(2000)
    X = images.reshape(-1, 784).float() / 255.0
    train_loader = DataLoader(TensorDataset(X[:1600], labels[:1600]), batch_size=16, shuffle=True)
    X_val, y_val = X[1600:], labels[1600:]
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    accumulation_steps = 4
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _epoch in range(4):
        model.train()
        optimizer.zero_grad()
        for i, (xb, yb) in enumerate(train_loader):
            loss = criterion(model(xb), yb) / accumulation_steps
            loss.backward()
            if (i + 1) % accumulation_steps == 0:
                optimizer.step()
                optimizer.zero_grad()
            if doctor:
                doctor.record(loss, target=yb)
        model.eval()
        with torch.no_grad():
            out = model(X_val)
            val_loss = criterion(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {"ok": accuracy > 0.7, "check": "validation accuracy above 0.7", "accuracy": accuracy, "val_loss": val_loss}
