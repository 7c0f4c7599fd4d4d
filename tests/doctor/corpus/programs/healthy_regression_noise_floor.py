"""Healthy: a regression on noisy measurements (noise std 0.5) that reaches the noise floor (MSE ~0.25) within a
few epochs and then stays flat for the remaining 40 epochs; the plateau is the irreducible noise, not a stall.
Source: https://www.rohan-paul.com/p/ml-interview-q-series-decoding-dnn - "after the 27th epoch the loss
plateaus, explain why": one cause is that the model has already learned what the data allows."""

import torch
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    x = torch.rand(800, 3) * 2 - 1
    true_w = torch.tensor([[1.5], [-2.0], [0.7]])
    clean = x @ true_w + 0.3
    y = clean + 0.5 * torch.randn(800, 1)
    floor = ((y[640:] - clean[640:]) ** 2).mean().item()  # the MSE of the true function on the val rows
    x_train, y_train, x_val, y_val = x[:640], y[:640], x[640:], y[640:]

    model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for epoch in range(50):
        model.train()
        perm = torch.randperm(640)
        for i in range(0, 640, 32):
            idx = perm[i : i + 32]
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y_train[idx])
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(x_val), y_val).item()
        if epoch == 5:
            early = val_loss
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": val_loss < 1.1 * floor and abs(val_loss - early) < 0.1 * floor,
        "check": "val MSE within 10% of the noise floor, flat since epoch 5",
        "val_loss": val_loss,
        "epoch5": early,
        "floor": floor,
    }
