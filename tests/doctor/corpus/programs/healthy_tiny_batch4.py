"""Healthy: a small classifier trained with batch_size=4 (a memory-starved setup copied from a tutorial); the
per-step loss is very noisy, but the model learns and the epoch averages fall steadily.
Source: https://discuss.pytorch.org/t/why-does-use-of-mini-batches-have-such-effect-on-my-classifier/84394 -
"why does use of mini-batches have such effect on my classifier?": with small batches the loss curve is noisy;
"the larger the batch size, the less noise the parameter updates will include"."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    centers = torch.randn(4, 8) * 1.2
    y = torch.randint(0, 4, (700,))
    X = centers[y] + 0.8 * torch.randn(700, 8)
    trainloader = DataLoader(TensorDataset(X[:500], y[:500]), batch_size=4, shuffle=True)
    X_val, y_val = X[500:], y[500:]

    net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    doctor = tw.watch(net, optimizer, loss_fn=criterion) if tw else None
    for _ in range(3):
        net.train()
        for inputs, labels in trainloader:
            optimizer.zero_grad()
            outputs = net(inputs)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=labels)
        net.eval()
        with torch.no_grad():
            out = net(X_val)
            val_loss = criterion(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {"ok": accuracy > 0.9, "check": "validation accuracy above 0.9", "accuracy": accuracy, "val_loss": val_loss}
