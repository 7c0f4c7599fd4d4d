"""Healthy near miss of eval-mode-missing: the same BatchNorm CNN with the validation set stored class by class
and not shuffled, but validated under model.eval() (and model.train() before each epoch), so BatchNorm uses its
running statistics and single-class validation batches do no harm.
Source: https://discuss.pytorch.org/t/what-does-model-eval-do-for-batchnorm-layer/7146 - "When evaluating you
should use eval() mode and then batch size doesnt matter"."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
        self.conv2 = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Linear(16 * 7 * 7, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.head(self.conv2(self.conv1(x)).flatten(1))


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
    images, labels = fashion_mnist(800)
    val_images, val_labels = fashion_mnist(400, test=True)
    order = torch.argsort(val_labels, stable=True)  # the validation folder, class by class
    val_ds = TensorDataset(val_images[order].unsqueeze(1).float() / 255, val_labels[order])
    train_ds = TensorDataset(images.unsqueeze(1).float() / 255, labels)
    train_loader = DataLoader(train_ds, batch_size=32, shuffle=True)
    val_loader = DataLoader(val_ds, batch_size=40, shuffle=False)
    model = Net()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for epoch in range(3):
        model.train()
        for xb, yb in train_loader:
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        model.eval()
        val_loss, val_acc = evaluate(model, val_loader, loss_fn)
        if doctor:
            doctor.record(val_loss=val_loss)
        print(f"epoch {epoch}: val loss {val_loss:.3f}, val accuracy {val_acc:.3f}")
    if doctor:
        return doctor.findings
    return {"ok": val_acc > 0.75, "check": "validation accuracy above 0.75", "val_acc": val_acc, "val_loss": val_loss}
