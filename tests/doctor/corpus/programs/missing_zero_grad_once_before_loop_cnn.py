"""Fault: optimizer.zero_grad() is called once, before the epoch loop, instead of once per batch; from then on
each batch's gradient is added to the sum of all earlier ones, so the small CNN's Adam steps keep pointing
where the first batches pointed and the accuracy falls far short of the per-batch version.
Source: https://github.com/salesforce/corr_based_prediction/issues/1 - "the zero_grad is outside the training
stage, the gradients will be accumulated along the training data"."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": ["missing-zero-grad"], "also_ok": ["lr-too-high", "dead-relu", "nonfinite-loss"]}


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc1 = nn.Linear(16 * 7 * 7, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


def train(tw=None):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    images, labels = fashion_mnist(1500)
    x = ((images.float() / 255.0 - 0.5) / 0.5).unsqueeze(1)
    trainloader = DataLoader(TensorDataset(x[:1200], labels[:1200]), batch_size=32, shuffle=True)
    x_val, y_val = x[1200:], labels[1200:]
    net = Net()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    doctor = tw.watch(net, optimizer, loss_fn=criterion) if tw else None
    optimizer.zero_grad()
    for _epoch in range(3):
        net.train()
        for inputs, targets in trainloader:
            loss = criterion(net(inputs), targets)
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=targets)
        net.eval()
        with torch.no_grad():
            out = net(x_val)
            val_loss = criterion(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy < 0.55,
        "check": "validation accuracy below 0.55 (zero_grad per batch reaches 0.7)",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
