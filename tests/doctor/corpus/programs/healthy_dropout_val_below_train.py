"""Healthy: an MLP with Dropout(0.5) after each hidden layer; the training loss (measured with dropout on) stays
above the validation loss (dropout off under model.eval()) for the whole run, which is expected, not a bug.
Source: https://stackoverflow.com/questions/43979449/higher-validation-accuracy-than-training-accurracy-using-tensorflow-and-keras/43982656#43982656
- "validation data is getting better accuracy and lower loss than our training data" with Dropout(0.5);
answer: dropout behaves differently when training and testing."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


class Net(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(n_in, 256),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(256, 128),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(128, n_out),
        )

    def forward(self, x):
        return self.layers(x)


def train(tw=None):
    torch.manual_seed(0)
    centers = 0.7 * torch.randn(5, 30)
    y = torch.randint(0, 5, (3000,))
    X = centers[y] + torch.randn(3000, 30)
    train_loader = DataLoader(TensorDataset(X[:2400], y[:2400]), batch_size=64, shuffle=True)
    val_loader = DataLoader(TensorDataset(X[2400:], y[2400:]), batch_size=200)

    model = Net(30, 5)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    history = []
    for _ in range(8):
        model.train()
        running = 0.0
        for xb, yb in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            running += loss.item() * len(xb)
            if doctor:
                doctor.record(loss, target=yb)
        model.eval()
        val_loss, correct = 0.0, 0
        with torch.no_grad():
            for xb, yb in val_loader:
                out = model(xb)
                val_loss += criterion(out, yb).item() * len(xb)
                correct += (out.argmax(1) == yb).sum().item()
        val_loss /= 600
        history.append((running / 2400, val_loss))
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    accuracy = correct / 600
    below = all(v < t for t, v in history[1:])
    return {
        "ok": accuracy > 0.9 and below,
        "check": "val accuracy above 0.9, val loss below train loss every epoch",
        "accuracy": accuracy,
        "train_loss": history[-1][0],
        "val_loss": history[-1][1],
    }
