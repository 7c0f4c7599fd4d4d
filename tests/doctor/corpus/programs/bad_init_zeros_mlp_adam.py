"""Fault: a tanh MLP whose weights were all set with nn.init.zeros_ (biases too); tanh(0) = 0 and the output layer's
weights are 0, so no hidden weight ever gets a gradient, the hidden units stay identical (all zero) forever, and
only the output bias learns: Adam fits the class priors and nothing else (default init: 0.9+ accuracy).
Source: https://www.freetimelearning.com/software-interview-questions-and-answers.php?Why-is-zero-initialization-not-a-good-weight-initialization-process?&id=4170
- "if the set of weights in the network is put to a zero, then all the neurons at each layer will start producing
the same output and the same gradients during backpropagation"."""

import torch
from torch import nn

EXPECT = {"codes": ["bad-init"], "also_ok": ["not-learning"]}


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(12, 48)
        self.fc2 = nn.Linear(48, 48)
        self.fc3 = nn.Linear(48, 3)
        for layer in (self.fc1, self.fc2, self.fc3):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        x = torch.tanh(self.fc1(x))
        x = torch.tanh(self.fc2(x))
        return self.fc3(x)


def train(tw=None):
    torch.manual_seed(0)
    X = torch.randn(1500, 12)
    y = (X @ torch.randn(12, 3)).argmax(1)  # 3 classes
    X_train, y_train, X_val, y_val = X[:1200], y[:1200], X[1200:], y[1200:]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X_train, y_train), batch_size=32, shuffle=True)
    model = Net()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(5):
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
    majority = torch.bincount(y_val).max().item() / len(y_val)
    return {
        "ok": accuracy <= majority + 0.01 and model.fc1.weight.abs().max().item() == 0,
        "check": "hidden weights still all zero, accuracy = always the majority class",
        "accuracy": accuracy,
        "majority": majority,
    }
