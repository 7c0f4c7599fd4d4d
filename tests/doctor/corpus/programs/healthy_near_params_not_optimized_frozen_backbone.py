"""Healthy near miss of params_not_optimized_head_replaced_after_optimizer: a pretrained backbone frozen on
purpose (requires_grad=False) and a new 2-way head created before the optimizer, which is built from the head's
parameters: only the head trains, as intended.
Source: https://github.com/ronghuaiyang/arcface-pytorch/issues/20 - "the optimizer need to know which parameters
should be updated, you could update all of them or update part of them"."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


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
    model.fc = nn.Linear(64, 2)
    optimizer = torch.optim.SGD(model.fc.parameters(), lr=0.01, momentum=0.9)
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
        "ok": accuracy > 0.95,
        "check": "footwear accuracy above 0.95",
        "accuracy": accuracy,
        "val_loss": val_loss,
        "share_footwear": y_val.float().mean().item(),
    }
