"""Fault: CrossEntropyLoss(reduction="sum") in a Fashion-MNIST CNN trained with SGD + momentum at lr 0.01, a
rate meant for the mean loss; the summed gradient over a batch of 100 makes each step 100x larger, the
weights blow up and the network ends at chance.
Source: https://grindskills.com/mean-or-sum-of-gradients-for-weight-updates-in-sgd/ - with the sum of the
gradients "choosing a good r for the sum has an equivalent, rescaled r for the mean": the lr must shrink."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn

EXPECT = {
    "codes": ["sum-reduction"],
    "also_ok": ["lr-too-high", "nonfinite-loss", "dead-relu", "exploding-gradients", "not-learning"],
}


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(1200)
    X_train, y_train = images.float().unsqueeze(1) / 255, labels
    images, labels = fashion_mnist(400, test=True)
    X_val, y_val = images.float().unsqueeze(1) / 255, labels
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 7 * 7, 10),
    )
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(2):
        model.train()
        perm = torch.randperm(len(X_train))
        for i in range(0, len(X_train), 100):
            idx = perm[i : i + 100]
            loss = loss_fn(model(X_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y_train[idx])
        model.eval()
        with torch.no_grad():
            out = model(X_val)
            val_loss = loss_fn(out, y_val).item() / len(X_val)
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    accuracy = (out.argmax(1) == y_val).float().mean().item()
    return {
        "ok": accuracy < 0.3,
        "check": "validation accuracy near chance (mean reduction at this lr: 0.34 after 2 epochs)",
        "accuracy": accuracy,
        "val_loss_per_image": val_loss,
    }
