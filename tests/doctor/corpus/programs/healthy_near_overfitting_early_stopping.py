"""Healthy near miss of overfitting: the same wide MLP on 200 noisy rows, but with early stopping (patience 3 on
the validation loss) that restores the best weights; training ends a few epochs after the best validation loss.
Source: https://datarekha.com/interview/deep-learning/overfitting-train-val-gap/ - "Early stopping: stop before
memorisation takes over"."""

import copy

import torch
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


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
    best_loss, best_state, best_epoch, patience = float("inf"), None, 0, 3
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
        if doctor:
            doctor.record(val_loss=val_loss)
        print(f"epoch {epoch}: val loss {val_loss:.3f}")
        if val_loss < best_loss:
            best_loss, best_state, best_epoch = val_loss, copy.deepcopy(model.state_dict()), epoch
        elif epoch - best_epoch >= patience:
            print(f"early stopping at epoch {epoch}, best epoch {best_epoch}")
            break
    model.load_state_dict(best_state)
    if doctor:
        return doctor.findings
    with torch.no_grad():
        accuracy = (model(X_val).argmax(1) == y_val).float().mean().item()
    return {
        "ok": accuracy > 0.75 and epoch - best_epoch <= patience,
        "check": "stopped at the best epoch, accuracy > 0.75",
        "accuracy": accuracy,
        "best_val_loss": best_loss,
        "best_epoch": best_epoch,
        "stopped_epoch": epoch,
    }
