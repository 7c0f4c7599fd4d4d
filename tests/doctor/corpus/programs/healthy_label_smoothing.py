"""Healthy: a classifier trained with CrossEntropyLoss(label_smoothing=0.1); the training loss cannot go below
the entropy of the smoothed targets (about 0.5 for 10 classes) and flattens there while accuracy is high.
Source: https://mensfashionforless.com/ai/how-cross-entropy-loss-with-label-smoothing-works.php - "with label
smoothing, the cross-entropy loss will not be zero, even when the model's predicted distribution matches the
target distribution"; for K = 10 and 0.1 the minimum loss is about 0.544."""

import torch
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    centers = 2.0 * torch.randn(10, 24)
    labels = torch.randint(0, 10, (2500,))
    features = centers[labels] + torch.randn(2500, 24)
    X_train, y_train = features[:2000], labels[:2000]
    X_val, y_val = features[2000:], labels[2000:]

    model = nn.Sequential(nn.Linear(24, 128), nn.ReLU(), nn.Linear(128, 10))
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _ in range(10):
        model.train()
        order = torch.randperm(len(X_train))
        for start in range(0, len(X_train), 100):
            batch = order[start : start + 100]
            logits = model(X_train[batch])
            loss = criterion(logits, y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y_train[batch])
        model.eval()
        with torch.no_grad():
            logits = model(X_val)
            val_loss = criterion(logits, y_val).item()
            accuracy = (logits.argmax(dim=1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy > 0.95,
        "check": "validation accuracy above 0.95",
        "accuracy": accuracy,
        "val_loss": val_loss,
        "train_loss": loss.item(),
    }
