"""Fault: a deep ReLU MLP whose Linear weights were initialized with nn.init.normal_(w, 0, 1) ("weights from a
standard normal", as in the textbook formula) instead of a fan-in scaled init; each 64-wide layer multiplies the
signal by about sqrt(64/2) = 5.7, so the gradients grow by orders of magnitude layer after layer and the first
SGD steps send the loss to inf/NaN.
Source: https://blog.csdn.net/qq_24739717/article/details/102896678 - PyTorch tutorial notes on weight init: an
MLP initialized with nn.init.normal_ (std 1) whose layer outputs' std grows until it is NaN after a few layers."""

import torch
from torch import nn

# the nearest-centre labels happen to be 33:1 imbalanced, which the doctor rightly reports too
EXPECT = {"codes": ["exploding-gradients"], "also_ok": ["nonfinite-loss", "bad-init", "class-imbalance"]}


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
                nn.init.normal_(m.weight, 0, 1)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.out(self.features(x))


def train(tw=None):
    torch.manual_seed(0)
    X = torch.randn(1200, 16)
    centers = torch.randn(4, 16)
    y = torch.cdist(X, centers).argmin(1)  # 4 classes: the nearest center
    X_train, y_train, X_val, y_val = X[:1000], y[:1000], X[1000:], y[1000:]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X_train, y_train), batch_size=50, shuffle=True)
    model = DeepMLP()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    losses = []
    for _epoch in range(3):
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
    bad = [i for i, v in enumerate(losses) if v != v or v == float("inf")]
    return {
        "ok": bool(bad) and accuracy < 0.5,
        "check": "loss went inf/NaN, accuracy near chance (4 classes)",
        "first_loss": losses[0],
        "first_bad_step": bad[0] if bad else None,
        "accuracy": accuracy,
    }
