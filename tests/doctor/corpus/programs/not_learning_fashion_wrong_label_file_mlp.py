"""Fault: the training images were paired with the wrong label file (the t10k labels next to the train images),
so the labels are unrelated to the inputs: the loss stays at the chance level ln(10) epoch after epoch while the
gradients are healthy and the learning rate is reasonable, and validation accuracy is 10%.
Source: https://github.com/fyu/dilation/issues/33 - "Image and label mismatch while training": the log shows
the network getting images paired with another image's label file."""

import math

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": ["not-learning"], "also_ok": ["dead-relu"]}


def train(tw=None):
    torch.manual_seed(0)
    train_images, _ = fashion_mnist(1500)
    _, train_labels = fashion_mnist(1500, test=True)  # the wrong file: t10k-labels
    X = train_images.reshape(-1, 784).float() / 255.0
    dataset = TensorDataset(X[:1200], train_labels[:1200])
    loader = DataLoader(dataset, batch_size=16, shuffle=True)
    test_images, test_labels = fashion_mnist(300, test=True)
    X_test = test_images.reshape(-1, 784).float() / 255.0
    model = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    epoch_losses = []
    for _epoch in range(7):
        model.train()
        total = 0.0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item()
            if doctor:
                doctor.record(loss, target=yb)
        epoch_losses.append(total / len(loader))
        model.eval()
        with torch.no_grad():
            out = model(X_test)
            test_loss = loss_fn(out, test_labels).item()
            accuracy = (out.argmax(1) == test_labels).float().mean().item()
        if doctor:
            doctor.record(val_loss=test_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy < 0.2 and epoch_losses[-1] > 0.9 * math.log(10),
        "check": "test accuracy at chance and the training loss still near ln(10) after 7 epochs",
        "accuracy": accuracy,
        "train_loss_per_epoch": [round(v, 3) for v in epoch_losses],
        "chance_loss": math.log(10),
    }
