"""Fault: the CNN's forward ends with F.softmax(x, dim=1) "to get probabilities", then CrossEntropyLoss is
applied; the loss can never fall below log(1 + 9/e) = 1.46 and the gradients shrink as the model grows
confident, so the model stays far from the accuracy it reaches on logits.
Source: https://github.com/NaJaeMin92/pytorch-DANN/issues/7 - "The softmax layer makes models hard to train ...
try to remove the last softmax layer"."""

import torch
import torch.nn.functional as F
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn

EXPECT = {"codes": ["softmax-into-cross-entropy"], "also_ok": []}


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.softmax(self.fc(x.flatten(1)), dim=1)


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(1200)
    X_train, y_train = (images.float().unsqueeze(1) / 255 - 0.29) / 0.35, labels
    images, labels = fashion_mnist(500, test=True)
    X_val, y_val = (images.float().unsqueeze(1) / 255 - 0.29) / 0.35, labels
    model = CNN()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(3):
        model.train()
        perm = torch.randperm(len(X_train))
        for i in range(0, len(X_train), 64):
            idx = perm[i : i + 64]
            loss = loss_fn(model(X_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y_train[idx])
        model.eval()
        with torch.no_grad():
            out = model(X_val)
            val_loss = loss_fn(out, y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    accuracy = (out.argmax(1) == y_val).float().mean().item()
    return {
        "ok": accuracy < 0.65,
        "check": "validation accuracy after 3 epochs (returning logits: 0.75)",
        "accuracy": accuracy,
        "val_loss": val_loss,
        "loss_floor": 1.46,
    }
