"""Fault: a tanh MLP initialized with nn.init.normal_(w, std=1.0) on 100 inputs and 256-wide layers; the
pre-activations have a std of 10-16, every tanh sits at +-1 where its derivative is ~0, the logits start huge, and
RMSprop crawls from a start far worse than
chance (0.29 accuracy after 5 epochs; 0.97 with the default init).
Source: https://resources.devweekends.com/courses/deep-learning-mastery/28-weight-initialization - "Weight
Initialization": a deep tanh network initialized with nn.init.normal_ at std 1.0 or 2.0 saturates, and a poorly
initialized network "might never converge"."""

import torch
from torch import nn

EXPECT = {"codes": ["bad-init"], "also_ok": []}


class TanhNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(100, 256),
            nn.Tanh(),
            nn.Linear(256, 256),
            nn.Tanh(),
            nn.Linear(256, 256),
            nn.Tanh(),
            nn.Linear(256, 5),
        )
        for m in self.layers:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=1.0)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.layers(x)


def train(tw=None):
    torch.manual_seed(0)
    centers = torch.randn(5, 100)
    y = torch.randint(0, 5, (1500,))
    X = 0.4 * centers[y] + torch.randn(1500, 100)
    X_train, y_train, X_val, y_val = X[:1200], y[:1200], X[1200:], y[1200:]
    model = TanhNet()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-4)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(5):
        model.train()
        perm = torch.randperm(1200)
        for i in range(0, 1200, 40):
            idx = perm[i : i + 40]
            loss = loss_fn(model(X_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y_train[idx])
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
        "ok": accuracy < 0.6 and val_loss > 3.0,
        "check": "validation loss far above ln(5), low accuracy",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
