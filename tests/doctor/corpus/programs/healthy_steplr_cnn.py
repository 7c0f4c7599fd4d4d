"""Healthy: a small CNN on a normalised Fashion-MNIST slice, SGD + momentum with StepLR(step_size=3, gamma=0.1)
stepped once per epoch: the lr drops tenfold twice and the loss drops with it.
Source: https://docs.pytorch.org/docs/main/generated/torch.optim.lr_scheduler.StepLR.html - StepLR "decays the
learning rate of each parameter group by gamma every step_size epochs"; scheduler.step() after validate()."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(1500)
    x = (images.float().div(255).sub(0.2860).div(0.3530)).unsqueeze(1)
    train_loader = DataLoader(TensorDataset(x[:1200], labels[:1200]), batch_size=32, shuffle=True)
    x_val, y_val = x[1200:], labels[1200:]

    model = nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 12, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(12 * 7 * 7, 10),
    )
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.1)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _ in range(6):
        model.train()
        for images_b, labels_b in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(images_b), labels_b)
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=labels_b)
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        scheduler.step()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy > 0.78,
        "check": "validation accuracy above 0.78 (Fashion-MNIST, 1200 training images)",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
