"""Healthy: an LSTM sequence classifier trained with Adam and gradient clipping (clip_grad_norm_ at 1.0 between
backward() and step()), the usual guard for recurrent nets; clipping fires on some early steps and training is fine.
Source: https://example-a.com/answer/67237834 - "why is clip_grad_norm_ used in the training of a two layer LSTM?"
(answer: it mitigates exploding gradients, a particular concern for recurrent networks)."""

import torch
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


class SeqClassifier(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.lstm = nn.LSTM(input_size=2, hidden_size=hidden, batch_first=True)
        self.fc = nn.Linear(hidden, 2)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.fc(h[-1])


def make_data(n):
    # two channels; the class says which channel has the larger running total
    x = torch.randn(n, 15, 2)
    y = (x[:, :, 0].sum(1) > x[:, :, 1].sum(1)).long()
    return x, y


def train(tw=None):
    torch.manual_seed(0)
    x_train, y_train = make_data(1000)
    x_val, y_val = make_data(250)
    model = SeqClassifier()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    clip = 1.0
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _ in range(12):
        model.train()
        perm = torch.randperm(len(x_train))
        for i in range(0, len(x_train), 50):
            idx = perm[i : i + 50]
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y_train[idx])
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = loss_fn(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {"ok": accuracy > 0.9, "check": "validation accuracy above 0.9", "accuracy": accuracy, "val_loss": val_loss}
