"""Fault: plain linear regression on an input with a spread of about 10, full-batch SGD at lr=0.02: the step
overshoots the minimum each epoch, the weight oscillates around it with a growing amplitude and the MSE
grows by orders of magnitude instead of falling to the noise level (9).
Source: https://github.com/pytorch/pytorch/issues/23142 - "Simple Linear Regression under PyTorch diverges":
X = randn*10, SGD lr=0.01, the loss climbs 36, 43, 53, 65, 80, ... every epoch."""

import torch
from torch import nn

EXPECT = {"codes": ["lr-too-high"], "also_ok": ["nonfinite-loss"]}


class LR(nn.Module):
    def __init__(self, input_size, output_size):
        super().__init__()
        self.linear = nn.Linear(input_size, output_size)

    def forward(self, x):
        return self.linear(x)


def train(tw=None):
    torch.manual_seed(1)
    X = torch.randn(100, 1) * 10
    y = X + 3 * torch.randn(100, 1)
    model = LR(1, 1)
    criterion = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    losses = []
    for _epoch in range(60):
        y_pred = model.forward(X)
        loss = criterion(y_pred, y)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if doctor:
            doctor.record(loss, target=y)
    if doctor:
        return doctor.findings
    final = losses[-1]
    return {
        "ok": not final < 100 * losses[0],
        "check": "final MSE more than 100x the first (noise level is 9)",
        "first_loss": losses[0],
        "final_loss": final,
    }
