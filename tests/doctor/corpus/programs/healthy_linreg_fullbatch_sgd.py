"""Healthy: the classic first PyTorch program, fitting y = 2x + 1 with nn.Linear(1, 1), MSELoss and full-batch
SGD(lr=0.01) for 400 epochs on a handful of points; it recovers the slope and intercept and then keeps going at
a loss of ~0, long after convergence.
Source: https://huggingface.co/datasets/nvidia/Nemotron-CC-Math-v1 - "Simple Linear Regression using PyTorch":
xs = [-2..4], ys = 2x + 1, nn.Sequential(nn.Linear(1, 1)), MSELoss, SGD(lr=0.01), 400 epochs, predicts ~31 at 15."""

import torch

EXPECT = {"codes": [], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    xs = torch.tensor([[-2.0], [-1.0], [0.0], [1.0], [2.0], [3.0], [4.0]])
    ys = torch.tensor([[-3.0], [-1.0], [1.0], [3.0], [5.0], [7.0], [9.0]])
    model = torch.nn.Sequential(torch.nn.Linear(1, 1))
    loss_fn = torch.nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _ in range(400):
        ys_pred = model(xs)
        loss = loss_fn(ys_pred, ys)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if doctor:
            doctor.record(loss, target=ys)
    if doctor:
        return doctor.findings
    prediction = model(torch.tensor([[15.0]])).item()
    return {
        "ok": abs(prediction - 31) < 0.2,
        "check": "prediction at x=15 within 0.2 of 31",
        "prediction": prediction,
        "loss": loss.item(),
    }
