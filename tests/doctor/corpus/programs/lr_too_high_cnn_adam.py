"""Fault: Adam with lr=0.1 on a small Fashion-MNIST CNN: the first steps throw the weights far away, the
loss jumps by orders of magnitude, the ReLUs die and the loss then sits flat at the chance level ln(10).
Source: https://github.com/keras-team/keras/issues/3425 - a ReLU CNN's accuracy suddenly drops and never
recovers; answered: "as much as 40% of your network can be dead if the learning rate is set too high"."""

import math

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": ["lr-too-high"], "also_ok": ["dead-relu", "nonfinite-loss", "not-learning"]}


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def train(tw=None):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    images, labels = fashion_mnist(1500)
    x = (images.float() / 255.0 - 0.2860) / 0.3530
    x = x.unsqueeze(1)
    train_ds = TensorDataset(x[:1200], labels[:1200])
    x_val, y_val = x[1200:], labels[1200:]
    loader = DataLoader(train_ds, batch_size=64, shuffle=True)
    model = SmallCNN()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(3):
        model.train()
        for xb, yb in loader:
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
        "ok": accuracy < 0.3,
        "check": "validation accuracy near chance (10 classes)",
        "accuracy": accuracy,
        "val_loss": val_loss,
        "chance_loss": math.log(10),
    }
