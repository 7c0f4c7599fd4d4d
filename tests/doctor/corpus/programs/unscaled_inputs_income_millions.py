"""Fault: a churn classifier gets annual income in dollars (tens of thousands to a few million) next to features
that are already near 1 (tenure in years/10, usage ratios, a flag); with SGD the income column swamps the first
layer, the logits are in the thousands and the model learns nothing from the small, informative features.
Source: https://medium.com/analytics-vidhya/why-gradient-descent-doesnt-converge-with-unscaled-features-8b7ed0c8cab6 -
age next to salary: gradient descent does not converge when one feature is orders of magnitude larger."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": ["unscaled-inputs"], "also_ok": ["dead-relu"]}


class ChurnNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(5, 32)
        self.out = nn.Linear(32, 1)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


def make_customers(n):
    tenure = torch.rand(n) * 2  # years / 10
    usage = torch.rand(n)
    support_calls = torch.rand(n)
    has_contract = (torch.rand(n) < 0.5).float()
    income = torch.exp(torch.empty(n).uniform_(10, 15))  # $22k .. $3.3M
    logit = 3 * support_calls - 2.5 * tenure - 2 * has_contract + 2 * (0.5 - usage) + 1.0
    churn = (torch.rand(n) < torch.sigmoid(2 * logit)).float()
    return torch.stack([tenure, usage, support_calls, has_contract, income], 1), churn.unsqueeze(1)


def train(tw=None):
    torch.manual_seed(0)
    X, y = make_customers(2000)
    train_ds, X_val, y_val = TensorDataset(X[:1600], y[:1600]), X[1600:], y[1600:]
    loader = DataLoader(train_ds, batch_size=32, shuffle=True)
    model = ChurnNet()
    loss_fn = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for epoch in range(6):
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        with torch.no_grad():
            logits = model(X_val)
            val_loss = loss_fn(logits, y_val).item()
            accuracy = ((logits > 0).float() == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
        print(f"epoch {epoch}: val loss {val_loss:.3f}, accuracy {accuracy:.3f}")
    if doctor:
        return doctor.findings
    majority = max(y_val.mean().item(), 1 - y_val.mean().item())
    return {
        "ok": accuracy < majority + 0.05,
        "check": "validation accuracy no better than the majority class",
        "accuracy": accuracy,
        "majority": majority,
        "val_loss": val_loss,
    }
