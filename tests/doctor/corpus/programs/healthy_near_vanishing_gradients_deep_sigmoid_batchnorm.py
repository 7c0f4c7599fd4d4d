"""Healthy near miss of vanishing_gradients_deep_sigmoid_mlp: the same 12-layer sigmoid MLP, data and SGD, with a
BatchNorm1d before every sigmoid; the normalization keeps each layer's pre-activations at unit scale and rescales
the gradient on the way back, so the first layers keep learning and the deep sigmoid net trains.
Source: https://arunprakaash.github.io/lab/neural-nets/lesson-07-depth-problem/ - "The Vanishing Act": vanishing
gradients in deep sigmoid nets, and the fixes that made depth work: init, batch norm, residual connections."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


class DeepSigmoidBNNet(nn.Module):
    def __init__(self, depth=12, width=64):
        super().__init__()
        layers = [nn.Flatten(), nn.Linear(784, width), nn.BatchNorm1d(width), nn.Sigmoid()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.BatchNorm1d(width), nn.Sigmoid()]
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
    model = DeepSigmoidBNNet()
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
    return {"ok": accuracy > 0.7, "check": "validation accuracy above 0.7", "accuracy": accuracy, "val_loss": val_loss}
