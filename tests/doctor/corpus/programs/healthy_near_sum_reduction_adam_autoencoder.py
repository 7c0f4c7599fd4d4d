"""Healthy near miss: an autoencoder uses the VAE tutorial's reconstruction loss, binary cross-entropy with
reduction="sum", together with the tutorial's Adam at lr 1e-3; Adam divides the gradient by its own running
scale, so the sum gives the same steps as a mean.
Source: https://grindskills.com/mean-or-sum-of-gradients-for-weight-updates-in-sgd/ - a sum of per-sample
gradients needs a learning rate rescaled by the number of terms."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


class AutoEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 16))
        self.decoder = nn.Sequential(nn.Linear(16, 128), nn.ReLU(), nn.Linear(128, 784), nn.Sigmoid())

    def forward(self, x):
        return self.decoder(self.encoder(x))


def train(tw=None):
    torch.manual_seed(0)
    images, _ = fashion_mnist(1500)
    X = images.view(-1, 784).float() / 255
    X_train, X_val = X[:1280], X[1280:]
    model = AutoEncoder()
    loss_fn = nn.BCELoss(reduction="sum")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(3):
        perm = torch.randperm(1280)
        for i in range(0, 1280, 64):
            batch = X_train[perm[i : i + 64]]
            loss = loss_fn(model(batch), batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=batch)
        with torch.no_grad():
            recon = model(X_val)
            val_loss = loss_fn(recon, X_val).item() / X_val.numel()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    mse = ((recon - X_val) ** 2).mean().item()
    baseline = ((X_train.mean(0) - X_val) ** 2).mean().item()
    return {
        "ok": mse < 0.7 * baseline,
        "check": "reconstruction error under 70% of the mean image's",
        "recon_mse": mse,
        "mean_image_mse": baseline,
        "val_bce_per_pixel": val_loss,
    }
