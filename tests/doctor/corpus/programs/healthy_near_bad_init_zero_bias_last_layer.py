"""Healthy near miss of bad_init_zeros_mlp_*: a Fashion-MNIST MLP that zero-initializes only what may start at
zero - every bias, and the output layer's weights (a common trick so the first predictions are uniform) - while the
hidden layers keep random (kaiming) weights, so their units differ from the start; it trains normally.
Source: https://www.freetimelearning.com/software-interview-questions-and-answers.php?Why-is-zero-initialization-not-a-good-weight-initialization-process?&id=4170
- zero init fails because the units of a layer stay alike; randomness in the hidden weights breaks the symmetry."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn

EXPECT = {"codes": [], "also_ok": []}


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        self.out = nn.Linear(64, 10)
        for m in self.hidden:
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        return self.out(self.hidden(x))


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(2000)
    X = (images.float() / 255 - 0.286) / 0.353
    X_train, y_train, X_val, y_val = X[:1600], labels[:1600], X[1600:], labels[1600:]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X_train, y_train), batch_size=64, shuffle=True)
    model = MLP()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(4):
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
            out = model(X_val)
            val_loss = loss_fn(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy > 0.75,
        "check": "validation accuracy above 0.75",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
