"""Healthy near miss of unscaled-inputs: Fashion-MNIST pixels are divided by 255 before an MLP trained with
Adam, the way the Keras/PyTorch tutorials do it; the network learns normally.
Source: https://stats.stackexchange.com/questions/372762/why-normalize-when-all-features-are-on-the-same-scale -
"We scale these values to a range of 0 to 1 before feeding to the neural network model ... divide by 255"."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(2000)
    test_images, test_labels = fashion_mnist(500, test=True)
    X = images.view(-1, 784).float() / 255
    X_test = test_images.view(-1, 784).float() / 255
    loader = DataLoader(TensorDataset(X, labels), batch_size=64, shuffle=True)
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for epoch in range(5):
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
            out = model(X_test)
            val_loss = loss_fn(out, test_labels).item()
            accuracy = (out.argmax(1) == test_labels).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
        print(f"epoch {epoch}: test loss {val_loss:.3f}, accuracy {accuracy:.3f}")
    if doctor:
        return doctor.findings
    return {"ok": accuracy > 0.75, "check": "test accuracy above 0.75", "accuracy": accuracy, "test_loss": val_loss}
