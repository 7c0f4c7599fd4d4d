"""Healthy: the standard Fashion-MNIST CNN (two conv blocks, two fully connected layers), inputs scaled to [0, 1]
and normalised with the dataset mean and std, Adam(lr=1e-3), DataLoader with shuffle=True.
Source: https://adenevreze.medium.com/cnns-with-pytorch-6cf7ed114af7?source=user_profile---------1----------------------------
- "CNNs with PyTorch: a 2-layer convolutional neural network with the Fashion MNIST dataset"."""

import torch
import torch.nn.functional as F
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}


class FashionCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * 7 * 7, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.flatten(1)
        return self.fc2(F.relu(self.fc1(x)))


def train(tw=None):
    torch.manual_seed(0)
    train_images, train_labels = fashion_mnist(1200)
    test_images, test_labels = fashion_mnist(400, test=True)
    mean, std = 0.2860, 0.3530

    def prep(images):
        return ((images.float() / 255.0 - mean) / std).unsqueeze(1)

    train_loader = DataLoader(TensorDataset(prep(train_images), train_labels), batch_size=50, shuffle=True)
    X_test, y_test = prep(test_images), test_labels
    model = FashionCNN()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _ in range(5):
        model.train()
        for images, labels in train_loader:
            outputs = model(images)
            loss = criterion(outputs, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=labels)
        model.eval()
        with torch.no_grad():
            outputs = model(X_test)
            test_loss = criterion(outputs, y_test).item()
            accuracy = (outputs.argmax(1) == y_test).float().mean().item()
        if doctor:
            doctor.record(val_loss=test_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy > 0.75,
        "check": "test accuracy above 0.75 (1200 training images; chance 0.1)",
        "accuracy": accuracy,
        "test_loss": test_loss,
    }
