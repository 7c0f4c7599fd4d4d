"""Fault: a 12-layer MLP with sigmoid activations and PyTorch's default init on Fashion-MNIST; each sigmoid
passes back at most a quarter of the gradient, so the first layers get gradients many orders of magnitude below the
last and the network stays near chance while a ReLU version of it with kaiming init
learns (0.6 after the same 3 epochs).
Source: https://github.com/juebrauer/code_jb - "The Vanishing Gradients Problem" notebook: a 20-layer nn.Sigmoid
network whose first layers get a mean |grad| of 0.0000000000."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn

EXPECT = {"codes": ["vanishing-gradients"], "also_ok": ["not-learning"]}


class DeepSigmoidNet(nn.Module):
    def __init__(self, depth=12, width=64):
        super().__init__()
        layers = [nn.Flatten(), nn.Linear(784, width), nn.Sigmoid()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.Sigmoid()]
        layers.append(nn.Linear(width, 10))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(2000)
    X = images.float() / 255
    X_train, y_train, X_val, y_val = X[:1600], labels[:1600], X[1600:], labels[1600:]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X_train, y_train), batch_size=32, shuffle=True)
    model = DeepSigmoidNet()
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
    return {
        "ok": accuracy < 0.3,
        "check": "validation accuracy near chance (10 classes; ReLU + kaiming version ~0.6)",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
