"""Fault: an MLP with BatchNorm1d is validated in batches of 4 rows without model.eval(); BatchNorm then
normalizes each 4-row batch with its own mean and variance (and keeps updating its running statistics with them),
so the validation loss is far worse than the same weights give in eval mode and looks like the model got worse.
Source: https://github.com/layumi/Person_reID_baseline_pytorch/issues/218 - a BatchNorm model run on batches of
1-10 at inference; the answer: without eval() batchnorm uses the mean and std of the small batch itself."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": ["eval-mode-missing"], "also_ok": []}


def make_data(n, centers):
    y = torch.randint(0, 4, (n,))
    return centers[y] + torch.randn(n, 16), y


def evaluate(model, loader, loss_fn):
    total, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for xb, yb in loader:
            out = model(xb)
            total += loss_fn(out, yb).item() * len(yb)
            correct += (out.argmax(1) == yb).sum().item()
            count += len(yb)
    return total / count, correct / count


def train(tw=None):
    torch.manual_seed(0)
    centers = 1.2 * torch.randn(4, 16) + 1.0
    train_loader = DataLoader(TensorDataset(*make_data(1200, centers)), batch_size=64, shuffle=True)
    val_loader = DataLoader(TensorDataset(*make_data(400, centers)), batch_size=4)
    model = nn.Sequential(
        nn.Linear(16, 64),
        nn.BatchNorm1d(64),
        nn.ReLU(),
        nn.Linear(64, 64),
        nn.BatchNorm1d(64),
        nn.ReLU(),
        nn.Linear(64, 4),
    )
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for epoch in range(6):
        model.train()
        for xb, yb in train_loader:
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        val_loss, val_acc = evaluate(model, val_loader, loss_fn)  # no model.eval()
        if doctor:
            doctor.record(val_loss=val_loss)
        print(f"epoch {epoch}: train loss {loss.item():.3f}, val loss {val_loss:.3f}, val accuracy {val_acc:.3f}")
    if doctor:
        return doctor.findings
    model.eval()
    true_loss, true_acc = evaluate(model, val_loader, loss_fn)
    return {
        "ok": val_loss > 2 * true_loss and val_acc < true_acc - 0.05,
        "check": "validation in train mode far worse than the same weights in eval mode",
        "val_loss": val_loss,
        "eval_mode_val_loss": true_loss,
        "val_acc": val_acc,
        "eval_mode_val_acc": true_acc,
    }
