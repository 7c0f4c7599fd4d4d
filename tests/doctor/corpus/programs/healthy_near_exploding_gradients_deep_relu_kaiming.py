"""Healthy near miss of exploding_gradients_deep_relu_normal_init: the same 8-layer ReLU MLP, data and SGD, but the
Linear weights initialized with nn.init.kaiming_normal_(w, nonlinearity="relu") (std sqrt(2 / fan_in)), which keeps
the signal and the gradient at the same scale through the layers; it trains to high accuracy.
Source: https://blog.csdn.net/qq_24739717/article/details/102896678 - the same tutorial notes: with Kaiming init the
layer outputs' std stays stable through a deep ReLU MLP."""

import torch
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


class DeepMLP(nn.Module):
    def __init__(self, n_in=16, width=64, depth=8, n_out=4):
        super().__init__()
        layers, d = [], n_in
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.ReLU()]
            d = width
        self.features = nn.Sequential(*layers)
        self.out = nn.Linear(width, n_out)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.out(self.features(x))


def train(tw=None):
    torch.manual_seed(0)
    X = torch.randn(2400, 16)
    centers = torch.randn(4, 16)
    y = torch.cdist(X, centers).argmin(1)  # 4 classes: the nearest center
    X_train, y_train, X_val, y_val = X[:2000], y[:2000], X[2000:], y[2000:]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X_train, y_train), batch_size=50, shuffle=True)
    model = DeepMLP()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    losses = []
    for _epoch in range(4):
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if doctor:
                doctor.record(loss, target=yb)
        with torch.no_grad():
            out = model(X_val)
            val_loss = loss_fn(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy > 0.8,
        "check": "validation accuracy above 0.8 (4 classes, chance 0.25)",
        "accuracy": accuracy,
        "first_loss": losses[0],
        "last_loss": losses[-1],
    }
