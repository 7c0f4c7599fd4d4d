"""Fault: every Linear bias initialized to -1 "so that the ReLU features start sparse" (advice meant for gates,
copied into a plain MLP); on Fashion-MNIST pixels in [0, 1] the pre-activations are about N(-1, 0.25), every
hidden ReLU outputs 0 for every image, no gradient reaches the hidden layers, and accuracy stays at chance.
Source: https://stats.stackexchange.com/questions/450100/understanding-relu-does-this-unlucky-intialized-network-assign-all-instances
- a ReLU unit initialized so that it outputs 0 for all training inputs gets no gradient and can't recover."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn

EXPECT = {"codes": ["dead-relu"], "also_ok": ["not-learning"]}


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(784, 128)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(128, 64)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(64, 10)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, -1.0)

    def forward(self, x):
        x = self.relu1(self.fc1(self.flatten(x)))
        x = self.relu2(self.fc2(x))
        return self.fc3(x)


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(2000)
    X = images.float() / 255
    X_train, y_train, X_val, y_val = X[:1600], labels[:1600], X[1600:], labels[1600:]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X_train, y_train), batch_size=64, shuffle=True)
    model = MLP()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
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
            dead = (model.relu1(model.fc1(model.flatten(X_val))) == 0).all(0).float().mean().item()
            out = model(X_val)
            val_loss = loss_fn(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy < 0.3 and dead > 0.9,
        "check": "first-layer ReLUs dead, accuracy near chance",
        "dead_share": dead,
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
