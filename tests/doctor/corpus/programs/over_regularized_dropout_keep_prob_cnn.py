"""Fault: the person ported a TensorFlow 1 CNN whose dropout took keep_prob=0.9 and wrote nn.Dropout(0.9) in
PyTorch, where p is the probability of dropping: 90% of the units are zeroed on every training step, the network
can hardly fit the training data and ends up far below the same CNN with p=0.1.
Source: https://github.com/hassony2/kinetics_i3d_pytorch/issues/6 - "In the code it says dropout_keep_prob=1
but in the PyTorch documentation p is the probability of an element to be zeroed"."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": ["over-regularized"], "also_ok": []}

keep_prob = 0.9


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.drop1 = nn.Dropout(keep_prob)
        self.fc1 = nn.Linear(16 * 7 * 7, 64)
        self.drop2 = nn.Dropout(keep_prob)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = self.drop1(x.flatten(1))
        x = self.drop2(torch.relu(self.fc1(x)))
        return self.fc2(x)


def train(tw=None):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    images, labels = fashion_mnist(1500)
    x = (images.float() / 255.0).unsqueeze(1)
    loader = DataLoader(TensorDataset(x[:1200], labels[:1200]), batch_size=32, shuffle=True)
    x_val, y_val = x[1200:], labels[1200:]
    model = CNN()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _epoch in range(3):
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy < 0.55,
        "check": "validation accuracy below 0.55 (nn.Dropout(0.1): 0.72)",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
