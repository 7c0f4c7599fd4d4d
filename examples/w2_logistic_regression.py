"""W2: logistic regression on MNIST-format images, step by step (the torch.nn tutorial "What is torch.nn
really?"), here on Fashion-MNIST, which has the same shapes. Written correctly: the doctor stays silent.

    python w2_logistic_regression.py [--limit N]
"""

import argparse
import math

import torch
import torch.nn.functional as F
from fashion_mnist import load

parser = argparse.ArgumentParser()
parser.add_argument("--limit", type=int, default=50000, help="training images to use")
args = parser.parse_args()

torch.manual_seed(0)
x_train, y_train = load("train", args.limit)
x_valid, y_valid = load("test")
x_train, x_valid = x_train.reshape(-1, 784), x_valid.reshape(-1, 784)


class MnistLogistic(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weights = torch.nn.Parameter(torch.randn(784, 10) / math.sqrt(784))
        self.bias = torch.nn.Parameter(torch.zeros(10))

    def forward(self, xb):
        return xb @ self.weights + self.bias


model = MnistLogistic()
opt = torch.optim.SGD(model.parameters(), lr=0.5)
bs = 64
n = x_train.shape[0]
for epoch in range(2):
    model.train()
    perm = torch.randperm(n)
    for i in range((n - 1) // bs + 1):
        idx = perm[i * bs : (i + 1) * bs]
        loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    with torch.no_grad():
        valid_loss = F.cross_entropy(model(x_valid), y_valid)
        accuracy = (model(x_valid).argmax(1) == y_valid).float().mean()
    print(f"epoch {epoch}: valid loss {valid_loss:.4f}, accuracy {accuracy:.3f}")
