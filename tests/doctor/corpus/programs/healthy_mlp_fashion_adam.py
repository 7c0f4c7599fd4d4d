"""Healthy: an MLP on flattened Fashion-MNIST images scaled to [0, 1], nn.Flatten + two hidden ReLU layers,
Adam(lr=1e-3), manual shuffled minibatches, evaluated on the test split.
Source: https://github.com/Du-Sen-Lin/Pytorch - a PyTorch quickstart notebook on FashionMNIST: ToTensor()
"converts a PIL image or ndarray to a FloatTensor and scales the pixel intensities to [0., 1.]"."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


class NeuralNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(28 * 28, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)
        )

    def forward(self, x):
        return self.linear_relu_stack(self.flatten(x))


def train(tw=None):
    torch.manual_seed(0)
    X, y = fashion_mnist(3000)
    X = X.float() / 255.0
    X_test, y_test = fashion_mnist(500, test=True)
    X_test = X_test.float() / 255.0

    model = NeuralNetwork()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch_size = 64
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _ in range(6):
        model.train()
        perm = torch.randperm(len(X))
        for i in range(0, len(X), batch_size):
            idx = perm[i : i + batch_size]
            pred = model(X[idx])
            loss = loss_fn(pred, y[idx])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if doctor:
                doctor.record(loss, target=y[idx])
        model.eval()
        with torch.no_grad():
            pred = model(X_test)
            test_loss = loss_fn(pred, y_test).item()
            accuracy = (pred.argmax(1) == y_test).float().mean().item()
        if doctor:
            doctor.record(val_loss=test_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy > 0.8,
        "check": "test accuracy above 0.8 (3000 training images)",
        "accuracy": accuracy,
        "test_loss": test_loss,
    }
