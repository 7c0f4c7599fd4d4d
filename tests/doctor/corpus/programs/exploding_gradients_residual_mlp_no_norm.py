"""Fault: a 16-block residual MLP (x = x + relu(fc(x))) built without any normalization, each block
kaiming-initialized "as recommended for ReLU"; every block adds a branch as large as its input, so the signal
and the gradient double in variance per block (about 250x in scale over 16 blocks) and SGD with momentum diverges
to NaN within a few steps.
Source: https://github.com/Pavan-Kumar-Z/GEN-AI - notebook on deep nets without/with BatchNorm, weights set with
nn.init.normal_ at a chosen scale: without normalization the deep ReLU net's training is unstable."""

import torch
from torch import nn

EXPECT = {"codes": ["exploding-gradients"], "also_ok": ["nonfinite-loss", "bad-init"]}


class Block(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc = nn.Linear(width, width)
        nn.init.kaiming_normal_(self.fc.weight, nonlinearity="relu")
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        return x + torch.relu(self.fc(x))


class ResMLP(nn.Module):
    def __init__(self, n_in=20, width=64, blocks=16, n_out=3):
        super().__init__()
        self.stem = nn.Linear(n_in, width)
        self.blocks = nn.Sequential(*[Block(width) for _ in range(blocks)])
        self.head = nn.Linear(width, n_out)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


def train(tw=None):
    torch.manual_seed(0)
    X = torch.randn(1200, 20)
    W = torch.randn(20, 3)
    Y = X @ W + 0.1 * torch.randn(1200, 3)  # three regression targets
    X_train, Y_train, X_val, Y_val = X[:1000], Y[:1000], X[1000:], Y[1000:]
    model = ResMLP()
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    losses = []
    for _epoch in range(4):
        perm = torch.randperm(1000)
        for i in range(0, 1000, 50):
            idx = perm[i : i + 50]
            loss = loss_fn(model(X_train[idx]), Y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if doctor:
                doctor.record(loss, target=Y_train[idx])
        with torch.no_grad():
            val_loss = loss_fn(model(X_val), Y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    bad = [i for i, v in enumerate(losses) if v != v or v == float("inf")]
    baseline = Y_val.var().item()
    return {
        "ok": bool(bad) or not val_loss < baseline,
        "check": "loss NaN/inf or no better than predicting the mean",
        "first_loss": losses[0],
        "first_bad_step": bad[0] if bad else None,
        "val_loss": val_loss,
        "baseline": baseline,
    }
