"""Healthy: an MLP with BatchNorm1d layers, model.train() before each epoch and model.eval() + torch.no_grad()
before validating, so validation uses the running statistics; small validation batches are then no problem.
Source: https://discuss.pytorch.org/t/what-does-model-eval-do-for-batchnorm-layer/7146 - "what does model.eval()
do for batchnorm layer?": during evaluation the running mean/variance is used, and batch size doesn't matter."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


class BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(20, 64),
            nn.BatchNorm1d(64),
            nn.ReLU(),
            nn.Linear(64, 64),
            nn.BatchNorm1d(64),
            nn.ReLU(),
            nn.Linear(64, 3),
        )

    def forward(self, x):
        return self.net(x)


def train(tw=None):
    torch.manual_seed(0)
    centers = torch.randn(3, 20)
    y = torch.randint(0, 3, (2000,))
    X = 3.0 + centers[y] + 1.5 * torch.randn(2000, 20)  # raw features, offset; the BatchNorm layers cope
    train_loader = DataLoader(TensorDataset(X[:1600], y[:1600]), batch_size=64, shuffle=True)
    val_loader = DataLoader(TensorDataset(X[1600:], y[1600:]), batch_size=16)

    model = BNNet()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _ in range(8):
        model.train()
        for inputs, targets in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(inputs), targets)
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=targets)
        model.eval()
        total, correct, val_loss = 0, 0, 0.0
        with torch.no_grad():
            for inputs, targets in val_loader:
                out = model(inputs)
                val_loss += criterion(out, targets).item() * len(targets)
                correct += (out.argmax(1) == targets).sum().item()
                total += len(targets)
        val_loss /= total
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    accuracy = correct / total
    return {
        "ok": accuracy > 0.9,
        "check": "validation accuracy above 0.9 (eval mode, batches of 16)",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
