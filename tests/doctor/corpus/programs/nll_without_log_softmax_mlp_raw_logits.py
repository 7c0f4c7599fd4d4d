"""Fault: the classifier returns raw scores from its last Linear layer and is trained with nn.NLLLoss, which only
negates the score of the true class; the loss falls without bound as the scores grow, and nothing teaches the
wrong classes to go down.
Source: https://codestudyblog.com/8ten8/80409021901.html - "Loss has been negative" with
F.nll_loss(output, target) during training of a classification network."""

import torch
from torch import nn

EXPECT = {"codes": ["nll-without-log-softmax"], "also_ok": ["nonfinite-loss"]}


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(10, 64)
        self.out = nn.Linear(64, 4)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


def train(tw=None):
    torch.manual_seed(0)
    centers = 2 * torch.randn(4, 10)
    y = torch.randint(0, 4, (2000,))
    X = centers[y] + torch.randn(2000, 10)
    X_train, y_train, X_val, y_val = X[:1600], y[:1600], X[1600:], y[1600:]
    model = Classifier()
    loss_fn = nn.NLLLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(5):
        perm = torch.randperm(1600)
        for i in range(0, 1600, 32):
            idx = perm[i : i + 32]
            loss = loss_fn(model(X_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y_train[idx])
        with torch.no_grad():
            out = model(X_val)
            val_loss = loss_fn(out, y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    accuracy = (out.argmax(1) == y_val).float().mean().item()
    return {
        "ok": accuracy < 0.7 or not val_loss > -1e3,
        "check": "validation accuracy (log_softmax first: 1.0) or a loss that ran away",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
