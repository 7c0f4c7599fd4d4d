"""Healthy: transfer learning with a frozen backbone. A small CNN is pretrained on the ten Fashion-MNIST classes,
its backbone is frozen (requires_grad=False), a new head is attached for a new task on new images (footwear or
not), and only the head's parameters go to the optimizer; most of the model gets no gradient, by design.
Source: https://www.codegenes.net/blog/freeze-backbone-pytorch - "freezing the backbone in PyTorch": set
requires_grad=False on the backbone, replace the head, and optimize only the parameters that require grad."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 7 * 7, 64),
            nn.ReLU(),
        )
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(self.backbone(x))


def fit(model, optimizer, loss_fn, X, y, epochs, doctor=None):
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(X))
        for i in range(0, len(X), 64):
            idx = perm[i : i + 64]
            loss = loss_fn(model(X[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y[idx])


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(3000)
    X = ((images.float() / 255 - 0.286) / 0.353).unsqueeze(1)
    loss_fn = nn.CrossEntropyLoss()

    model = Net()  # "pretraining" on the first 1500 images, ten classes
    fit(model, torch.optim.Adam(model.parameters(), lr=2e-3), loss_fn, X[:1500], labels[:1500], epochs=2)

    for p in model.backbone.parameters():
        p.requires_grad = False
    model.head = nn.Linear(64, 2)
    footwear = ((labels == 5) | (labels == 7) | (labels == 9)).long()  # sandal, sneaker, ankle boot
    X_train, y_train = X[1500:2500], footwear[1500:2500]
    X_val, y_val = X[2500:], footwear[2500:]
    optimizer = torch.optim.Adam(filter(lambda p: p.requires_grad, model.parameters()), lr=1e-2)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _ in range(5):
        fit(model, optimizer, loss_fn, X_train, y_train, epochs=1, doctor=doctor)
        model.eval()
        with torch.no_grad():
            out = model(X_val)
            val_loss = loss_fn(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy > 0.95,
        "check": "head-only validation accuracy above 0.95 (footwear or not)",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
