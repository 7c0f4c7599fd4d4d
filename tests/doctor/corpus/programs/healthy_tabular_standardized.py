"""Healthy: tabular data whose raw columns have very different scales (age in years, income in dollars,
a 0/1 flag, a ratio, a count) standardised column by column with the training set's mean and std before an MLP
trained with plain SGD; the validation set uses the training statistics.
Source: https://datascience.stackexchange.com/questions/78489/feature-scaling-for-mlp-neural-network-sklearn -
"the features have multiple scales ... scikit-learn says MLP is sensitive to feature scaling": answer: scale,
fitting the scaler on the training data only."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


def make_customers(n):
    age = torch.randint(18, 80, (n,)).float()
    income = torch.exp(10.5 + 0.6 * torch.randn(n))  # dollars, ~10k..200k
    member = (torch.rand(n) < 0.4).float()
    debt_ratio = torch.rand(n) * 0.8
    visits = torch.poisson(torch.full((n,), 6.0))
    score = 0.04 * (age - 45) + 1.2 * (torch.log(income) - 10.5) + 1.0 * member - 3 * debt_ratio + 0.15 * visits
    y = (score + 0.3 * torch.randn(n) > 0).long()
    return torch.stack([age, income, member, debt_ratio, visits], dim=1), y


def train(tw=None):
    torch.manual_seed(0)
    X, y = make_customers(2000)
    X_train, y_train, X_val, y_val = X[:1600], y[:1600], X[1600:], y[1600:]
    mean, std = X_train.mean(0), X_train.std(0)
    X_train, X_val = (X_train - mean) / std, (X_val - mean) / std
    loader = DataLoader(TensorDataset(X_train, y_train), batch_size=32, shuffle=True)

    model = nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Linear(32, 2))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _ in range(10):
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
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
        "ok": accuracy > 0.88,
        "check": "validation accuracy above 0.88",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
