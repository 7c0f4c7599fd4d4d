"""Fault: the training forward pass runs under torch.no_grad() (copied from the evaluation code); backward()
then failed with "element 0 of tensors does not require grad", which the person silenced with
loss.requires_grad = True: the loss now has no graph back to the model, no weight gets a gradient, and the CNN
stays at its random initialization.
Source: https://github.com/ronghuaiyang/arcface-pytorch/issues/56 - "i add loss.requires_grad = True ... then it
do not report errors. but when i train, the loss is not decline, and the acc is always zero"."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": ["no-gradient"], "also_ok": ["not-learning"]}


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU()
        )
        self.fc = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))


def train(tw=None):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    images, labels = fashion_mnist(1500)
    x = (images.float() / 255.0).unsqueeze(1)
    train_loader = DataLoader(TensorDataset(x[:1200], labels[:1200]), batch_size=64, shuffle=True)
    x_val, y_val = x[1200:], labels[1200:]
    model = ConvNet()
    initial = [p.detach().clone() for p in model.parameters()]
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _epoch in range(3):
        model.train()
        for data, label in train_loader:
            with torch.no_grad():
                output = model(data)
            loss = criterion(output, label)
            loss.requires_grad = True
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=label)
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    unchanged = all(torch.equal(p, q) for p, q in zip(initial, model.parameters(), strict=True))
    return {
        "ok": unchanged and accuracy < 0.3,
        "check": "weights unchanged and validation accuracy at chance",
        "unchanged": unchanged,
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
