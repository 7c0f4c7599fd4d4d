"""Fault: the CNN class was written torchvision-style with num_classes=1000 as its default, and the script builds
it as SmallNet() for the 10 Fashion-MNIST classes; 990 outputs can never be right and keep most of the
probability at the start, and the real classes learn far more slowly.
Source: https://datascience.stackexchange.com/questions/64248/how-is-loss-computed-for-multiclass-cnn-with-an-output-layer-larger-than-the-num
- a Fashion-MNIST CNN whose last layer has more outputs than classes: "it didn't give an error"."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn

EXPECT = {"codes": ["output-class-mismatch"], "also_ok": []}


class SmallNet(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 5), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(16 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, num_classes))

    def forward(self, x):
        return self.fc(self.conv(x))


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(1500)
    X_train, y_train = images.float().unsqueeze(1) / 255, labels
    images, labels = fashion_mnist(500, test=True)
    X_val, y_val = images.float().unsqueeze(1) / 255, labels
    model = SmallNet()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(2):
        model.train()
        perm = torch.randperm(len(X_train))
        for i in range(0, len(X_train), 32):
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
        "ok": accuracy < 0.35,
        "check": "validation accuracy after 2 epochs (SmallNet(10) gets 0.54)",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
