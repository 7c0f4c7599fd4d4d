"""Healthy near miss of over_regularized_adam_weight_decay_mlp: the same Fashion-MNIST MLP with the usual
weight_decay=1e-4 in Adam.
Source: https://wiki.hasty.ai/start/solver/weight-decay - weight decay "on a logarithmic scale between 0 and
0.1"; a small value regularizes without making the model underfit."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)
        )

    def forward(self, x):
        return self.net(x)


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(2000)
    x = (images.float() / 255.0 - 0.286) / 0.353
    train_loader = DataLoader(TensorDataset(x[:1600], labels[:1600]), batch_size=32, shuffle=True)
    x_val, y_val = x[1600:], labels[1600:]
    model = Classifier()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _epoch in range(5):
        model.train()
        for xb, yb in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy > 0.75,
        "check": "validation accuracy above 0.75",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
