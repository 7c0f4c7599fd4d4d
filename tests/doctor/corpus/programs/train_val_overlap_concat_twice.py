"""Fault: the sensor-calibration table came in two files, but the same file was read twice and concatenated
(torch.cat([part1, part1])) before the random 80/20 split, so most validation rows are exact copies of training
rows; the multi-output regression MLP memorizes their noise and its validation MSE is far below the MSE on a
clean held-out file.
Source: https://jmwebsoluciones.com/en/blog/fugas-de-datos-entre-train-y-test - "It is a concat of two files that
already overlapped ... the model already saw the answer, so the metric goes up"."""

import torch
from torch import nn

EXPECT = {"codes": ["train-val-overlap"], "also_ok": ["overfitting"]}


def readings(n, W):
    X = torch.rand(n, 8) * 2 - 1
    Y = torch.sin(X @ W) + 0.3 * torch.randn(n, 3)
    return X, Y


def train(tw=None):
    torch.manual_seed(0)
    W = torch.randn(8, 3)
    part1 = readings(500, W)
    X = torch.cat([part1[0], part1[0]])  # meant: part1 and part2
    Y = torch.cat([part1[1], part1[1]])
    perm = torch.randperm(len(X))
    X_train, Y_train, X_val, Y_val = X[perm[:800]], Y[perm[:800]], X[perm[800:]], Y[perm[800:]]
    X_test, Y_test = readings(500, W)
    model = nn.Sequential(nn.Linear(8, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 3))
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for epoch in range(25):
        model.train()
        order = torch.randperm(800)
        for i in range(0, 800, 40):
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
    train_keys = {tuple(r.tolist()) for r in X_train}
    copies = sum(tuple(r.tolist()) in train_keys for r in X_val) / len(X_val)
    return {
        "ok": test_loss > 1.5 * val_loss,
        "check": "validation MSE far below the MSE on a clean held-out file",
        "val_mse": val_loss,
        "test_mse": test_loss,
        "noise_mse": 0.09,
        "val_rows_in_train": copies,
    }
