"""Fault: Fashion-MNIST images go into an MLP as raw 0..255 pixel values (the /255 was forgotten); with SGD and
momentum the first layer's pre-activations are in the hundreds, the first steps are huge and the network ends
near chance, where the same script on pixels/255 reaches ~80% accuracy.
Source: https://stats.stackexchange.com/questions/372762/why-normalize-when-all-features-are-on-the-same-scale -
"with normalization I get an accuracy of over 85%, whereas no normalization, my accuracy falls to 10%"."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": ["unscaled-inputs"], "also_ok": ["dead-relu", "lr-too-high"]}


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(2000)
    test_images, test_labels = fashion_mnist(500, test=True)
    X = images.view(-1, 784).float()  # pixel values 0..255
    X_test = test_images.view(-1, 784).float()
    loader = DataLoader(TensorDataset(X, labels), batch_size=64, shuffle=True)
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
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
    return {
        "ok": accuracy < 0.4,
        "check": "test accuracy near chance (pixels/255 reach ~0.8)",
        "accuracy": accuracy,
        "test_loss": val_loss,
    }
