"""Fault: a 3-class Fashion-MNIST subset (T-shirt, pullover, shirt) where the shirts are only 3% of the
images is trained with a plain CrossEntropyLoss; the network never predicts the rare, look-alike class.
Source: https://wiki.gubat.org/content/stackoverflow.com_en_all_2023-11/questions/46759662/classification-with-imbalanced-dataset-using-multi-layer-perceptrons
- "95% of them have label 1 ... The accuracy grows as training progresses, and stops after reaching 95%"."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn

EXPECT = {"codes": ["class-imbalance"], "also_ok": []}


def subset(images, labels, n_shirts):
    tshirt, pullover = (labels == 0).nonzero().squeeze(1), (labels == 2).nonzero().squeeze(1)
    shirt = (labels == 6).nonzero().squeeze(1)[:n_shirts]
    idx = torch.cat([tshirt, pullover, shirt])
    y = torch.cat([torch.zeros(len(tshirt)), torch.ones(len(pullover)), torch.full((len(shirt),), 2.0)]).long()
    return images[idx].float().view(-1, 784) / 255, y


def train(tw=None):
    torch.manual_seed(0)
    X_train, y_train = subset(*fashion_mnist(6000), n_shirts=36)
    X_val, y_val = subset(*fashion_mnist(2000, test=True), n_shirts=200)
    model = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 3))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(3):
        model.train()
        perm = torch.randperm(len(X_train))
        for i in range(0, len(X_train), 32):
            idx = perm[i : i + 32]
            loss = loss_fn(model(X_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y_train[idx])
        model.eval()
        with torch.no_grad():
            out = model(X_val)
            val_loss = loss_fn(out, y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    pred = out.argmax(1)
    shirt_recall = (pred[y_val == 2] == 2).float().mean().item()
    return {
        "ok": shirt_recall < 0.2,
        "check": "recall of the rare shirt class",
        "shirt_recall": shirt_recall,
        "train_shirt_share": (y_train == 2).float().mean().item(),
    }
