"""Healthy: a fraud-style binary classifier on 12:1 imbalanced data, done right: the classes are weighted in
CrossEntropyLoss by inverse frequency and the result is judged by the recall of the rare class, which is high.
Source: https://androidkt.com/how-to-use-class-weight-in-crossentropyloss-for-an-imbalanced-dataset/ - "how to
use class weight in CrossEntropyLoss for an imbalanced dataset": weight = 1D tensor of per-class weights."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


def make_data(n_major, n_minor):
    normal = torch.randn(n_major, 10)
    fraud = torch.randn(n_minor, 10) + torch.tensor([1.5, -1.5, 1.0, 0, 0, 0, 0, 0, 0, 1.0])
    X = torch.cat([normal, fraud])
    y = torch.cat([torch.zeros(n_major, dtype=torch.long), torch.ones(n_minor, dtype=torch.long)])
    return X, y


def train(tw=None):
    torch.manual_seed(0)
    X_train, y_train = make_data(2400, 200)
    X_val, y_val = make_data(600, 50)
    counts = torch.bincount(y_train).float()
    class_weights = counts.sum() / (2 * counts)
    loader = DataLoader(TensorDataset(X_train, y_train), batch_size=128, shuffle=True)

    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
    loss_fn = nn.CrossEntropyLoss(weight=class_weights)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _ in range(12):
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
            pred = out.argmax(1)
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    recall = (pred[y_val == 1] == 1).float().mean().item()
    accuracy = (pred == y_val).float().mean().item()
    return {
        "ok": recall > 0.85 and accuracy > 0.85,
        "check": "rare-class recall and accuracy above 0.85",
        "rare_recall": recall,
        "accuracy": accuracy,
    }
