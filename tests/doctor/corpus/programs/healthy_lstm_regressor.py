"""Healthy: an LSTM regressor predicting the next value of a noisy sine wave from a window of the previous 20,
windows built with a sliding loop, the last time step's output into a Linear layer, MSELoss, Adam; it reaches
the noise floor.
Source: https://discuss.pytorch.org/t/lstm-sine-wave-prediction-using-adam-and-batches/119215 - "LSTM: sine wave
prediction using Adam and batches": reworking the PyTorch sine-wave example to train in batches with Adam."""

import numpy as np
import torch
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


def create_sequences(data, seq_len):
    xs, ys = [], []
    for i in range(len(data) - seq_len):
        xs.append(data[i : i + seq_len])
        ys.append(data[i + seq_len])
    return np.array(xs), np.array(ys)


class LSTMPredictor(nn.Module):
    def __init__(self, hidden_size=32):
        super().__init__()
        self.lstm = nn.LSTM(1, hidden_size, batch_first=True)
        self.linear = nn.Linear(hidden_size, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.linear(out[:, -1, :])


def train(tw=None):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    t = np.linspace(0, 60, 1000)
    series = np.sin(t) + 0.5 * np.sin(0.35 * t) + 0.05 * rng.standard_normal(1000)
    xs, ys = create_sequences(series.astype(np.float32), 20)
    X = torch.from_numpy(xs).unsqueeze(-1)
    Y = torch.from_numpy(ys).unsqueeze(-1)
    X_train, Y_train, X_val, Y_val = X[:780], Y[:780], X[780:], Y[780:]

    model = LSTMPredictor()
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _ in range(10):
        model.train()
        perm = torch.randperm(len(X_train))
        for i in range(0, len(X_train), 32):
            idx = perm[i : i + 32]
            optimizer.zero_grad()
            loss = loss_fn(model(X_train[idx]), Y_train[idx])
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=Y_train[idx])
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(X_val), Y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    r2 = 1 - val_loss / Y_val.var().item()
    return {"ok": r2 > 0.97, "check": "validation R^2 above 0.97 for the next value", "r2": r2, "val_loss": val_loss}
