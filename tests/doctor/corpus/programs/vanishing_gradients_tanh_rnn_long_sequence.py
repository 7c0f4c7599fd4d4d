"""Fault: a tanh nn.RNN asked to classify a 50-step sequence by a cue that appears only in its first 5 steps,
reading the last hidden state; the gradient from the last step back to the first shrinks at every step, so the RNN
never links the label to the cue and stays at chance, where the same RNN and budget reach 0.8 when the cue sits in
the last steps (15 steps back).
Source: https://notes.atzy.dev/exploding-gradients - notes on vanishing/exploding gradients: the counterpart of
exploding gradients, with gradients vanishing through many multiplications (as through the time steps of an RNN)."""

import torch
from torch import nn

EXPECT = {"codes": ["vanishing-gradients"], "also_ok": ["not-learning"]}


def make_sequences(n, length=50, generator=None):
    y = torch.randint(0, 2, (n,), generator=generator)
    x = 0.5 * torch.randn(n, length, 4, generator=generator)  # noise everywhere
    x[:, :5, 0] += (2 * y - 1).float().unsqueeze(1)  # the cue: channel 0 of the first 5 steps
    return x, y


class SeqClassifier(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.rnn = nn.RNN(4, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, 2)

    def forward(self, x):
        _, h = self.rnn(x)
        return self.fc(h[-1])


def train(tw=None):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    X_train, y_train = make_sequences(600, generator=g)
    X_val, y_val = make_sequences(200, generator=g)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X_train, y_train), batch_size=32, shuffle=True)
    model = SeqClassifier()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(5):
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
        "ok": accuracy < 0.65,
        "check": "validation accuracy near chance (2 classes)",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
