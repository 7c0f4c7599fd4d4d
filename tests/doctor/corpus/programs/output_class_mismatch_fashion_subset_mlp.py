"""Fault: the person kept only the first 5 Fashion-MNIST classes (tops and trousers vs the rest of a
shop's catalogue) but left the tutorial's nn.Linear(..., 10) head, so 5 outputs can never be right;
softmax still gives them probability, so the model's confidences are wrong and its loss stays higher.
Source: https://datascience.stackexchange.com/questions/64248/how-is-loss-computed-for-multiclass-cnn-with-an-output-layer-larger-than-the-num
- "the last layer has more outputs than classes ... it didn't give an error"."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn

EXPECT = {"codes": ["output-class-mismatch"], "also_ok": []}


def subset(n, test=False):
    images, labels = fashion_mnist(n, test=test)
    keep = labels < 5
    return images[keep].float().flatten(1) / 255, labels[keep]


def train(tw=None):
    torch.manual_seed(0)
    X_train, y_train = subset(2400)
    X_val, y_val = subset(1000, test=True)
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X_train, y_train), batch_size=64, shuffle=True)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(3):
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
            probabilities = model(X_val).softmax(1)
            val_loss = loss_fn(model(X_val), y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    impossible = probabilities[:, 5:].sum(1).mean().item()
    accuracy = (probabilities.argmax(1) == y_val).float().mean().item()
    return {
        "ok": impossible > 0.01,
        "check": "mean probability given to the 5 classes that do not exist > 1%",
        "impossible_mass": impossible,
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
