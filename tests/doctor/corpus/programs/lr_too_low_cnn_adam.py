"""Fault: a small Fashion-MNIST CNN trained with Adam at lr=1e-6: Adam moves each weight by about lr per step,
so in three epochs no weight moves by more than 1e-4 and the loss stays near ln(10), where lr=1e-3 reaches over
70% accuracy in the same budget.
Source: https://github.com/lucasjinreal/keras_frcnn/issues/76 - "When the learning rate is initialized to 1e-5,
the convergence is very slow ... I have trained for 10 days"."""

import math

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": ["lr-too-low"], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    images, labels = fashion_mnist(1500)
    x = (images.float() / 255.0).unsqueeze(1)
    train_loader = DataLoader(TensorDataset(x[:1200], labels[:1200]), batch_size=64, shuffle=True)
    x_val, y_val = x[1200:], labels[1200:]
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 7 * 7, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-6)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(3):
        model.train()
        for xb, yb in train_loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = loss_fn(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy < 0.4 and val_loss > 0.9 * math.log(10),
        "check": "validation accuracy below 0.4 and loss near ln(10) after 3 epochs (lr=1e-3 reaches 0.7)",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
