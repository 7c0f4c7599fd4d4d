"""Fault: an LSTM forecaster (dropout between the LSTM and the head) predicts the next three readings; its
predict() helper and the validation never call model.eval(), so dropout keeps perturbing the forecasts: the
validation MSE is inflated, two forecasts of the same input differ, and the R^2 is well below the eval-mode one.
Source: https://iopenv.com/V5EQIFQFY/The-role-of-Python-model-eval - "If model.eval() is not used during the
prediction process ... Dropout" still drops connections and changes the predicted results."""

import math

import torch
from torch import nn

EXPECT = {"codes": ["eval-mode-missing"], "also_ok": []}


class Forecaster(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(1, 48, batch_first=True)
        self.drop = nn.Dropout(0.4)
        self.head = nn.Linear(48, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(self.drop(out[:, -1]))


def windows(n, length=20):
    t = torch.arange(length + 3).float()
    freq = 0.2 + 0.3 * torch.rand(n, 1)
    phase = 2 * math.pi * torch.rand(n, 1)
    series = torch.sin(freq * t + phase) + 0.05 * torch.randn(n, length + 3)
    return series[:, :length].unsqueeze(2), series[:, length:]


def predict(model, x):
    with torch.no_grad():
        return model(x)


def train(tw=None):
    torch.manual_seed(0)
    X, Y = windows(800)
    X_val, Y_val = windows(200)
    model = Forecaster()
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=3e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for epoch in range(8):
        perm = torch.randperm(800)
        for i in range(0, 800, 32):
            idx = perm[i : i + 32]
            loss = loss_fn(model(X[idx]), Y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=Y[idx])
        val_loss = loss_fn(predict(model, X_val), Y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
        print(f"epoch {epoch}: train mse {loss.item():.4f}, val mse {val_loss:.4f}")
    if doctor:
        return doctor.findings
    r2 = 1 - val_loss / Y_val.var().item()
    spread = (predict(model, X_val) - predict(model, X_val)).abs().mean().item()
    model.eval()
    eval_loss = loss_fn(predict(model, X_val), Y_val).item()
    return {
        "ok": val_loss > 1.5 * eval_loss,
        "check": "validation MSE with dropout on far above the eval-mode MSE",
        "val_mse": val_loss,
        "eval_mode_val_mse": eval_loss,
        "r2": r2,
        "eval_mode_r2": 1 - eval_loss / Y_val.var().item(),
        "same_input_forecast_gap": spread,
    }
