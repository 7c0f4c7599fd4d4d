"""W5: the Fashion-MNIST MLP of the PyTorch tutorial "Optimizing model parameters", as the write-up has it:
its last layer has 18 outputs for the 10 classes.

    python w5_fashion_mlp.py [--epochs 10] [--limit N]
    python w5_fashion_mlp.py --outputs 10     # the tutorial's 10 outputs
"""

import argparse

import torch
from fashion_mnist import load
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--limit", type=int, default=None, help="training images to use (default: all 60,000)")
parser.add_argument("--outputs", type=int, default=18)
args = parser.parse_args()

torch.manual_seed(0)
train_dataloader = DataLoader(TensorDataset(*load("train", args.limit)), batch_size=64, shuffle=True)
test_dataloader = DataLoader(TensorDataset(*load("test")), batch_size=64)


class NeuralNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(28 * 28, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, args.outputs)
        )

    def forward(self, x):
        return self.linear_relu_stack(self.flatten(x))


def train_loop(dataloader, model, loss_fn, optimizer):
    size = len(dataloader.dataset)
    model.train()
    for batch, (X, y) in enumerate(dataloader):
        pred = model(X)
        loss = loss_fn(pred, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if batch % 100 == 0:
            print(f"loss: {loss.item():>7f}  [{batch * 64 + len(X):>5d}/{size:>5d}]")


def test_loop(dataloader, model, loss_fn):
    model.eval()
    test_loss, correct = 0, 0
    with torch.no_grad():
        for X, y in dataloader:
            pred = model(X)
            test_loss += loss_fn(pred, y).item()
            correct += (pred.argmax(1) == y).type(torch.float).sum().item()
    print(
        f"Test Error: Accuracy: {100 * correct / len(dataloader.dataset):>0.1f}%, "
        f"Avg loss: {test_loss / len(dataloader):>8f}"
    )


model = NeuralNetwork()
loss_fn = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
for t in range(args.epochs):
    print(f"Epoch {t + 1}")
    train_loop(train_dataloader, model, loss_fn, optimizer)
    test_loop(test_dataloader, model, loss_fn)
