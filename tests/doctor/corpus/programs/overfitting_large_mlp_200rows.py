"""Fault: a 2x256 MLP is trained with Adam for 80 epochs on 200 rows of a noisy tabular task; it memorizes the
training rows (training loss near 0) while the validation loss climbs to several times its best value.
Source: https://discuss.pytorch.org/t/why-is-the-validation-loss-increasing/68683 - "my training loss decreases
... the validation loss keeps on having an increasing trend over the 100 epochs"."""

import torch
from torch import nn

EXPECT = {"codes": ["overfitting"], "also_ok": []}


def make_rows(n, w):
    X = torch.randn(n, 20)
    y = ((X @ w) + 1.0 * torch.randn(n) > 0).long()
    return X, y


def train(tw=None):
    torch.manual_seed(0)
    w = torch.randn(20) / 3
    X_train, y_train = make_rows(200, w)
    X_val, y_val = make_rows(300, w)
    model = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 2))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    history = []
    for epoch in range(80):
        model.train()
        perm = torch.randperm(200)
        for i in range(0, 200, 50):
            idx = perm[i : i + 50]
            loss = loss_fn(model(X_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y_train[idx])
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(X_val), y_val).item()
        history.append(val_loss)
        if doctor:
            doctor.record(val_loss=val_loss)
        if epoch % 10 == 0:
            print(f"epoch {epoch}: train loss {loss.item():.4f}, val loss {val_loss:.3f}")
    if doctor:
        return doctor.findings
    best = min(history)
    return {
        "ok": val_loss > 3 * best,
        "check": "final validation loss over 3x its best",
        "val_loss": val_loss,
        "best_val_loss": best,
        "best_epoch": history.index(best),
        "train_loss": loss.item(),
    }
