"""Healthy: a fully connected autoencoder on Fashion-MNIST (784 -> 128 -> 32 -> 128 -> 784, sigmoid output on
[0, 1] pixels), MSE between the reconstruction and the input itself, Adam; the target is the input batch.
Source: https://www.codegenes.net/blog/mean-square-error-pytorch-autoencoder - "Mean Square Error in PyTorch
Autoencoders": the encoder compresses, the decoder reconstructs, MSE measures the reconstruction error."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


class Autoencoder(nn.Module):
    def __init__(self, input_dim=784, latent_dim=32):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(input_dim, 128), nn.ReLU(), nn.Linear(128, latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, 128), nn.ReLU(), nn.Linear(128, input_dim), nn.Sigmoid())

    def forward(self, x):
        return self.decoder(self.encoder(x))


def train(tw=None):
    torch.manual_seed(0)
    images, _ = fashion_mnist(2500)
    data = images.float().div(255).view(-1, 784)
    train_data, val_data = data[:2000], data[2000:]
    loader = DataLoader(TensorDataset(train_data), batch_size=64, shuffle=True)

    model = Autoencoder()
    criterion = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _ in range(8):
        model.train()
        for (batch,) in loader:
            recon = model(batch)
            loss = criterion(recon, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=batch)
        model.eval()
        with torch.no_grad():
            val_loss = criterion(model(val_data), val_data).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    baseline = ((val_data - train_data.mean(0)) ** 2).mean().item()  # predicting the mean image
    return {
        "ok": val_loss < 0.3 * baseline,
        "check": "val reconstruction MSE below 30% of the mean-image MSE",
        "val_loss": val_loss,
        "mean_image_mse": baseline,
    }
