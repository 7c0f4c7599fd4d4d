"""Fault: a Fashion-MNIST CNN initialized with nn.init.constant_(m.weight, 0.05) on every Conv2d and Linear layer
(and zero biases); every filter of a layer is the same box filter, so all channels compute the same feature, get
the same gradient and stay copies of each other: 16 channels work like one and accuracy stays at chance
(the same CNN with its default init: 0.58).
Source: https://pages.dogdog.run/machine_learning/weight_initialization.html - weights initialized to the same value
(identical columns): "all neurons keep the same output, and the neurons lose their meaning"."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn

EXPECT = {"codes": ["bad-init"], "also_ok": []}


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * 7 * 7, 64)
        self.fc2 = nn.Linear(64, 10)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.constant_(m.weight, 0.05)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(1500)
    X = ((images.float() / 255 - 0.286) / 0.353).unsqueeze(1)
    X_train, y_train, X_val, y_val = X[:1200], labels[:1200], X[1200:], labels[1200:]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X_train, y_train), batch_size=64, shuffle=True)
    model = CNN()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(3):
        model.train()
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        model.eval()
        with torch.no_grad():
            out = model(X_val)
            val_loss = loss_fn(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    w = model.conv2.weight
    copies = bool(torch.allclose(w, w[:1].expand_as(w)))
    return {
        "ok": copies and accuracy < 0.6,
        "check": "conv filters still identical, low accuracy",
        "filters_identical": copies,
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
