"""Fault: to balance a 10:1 fraud dataset the minority rows are duplicated four more times before the random
train/validation split, so about a third of the validation rows are exact copies of training rows; the network
memorizes the duplicated frauds and the validation recall of fraud is far above the recall on a clean test set.
Source: https://bitsfolio.com/smote-data-leakage-validation-set/ - "running SMOTE before splitting your data: the
synthetic samples bleed into your validation fold, and every metric you computed is optimistic"."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

EXPECT = {"codes": ["train-val-overlap"], "also_ok": []}


def transactions(n):
    X = torch.randn(n, 12)
    score = X[:, 0] + 0.8 * X[:, 1] - 0.6 * X[:, 2] + 0.5 * X[:, 3] * X[:, 4]
    fraud = (score + 0.9 * torch.randn(n) > 2.3).long()
    return X, fraud


def recall(model, X, y):
    with torch.no_grad():
        pred = model(X).argmax(1)
    return (pred[y == 1] == 1).float().mean().item()


def train(tw=None):
    torch.manual_seed(0)
    X, y = transactions(1500)
    X_test, y_test = transactions(1500)
    fraud = y == 1
    X_all = torch.cat([X] + [X[fraud]] * 4)  # oversample the minority class 5x
    y_all = torch.cat([y] + [y[fraud]] * 4)
    train_ds, val_ds = random_split(TensorDataset(X_all, y_all), [0.8, 0.2])
    X_val, y_val = val_ds[:]
    loader = DataLoader(train_ds, batch_size=32, shuffle=True)
    model = nn.Sequential(nn.Linear(12, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 2))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for epoch in range(12):
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
            val_loss = loss_fn(model(X_val), y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
        print(f"epoch {epoch}: val loss {val_loss:.3f}, val fraud recall {recall(model, X_val, y_val):.3f}")
    if doctor:
        return doctor.findings
    train_keys = {tuple(r.tolist()) for r in train_ds[:][0]}
    copies = sum(tuple(r.tolist()) in train_keys for r in X_val) / len(X_val)
    val_recall, test_recall = recall(model, X_val, y_val), recall(model, X_test, y_test)
    return {
        "ok": val_recall > test_recall + 0.25,
        "check": "fraud recall on validation far above a clean test set",
        "val_recall": val_recall,
        "test_recall": test_recall,
        "val_rows_in_train": copies,
    }
