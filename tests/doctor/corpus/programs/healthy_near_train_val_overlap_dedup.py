"""Healthy near miss of train-val-overlap: the calibration table was read twice and concatenated, but the rows
are de-duplicated (torch.unique) before the random 80/20 split, so validation holds only unseen rows and its MSE
matches the MSE on a clean held-out file.
Source: https://jmwebsoluciones.com/en/blog/fugas-de-datos-entre-train-y-test - "The minimum check is to look
for identical rows across splits"; de-duplicate before splitting."""

import torch
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


def readings(n, W):
    X = torch.rand(n, 8) * 2 - 1
    Y = torch.sin(X @ W) + 0.3 * torch.randn(n, 3)
    return X, Y


def train(tw=None):
    torch.manual_seed(0)
    W = torch.randn(8, 3)
    part1 = readings(500, W)
    table = torch.cat([torch.cat(part1, 1), torch.cat(part1, 1)])  # the same file read twice
    table = torch.unique(table, dim=0)  # drop duplicate rows before splitting
    table = table[torch.randperm(len(table))]
    X, Y = table[:, :8], table[:, 8:]
    X_train, Y_train, X_val, Y_val = X[:400], Y[:400], X[400:], Y[400:]
    X_test, Y_test = readings(500, W)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for epoch in range(30):
        model.train()
        order = torch.randperm(400)
        for i in range(0, 400, 40):
            idx = order[i : i + 40]
            loss = loss_fn(model(X_train[idx]), Y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=Y_train[idx])
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(X_val), Y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
        print(f"epoch {epoch}: val mse {val_loss:.4f}")
    if doctor:
        return doctor.findings
    with torch.no_grad():
        test_loss = loss_fn(model(X_test), Y_test).item()
    return {
        "ok": abs(val_loss - test_loss) < 0.25 * test_loss and test_loss < 0.2,
        "check": "validation MSE matches the clean held-out MSE, and the fit is good",
        "val_mse": val_loss,
        "test_mse": test_loss,
        "noise_mse": 0.09,
    }
