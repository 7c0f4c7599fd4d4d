"""Healthy: multi-label classification (each sample has any subset of 5 tags) with raw logits, BCEWithLogitsLoss
on float 0/1 targets of shape (N, 5), and per-label accuracy from sigmoid(logits) > 0.5.
Source: https://discuss.pytorch.org/t/how-to-calculate-accuracy-multi-label/73883 - "how to calculate accuracy
multi-label": answer: treat it as five binary problems, BCEWithLogitsLoss, count each correct label."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


class TagNet(nn.Module):
    def __init__(self, n_features, n_tags):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_features, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.tags = nn.Linear(64, n_tags)

    def forward(self, x):
        return self.tags(self.body(x))


def train(tw=None):
    torch.manual_seed(0)
    X = torch.randn(2500, 20)
    W = torch.randn(20, 5)
    Y = ((X @ W + 0.5 * torch.randn(2500, 5)) > 0.5).float()  # ~35% of tags on, several per sample
    train_loader = DataLoader(TensorDataset(X[:2000], Y[:2000]), batch_size=64, shuffle=True)
    X_val, Y_val = X[2000:], Y[2000:]

    model = TagNet(20, 5)
    criterion = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _ in range(10):
        model.train()
        for data, target in train_loader:
            optimizer.zero_grad()
            output = model(data)
            loss = criterion(output, target)
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=target)
        model.eval()
        with torch.no_grad():
            logits = model(X_val)
            val_loss = criterion(logits, Y_val).item()
            accuracy = ((torch.sigmoid(logits) > 0.5).float() == Y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy > 0.9,
        "check": "per-label validation accuracy above 0.9",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
