"""Fault: a Fashion-MNIST CNN whose classifier head ends with nn.Linear(..., 10) followed by nn.ReLU(), so the
logits go through a ReLU before CrossEntropyLoss; output units pushed below zero for every image die (zero output,
zero gradient), and those classes are never predicted again (recall 0; 0.59 accuracy, 0.65 without the ReLU).
Source: https://community.deeplearning.ai/t/can-relu-activation-be-used-in-the-last-layer-of-a-neural-network/549422
- "Can 'relu' activation be used in the last layer of a neural network?" - "No, do not use ReLU in the output
layer."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn

EXPECT = {"codes": ["dead-relu"], "also_ok": []}


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 7 * 7, 10), nn.ReLU())

    def forward(self, x):
        return self.classifier(self.features(x))


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(1500)
    X = (images.float() / 255).unsqueeze(1)
    X_train, y_train, X_val, y_val = X[:1200], labels[:1200], X[1200:], labels[1200:]
    model = SmallCNN()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(3):
        model.train()
        perm = torch.randperm(1200)
        for i in range(0, 1200, 64):
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
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    dead = (out == 0).all(0)
    dead_recall = (out.argmax(1)[dead[y_val]] == y_val[dead[y_val]]).float().mean().item() if dead.any() else None
    return {
        "ok": int(dead.sum()) >= 2 and dead_recall == 0,
        "check": "output units dead for every image: their classes get recall 0",
        "dead_classes": int(dead.sum()),
        "dead_class_recall": dead_recall,
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
