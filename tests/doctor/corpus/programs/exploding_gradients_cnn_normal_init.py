"""Fault: a small Fashion-MNIST CNN whose init function runs nn.init.normal_(m.weight) (mean 0, std 1) on every
Conv2d and Linear layer; a 3x3x32 filter then amplifies its input about 12x, the activations and the gradients
grow by orders of magnitude from layer to layer, and the first SGD steps send the loss to NaN.
Source: https://runebook.dev/en/docs/pytorch/nn.init/torch.nn.init.normal_ - "Simply calling
torch.nn.init.normal_(tensor) uses default parameters (mean=0.0, std=1.0) ... a large standard deviation can lead to
exploding gradients"."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn

EXPECT = {"codes": ["exploding-gradients"], "also_ok": ["nonfinite-loss", "bad-init"]}


def init_weights(m):
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.normal_(m.weight)
        nn.init.zeros_(m.bias)


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(1200)
    X = (images.float() / 255 - 0.286).unsqueeze(1) / 0.353
    X_train, y_train, X_val, y_val = X[:1000], labels[:1000], X[1000:], labels[1000:]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X_train, y_train), batch_size=64, shuffle=True)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )
    model.apply(init_weights)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    losses = []
    for _epoch in range(2):
        model.train()
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
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
    bad = [i for i, v in enumerate(losses) if v != v or v == float("inf")]
    return {
        "ok": bool(bad) and accuracy < 0.3,
        "check": "loss NaN/inf and accuracy near chance",
        "first_loss": losses[0],
        "first_bad_step": bad[0] if bad else None,
        "accuracy": accuracy,
    }
