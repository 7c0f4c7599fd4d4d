"""Fault: a GRU sequence classifier (activity recognition from a sensor trace) ends in nn.Softmax and is
trained with CrossEntropyLoss; softmax applied twice squashes the gradient and the model learns far less than
the same network on logits.
Source: https://github.com/doronharitan/human_activity_recognition_LRCN/issues/4 - "as output function I see you
are using a Softmax function and CrossEntropyLoss ... Remove softmax layer in model actually helped the model
converge faster"."""

import torch
from torch import nn

EXPECT = {"codes": ["softmax-into-cross-entropy"], "also_ok": []}


class ActivityGRU(nn.Module):
    def __init__(self, n_classes=5):
        super().__init__()
        self.gru = nn.GRU(3, 32, batch_first=True)
        self.head = nn.Sequential(nn.Linear(32, n_classes), nn.Softmax(dim=1))

    def forward(self, x):
        _, h = self.gru(x)
        return self.head(h[-1])


def make_traces(n, gen):
    activity = torch.randint(0, 5, (n,), generator=gen)
    t = torch.arange(30).float()
    freq = (0.2 + 0.15 * activity)[:, None, None]
    axis = torch.nn.functional.one_hot(activity % 3, 3).float()[:, None, :]
    phase = 6.28 * torch.rand(n, 1, 1, generator=gen)
    x = torch.sin(freq * t[None, :, None] + phase) * (0.5 + axis) + 0.3 * torch.randn(n, 30, 3, generator=gen)
    return x, activity


def train(tw=None):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    X_train, y_train = make_traces(1200, gen)
    X_val, y_val = make_traces(300, gen)
    model = ActivityGRU()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(4):
        model.train()
        perm = torch.randperm(len(X_train))
        for i in range(0, len(X_train), 32):
            idx = perm[i : i + 32]
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
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    accuracy = (out.argmax(1) == y_val).float().mean().item()
    return {
        "ok": accuracy < 0.6,
        "check": "validation accuracy (the same GRU on logits: 0.78)",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
