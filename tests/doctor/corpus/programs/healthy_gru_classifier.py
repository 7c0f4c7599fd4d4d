"""Healthy: a GRU sequence classifier (batch_first, the last layer's final hidden state h_n[-1] into a Linear
layer) on noisy waveforms of three shapes, trained with Adam and a DataLoader.
Source: http://pullrequest.ru/10680779/poryadok-sloev-skrytyh-sostoyaniyah-pytorch-gru-return - the order of
layers in the hidden states PyTorch's GRU returns: use h_n[-1] for the last layer's last time step."""

import math

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


def waveforms(n, length=30):
    kind = torch.randint(0, 3, (n,))
    t = torch.linspace(0, 1, length)
    freq = 2 + 2 * torch.rand(n, 1)
    phase = 2 * math.pi * torch.rand(n, 1)
    arg = 2 * math.pi * freq * t + phase
    sine, square, saw = torch.sin(arg), torch.sign(torch.sin(arg)), (arg / math.pi) % 2 - 1
    x = torch.where(kind[:, None] == 0, sine, torch.where(kind[:, None] == 1, square, saw))
    return (x + 0.3 * torch.randn(n, length)).unsqueeze(-1), kind


class GRUNet(nn.Module):
    def __init__(self, hidden_size=24, num_classes=3):
        super().__init__()
        self.gru = nn.GRU(1, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        _, h_n = self.gru(x)
        return self.fc(h_n[-1])


def train(tw=None):
    torch.manual_seed(0)
    x, y = waveforms(1200)
    loader = DataLoader(TensorDataset(x[:1000], y[:1000]), batch_size=50, shuffle=True)
    x_val, y_val = x[1000:], y[1000:]
    model = GRUNet()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _ in range(8):
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy > 0.9,
        "check": "validation accuracy above 0.9 (3 waveform kinds)",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
