"""Fault: to double a small Fashion-MNIST slice, each image is augmented offline into two copies (random
horizontal flip with p=0.5) before the 80/20 split; a copy that was not flipped is identical to its twin, so
about 40% of the validation images are exact copies of training images (most others are mirror images), and
validation accuracy overstates the accuracy on the real test images.
Source: https://datascience.stackexchange.com/questions/106514/should-text-augmentation-take-place-before-or-after-splitting-the-dataset
- augmented every sample 10x before splitting into train and test; the answer: augmented copies in the test set
are a data leak and overestimate performance."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": ["train-val-overlap"], "also_ok": []}


def random_flip(images, p=0.5):
    flip = torch.rand(len(images)) < p
    out = images.clone()
    out[flip] = images[flip].flip(-1)
    return out


def accuracy(model, X, y):
    with torch.no_grad():
        return (model(X).argmax(1) == y).float().mean().item()


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(1000)
    images = images.float() / 255
    augmented = torch.cat([random_flip(images), random_flip(images)])
    targets = torch.cat([labels, labels])
    perm = torch.randperm(len(augmented))
    train_idx, val_idx = perm[:1600], perm[1600:]
    X_train, y_train = augmented[train_idx].view(-1, 784), targets[train_idx]
    X_val, y_val = augmented[val_idx].view(-1, 784), targets[val_idx]
    test_images, y_test = fashion_mnist(1000, test=True)
    X_test = test_images.float().view(-1, 784) / 255
    loader = DataLoader(TensorDataset(X_train, y_train), batch_size=64, shuffle=True)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for epoch in range(15):
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        with torch.no_grad():
            val_loss = loss_fn(model(X_val), y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
        print(f"epoch {epoch}: val loss {val_loss:.3f}, val accuracy {accuracy(model, X_val, y_val):.3f}")
    if doctor:
        return doctor.findings
    train_keys = {tuple(r.tolist()) for r in X_train}
    copies = sum(tuple(r.tolist()) in train_keys for r in X_val) / len(X_val)
    with torch.no_grad():
        test_loss = loss_fn(model(X_test), y_test).item()
    val_acc, test_acc = accuracy(model, X_val, y_val), accuracy(model, X_test, y_test)
    return {
        "ok": val_acc > test_acc + 0.08 and test_loss > 1.5 * val_loss,
        "check": "validation accuracy and loss much better than on the clean test images",
        "val_acc": val_acc,
        "test_acc": test_acc,
        "val_loss": val_loss,
        "test_loss": test_loss,
        "val_rows_in_train": copies,
    }
