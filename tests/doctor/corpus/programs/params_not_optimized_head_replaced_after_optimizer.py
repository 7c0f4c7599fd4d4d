"""Fault: transfer learning with the optimizer built too early: the person freezes the pretrained backbone,
creates the optimizer from model.fc.parameters(), and only then replaces model.fc with a new 2-way head for
the new task; the optimizer still holds the old head's weights, the new head is never updated, and the
footwear-vs-clothing classifier stays at its random start.
Source: https://github.com/LaurentMazare/ocaml-torch/issues/36 - the optimizer was created before the layer,
"it kept printing the same, initial loss value ... it took several days to figure out what's happening"."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn

EXPECT = {"codes": ["params-not-optimized"], "also_ok": ["not-learning"]}


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(self.backbone(x))


def pretrain(model, x, y):
    """Stands in for loading pretrained weights: a few epochs on the 10 Fashion-MNIST classes."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):
        for i in range(0, len(x), 64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i : i + 64]), y[i : i + 64]).backward()
            opt.step()


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(2000)
    x = images.float() / 255.0
    model = Net()
    pretrain(model, x[:1000], labels[:1000])
    # new task: footwear (sandal 5, sneaker 7, ankle boot 9) or not
    is_shoe = ((labels == 5) | (labels == 7) | (labels == 9)).long()
    x_train, y_train, x_val, y_val = x[1000:1700], is_shoe[1000:1700], x[1700:], is_shoe[1700:]
    for param in model.backbone.parameters():
        param.requires_grad = False
    optimizer = torch.optim.SGD(model.fc.parameters(), lr=0.01, momentum=0.9)
    model.fc = nn.Linear(64, 2)
    criterion = nn.CrossEntropyLoss()
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _epoch in range(4):
        for i in range(0, len(x_train), 32):
            optimizer.zero_grad()
            loss = criterion(model(x_train[i : i + 32]), y_train[i : i + 32])
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y_train[i : i + 32])
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy < 0.85,
        "check": "footwear accuracy below 0.85 (optimizer built after the new head: 0.99)",
        "accuracy": accuracy,
        "val_loss": val_loss,
        "share_footwear": y_val.float().mean().item(),
    }
