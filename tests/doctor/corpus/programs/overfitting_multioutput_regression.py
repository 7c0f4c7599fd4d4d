"""Fault: a 3-layer MLP predicting four process outputs is trained with SGD and momentum for 50 epochs on 150
noisy lab measurements; it fits the noise of the training rows (training MSE far below the noise level) and the
validation MSE, best after a few epochs, climbs to well above its best.
Source: https://thepinehillsnews.com/post/my-test-loss-is-increasing-but-train-loss-is-decreasing-for - "my test
loss is increasing but train loss is decreasing": a model too complex for the limited data memorizes it."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": ["overfitting"], "also_ok": []}


class ProcessModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 4))

    def forward(self, x):
        return self.net(x)


def measurements(n, W):
    X = torch.randn(n, 10)
    return X, torch.tanh(X @ W) + 0.5 * torch.randn(n, 4)


def train(tw=None):
    torch.manual_seed(0)
    W = torch.randn(10, 4) / 3
    train_loader = DataLoader(TensorDataset(*measurements(150, W)), batch_size=15, shuffle=True)
    X_val, Y_val = measurements(300, W)
    model = ProcessModel()
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    history = []
    for epoch in range(50):
        model.train()
        for xb, yb in train_loader:
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(X_val), Y_val).item()
        history.append(val_loss)
        if doctor:
            doctor.record(val_loss=val_loss)
        if epoch % 10 == 0:
            print(f"epoch {epoch}: train mse {loss.item():.4f}, val mse {val_loss:.4f}")
    if doctor:
        return doctor.findings
    best = min(history)
    return {
        "ok": val_loss > 1.4 * best,
        "check": "final validation MSE over 1.4x its best",
        "val_mse": val_loss,
        "best_val_mse": best,
        "best_epoch": history.index(best),
        "noise_mse": 0.25,
    }
