"""Fault: the adding problem with a ReLU nn.RNN (nonlinearity="relu") whose recurrent matrix was drawn with
nn.init.normal_(std=0.22), spectral radius about 1.9; the first loss looks normal, but over 40 time steps the
gradient through time grows geometrically, and without gradient clipping a few SGD steps blow the loss up to NaN.
Source: https://taourl.com/read-1885623.html - "RNN loss becomes NaN due to very large prediction values": the
repeated multiplication by the recurrent weight matrix makes the hidden state and the gradients explode."""

import torch
from torch import nn

EXPECT = {"codes": ["exploding-gradients"], "also_ok": ["nonfinite-loss"]}


def adding_problem(n, length, generator):
    values = torch.rand(n, length, generator=generator)
    markers = torch.zeros(n, length)
    first = torch.randint(0, length // 2, (n,), generator=generator)
    second = torch.randint(length // 2, length, (n,), generator=generator)
    markers[torch.arange(n), first] = 1.0
    markers[torch.arange(n), second] = 1.0
    x = torch.stack([values, markers], dim=2)
    y = (values * markers).sum(1, keepdim=True)
    return x, y


class Adder(nn.Module):
    def __init__(self, hidden=64):
        super().__init__()
        self.rnn = nn.RNN(2, hidden, nonlinearity="relu", batch_first=True)
        self.fc = nn.Linear(hidden, 1)
        nn.init.normal_(self.rnn.weight_hh_l0, std=0.22)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


def train(tw=None):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    X_train, y_train = adding_problem(1000, 40, g)
    X_val, y_val = adding_problem(200, 40, g)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X_train, y_train), batch_size=50, shuffle=True)
    model = Adder()
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    losses = []
    for _epoch in range(3):
        model.train()
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if doctor:
                doctor.record(loss, target=yb)
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(X_val), y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    bad = [i for i, v in enumerate(losses) if v != v or v == float("inf")]
    baseline = y_val.var().item()  # predicting the mean
    return {
        "ok": bool(bad) or val_loss > baseline,
        "check": "loss inf/NaN or worse than predicting the mean",
        "first_loss": losses[0],
        "first_bad_step": bad[0] if bad else None,
        "val_loss": val_loss,
        "baseline": baseline,
    }
