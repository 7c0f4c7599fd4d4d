"""Fault: the images were collected class by class (as an ImageFolder-style loader lists them) and the DataLoader
uses shuffle=False, so every epoch ends with long runs of the last classes; the MLP forgets the earlier classes
and validation accuracy stays far below what the same script reaches with shuffle=True (~0.8).
Source: https://coderoad.ru/54354465/Влияние-использования-переключения-данных-в-загрузчике-данных-Pytorch -
"with shuffle=False the validation accuracy was 2-3% for about 10 epochs; with shuffle=True it jumped to 70%"."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": ["unshuffled-data"], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(2000)
    val_images, y_val = fashion_mnist(500, test=True)
    X, X_val = images.view(-1, 784).float() / 255, val_images.view(-1, 784).float() / 255
    # one folder per class: gather the images class by class
    order = torch.cat([torch.nonzero(labels == c).squeeze(1) for c in range(10)])
    X_train, y_train = X[order], labels[order]
    train_loader = DataLoader(TensorDataset(X_train, y_train), batch_size=32, shuffle=False)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for epoch in range(5):
        for xb, yb in train_loader:
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        with torch.no_grad():
            out = model(X_val)
            val_loss = loss_fn(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
        print(f"epoch {epoch}: val loss {val_loss:.3f}, accuracy {accuracy:.3f}")
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy < 0.5,
        "check": "validation accuracy far below the shuffled run's ~0.8",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
