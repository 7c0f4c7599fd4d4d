"""Fault: an MLP classifier trained with plain SGD at lr=1e-5 (a fine-tuning learning rate copied into a from-
scratch run): every step moves the weights by a millionth of their size, and after 8 epochs the loss has barely
left ln(10), where lr=0.1 reaches over 90% accuracy in the same budget.
Source: https://github.com/OpenLMLab/LOMO/issues/50 - "with a small learning rate 5e-5 ... the loss does not go
down"; answered: the learning rate is too small, try 1e-2 or 1e-3."""

import math

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": ["lr-too-low"], "also_ok": []}


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(20, 64)
        self.fc2 = nn.Linear(64, 64)
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


def train(tw=None):
    torch.manual_seed(0)
    centers = 2 * torch.randn(10, 20)
    y = torch.randint(0, 10, (2000,))
    X = centers[y] + torch.randn(2000, 20)
    train_loader = DataLoader(TensorDataset(X[:1600], y[:1600]), batch_size=32, shuffle=True)
    X_val, y_val = X[1600:], y[1600:]
    model = MLP()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-5)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _epoch in range(8):
        for inputs, targets in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(inputs), targets)
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=targets)
        with torch.no_grad():
            out = model(X_val)
            val_loss = criterion(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy < 0.5 and val_loss > 0.8 * math.log(10),
        "check": "after 8 epochs validation accuracy below 0.5 and loss still near ln(10) (lr=0.1 reaches 0.9)",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
