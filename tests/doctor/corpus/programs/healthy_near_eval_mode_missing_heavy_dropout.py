"""Healthy near miss of eval-mode-missing and overfitting: an MLP with heavy dropout (0.5) is validated under
model.eval(); the validation loss sits below the training loss, which is normal with dropout (training losses
are measured with half the units dropped), not a bug.
Source: https://exchangetuts.com/validation-and-testing-accuracy-widely-different-1640288643689795 - "when
evaluating validation accuracy drop out is NOT active so the model is actually more accurate"."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(2000)
    val_images, val_labels = fashion_mnist(500, test=True)
    X, X_val = images.view(-1, 784).float() / 255, val_images.view(-1, 784).float() / 255
    loader = DataLoader(TensorDataset(X, labels), batch_size=64, shuffle=True)
    model = nn.Sequential(
        nn.Linear(784, 256),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(256, 128),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(128, 10),
    )
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for epoch in range(6):
        model.train()
        running = 0.0
        for xb, yb in loader:
            loss = criterion(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running += loss.item()
            if doctor:
                doctor.record(loss, target=yb)
        train_loss = running / len(loader)
        model.eval()
        with torch.no_grad():
            out = model(X_val)
            val_loss = criterion(out, val_labels).item()
            accuracy = (out.argmax(1) == val_labels).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
        print(f"epoch {epoch}: train loss {train_loss:.3f}, val loss {val_loss:.3f}, accuracy {accuracy:.3f}")
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy > 0.75 and val_loss < train_loss,
        "check": "accuracy > 0.75 with val loss below train loss",
        "accuracy": accuracy,
        "val_loss": val_loss,
        "train_loss": train_loss,
    }
