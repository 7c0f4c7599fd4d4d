"""Fault: a fraud detector is trained on transactions that are 97% legitimate with a plain BCEWithLogitsLoss
(no pos_weight, no resampling); the model learns the base rate, its accuracy sits at the majority share and it
catches almost no fraud.
Source: https://datascience.stackexchange.com/questions/19283/why-mlp-only-learns-bias-for-unbalanced-binary-classification
- "the training process ... basically only learned the bias term and ended up predicting everything to be
negative" on 88/12 data."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": ["class-imbalance"], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    n = 5000
    fraud = (torch.rand(n) < 0.03).float()
    X = torch.randn(n, 10)
    X[:, :3] += 1.2 * fraud[:, None]  # fraud shifts three features, overlapping with normal traffic
    loader = DataLoader(TensorDataset(X[:4000], fraud[:4000].unsqueeze(1)), batch_size=64, shuffle=True)
    X_val, y_val = X[4000:], fraud[4000:]
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
    loss_fn = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
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
            logits = model(X_val).squeeze(1)
            val_loss = loss_fn(logits, y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    pred = (logits > 0).float()
    recall = (pred[y_val == 1] == 1).float().mean().item()
    accuracy = (pred == y_val).float().mean().item()
    return {
        "ok": recall < 0.2,
        "check": "fraud recall (see healthy_near_class_imbalance_pos_weight_fraud)",
        "recall": recall,
        "accuracy": accuracy,
        "majority_share": 1 - y_val.mean().item(),
    }
