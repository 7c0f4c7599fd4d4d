"""Fault: the review classifier's validation loader was built from the training dataset (a copy-paste slip:
DataLoader(train_ds, ...)), so "validation" scores the very reviews the embedding model trains on; validation
accuracy climbs to ~1.0 while accuracy on held-out reviews stays far lower.
Source: https://twelvescompany.co.uk/post/py-torch-training-loss-is-0-00-and-validation-accuracy-is-1 - "validation
accuracy is 1.00 from the first epoch": the validation data had been seen in training (data leakage)."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": ["train-val-overlap"], "also_ok": ["overfitting"]}

VOCAB, LENGTH = 2000, 20


def reviews(n, sentiment_words):
    tokens = torch.randint(0, VOCAB, (n, LENGTH))
    polarity = sentiment_words[tokens].sum(1)
    label = (polarity + 1.5 * torch.randn(n) > 0).long()
    return tokens, label


class BagOfEmbeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 32)
        self.fc = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 2))

    def forward(self, tokens):
        return self.fc(self.embed(tokens).mean(1))


def train(tw=None):
    torch.manual_seed(0)
    sentiment_words = torch.randint(-1, 2, (VOCAB,)).float()  # -1 negative, 0 neutral, +1 positive
    tokens, labels = reviews(1000, sentiment_words)
    test_tokens, test_labels = reviews(1000, sentiment_words)
    train_ds = TensorDataset(tokens, labels)
    train_loader = DataLoader(train_ds, batch_size=32, shuffle=True)
    val_loader = DataLoader(train_ds, batch_size=100)
    model = BagOfEmbeddings()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for epoch in range(12):
        for xb, yb in train_loader:
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        correct, total, val_loss = 0, 0, 0.0
        with torch.no_grad():
            for xb, yb in val_loader:
                out = model(xb)
                val_loss += loss_fn(out, yb).item() * len(yb)
                correct += (out.argmax(1) == yb).sum().item()
                total += len(yb)
        val_loss, val_acc = val_loss / total, correct / total
        if doctor:
            doctor.record(val_loss=val_loss)
        print(f"epoch {epoch}: val loss {val_loss:.3f}, val accuracy {val_acc:.3f}")
    if doctor:
        return doctor.findings
    with torch.no_grad():
        out = model(test_tokens)
    test_acc, test_loss = (out.argmax(1) == test_labels).float().mean().item(), loss_fn(out, test_labels).item()
    return {
        "ok": val_acc > test_acc + 0.2,
        "check": "validation accuracy far above accuracy on held-out reviews",
        "val_acc": val_acc,
        "test_acc": test_acc,
        "val_loss": val_loss,
        "test_loss": test_loss,
    }
