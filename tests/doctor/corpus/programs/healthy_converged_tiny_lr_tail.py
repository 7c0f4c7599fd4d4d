"""Healthy: a run that converged early and keeps training under a MultiStepLR schedule whose last milestones
take the lr down to 1e-5 of its start; the final epochs barely move the weights, which is the schedule's intent.
Source: https://pytorch.org/docs/main/generated/torch.optim.lr_scheduler.MultiStepLR.html - MultiStepLR
"decays the learning rate of each parameter group by gamma once the number of epoch reaches one of the
milestones", e.g. lr 0.05 -> 0.005 -> 0.0005."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    centers = 2 * torch.randn(4, 10)
    y = torch.randint(0, 4, (1500,))
    X = centers[y] + torch.randn(1500, 10)
    loader = DataLoader(TensorDataset(X[:1200], y[:1200]), batch_size=64, shuffle=True)
    X_val, y_val = X[1200:], y[1200:]

    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[6, 10, 13, 16, 18], gamma=0.1)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _ in range(22):
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        model.eval()
        with torch.no_grad():
            out = model(X_val)
            val_loss = criterion(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        scheduler.step()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy > 0.97,
        "check": "validation accuracy above 0.97",
        "accuracy": accuracy,
        "val_loss": val_loss,
        "final_lr": optimizer.param_groups[0]["lr"],
    }
