"""Healthy near miss of dead_relu_negative_bias_init: the same Fashion-MNIST MLP on pixels in [0, 1] with PyTorch's
default init; with all-positive inputs a few of the first layer's ReLUs (about 3%) are zero for every image, but
most units are alive, and the net trains normally.
Source: https://datarekha.com/interview/deep-learning/dead-relu-problem/ - "What is the dying ReLU problem": count
neurons whose activations are zero for all inputs; a few dead units are harmless, a layer of them is not."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(784, 256)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(256, 64)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x):
        x = self.relu1(self.fc1(self.flatten(x)))
        x = self.relu2(self.fc2(x))
        return self.fc3(x)


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(2000)
    X = images.float() / 255
    X_train, y_train, X_val, y_val = X[:1600], labels[:1600], X[1600:], labels[1600:]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X_train, y_train), batch_size=64, shuffle=True)
    model = MLP()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(4):
        model.train()
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        model.eval()
        with torch.no_grad():
            dead = (model.relu1(model.fc1(model.flatten(X_val))) == 0).all(0).float().mean().item()
            out = model(X_val)
            val_loss = loss_fn(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy > 0.7,
        "check": "validation accuracy above 0.7 despite some dead units",
        "dead_share": dead,
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
