"""Fault: the training loop never calls optimizer.zero_grad(), so every backward() adds its gradient to all
the earlier ones; the SGD step grows with the step count, overshoots, and the Fashion-MNIST MLP ends up far
below the accuracy the same loop reaches with zero_grad.
Source: https://github.com/Miraclelucy/dive_into_deep_learning/issues/6 - "without optimizer.zero_grad() the
accuracy gets lower and lower as it trains, down to 10%"."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": ["missing-zero-grad"], "also_ok": ["lr-too-high", "nonfinite-loss", "dead-relu", "not-learning"]}


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(2000)
    X = images.reshape(-1, 784).float() / 255.0
    train_loader = DataLoader(TensorDataset(X[:1600], labels[:1600]), batch_size=32, shuffle=True)
    test_loader = DataLoader(TensorDataset(X[1600:], labels[1600:]), batch_size=200)
    net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    loss = nn.CrossEntropyLoss()
    trainer = torch.optim.SGD(net.parameters(), lr=0.1)
    doctor = tw.watch(net, trainer, loss_fn=loss) if tw else None
    for _epoch in range(5):
        net.train()
        for X_batch, y_batch in train_loader:
            batch_loss = loss(net(X_batch), y_batch)
            batch_loss.backward()
            trainer.step()
            if doctor:
                doctor.record(batch_loss, target=y_batch)
        net.eval()
        correct, total, test_loss = 0, 0, 0.0
        with torch.no_grad():
            for X_batch, y_batch in test_loader:
                out = net(X_batch)
                test_loss += loss(out, y_batch).item() * len(y_batch)
                correct += (out.argmax(1) == y_batch).sum().item()
                total += len(y_batch)
        if doctor:
            doctor.record(val_loss=test_loss / total)
    if doctor:
        return doctor.findings
    accuracy = correct / total
    return {
        "ok": accuracy < 0.5,
        "check": "test accuracy below 0.5 (with zero_grad the same loop reaches 0.77)",
        "accuracy": accuracy,
        "test_loss": test_loss / total,
    }
