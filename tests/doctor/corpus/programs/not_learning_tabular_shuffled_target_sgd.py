"""Fault: "shuffling the dataset" drew one permutation for the feature table and another for the target
column, so every row now carries some other row's target: the regression MLP's loss stays at the variance of the
target (R^2 = 0) for every epoch, with healthy gradients and a reasonable learning rate.
Source: https://datarekha.com/interview/deep-learning/debugging-model-not-learning/ - among the common bugs
behind a loss that does not move: "DataLoader accidentally shuffling labels but not inputs"."""

import torch
from torch import nn

EXPECT = {"codes": ["not-learning"], "also_ok": []}


def load_table(n):
    X = torch.randn(n, 6)
    y = 2.0 * X[:, 0] - X[:, 1] + 0.5 * X[:, 2] * X[:, 3] + 0.1 * torch.randn(n)
    return X, y.unsqueeze(1)


def train(tw=None):
    torch.manual_seed(0)
    X, y = load_table(1500)
    X = X[torch.randperm(len(X))]
    y = y[torch.randperm(len(y))]
    X_train, y_train, X_val, y_val = X[:1200], y[:1200], X[1200:], y[1200:]
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))
    criterion = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _epoch in range(14):
        model.train()
        order = torch.randperm(1200)
        for i in range(0, 1200, 32):
            idx = order[i : i + 32]
            optimizer.zero_grad()
            loss = criterion(model(X_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y_train[idx])
        model.eval()
        with torch.no_grad():
            val_loss = criterion(model(X_val), y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    r2 = 1 - val_loss / y_val.var().item()
    return {"ok": r2 < 0.05, "check": "validation R^2 near 0 (the correctly paired table gives 0.99)", "r2": r2}
