"""Fault: an embedding-bag sentiment model with a 64-dim vector for each of 800 words is trained for 30 epochs
on only 500 short reviews; most words are seen about ten times, so it memorizes the reviews: training loss near 0,
validation loss lowest after a few epochs and then climbing far above it.
Source: https://discuss.pytorch.org/t/why-is-the-validation-loss-increasing/68683 - "while my training loss
decreases ... the validation loss keeps on having an increasing trend" (answer: overfitting)."""

import torch
from torch import nn

EXPECT = {"codes": ["overfitting"], "also_ok": []}

VOCAB = 800


class SentimentModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, 64)
        self.out = nn.Linear(64, 2)

    def forward(self, tokens):
        return self.out(self.embedding(tokens).mean(dim=1))


def reviews(n, polarity):
    tokens = torch.randint(0, VOCAB, (n, 16))
    label = (polarity[tokens].sum(1) + torch.randn(n) > 0).long()
    return tokens, label


def train(tw=None):
    torch.manual_seed(0)
    polarity = torch.randint(-1, 2, (VOCAB,)).float()
    train_tokens, train_labels = reviews(500, polarity)
    val_tokens, val_labels = reviews(500, polarity)
    model = SentimentModel()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=3e-3)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    history = []
    for epoch in range(30):
        model.train()
        perm = torch.randperm(500)
        for i in range(0, 500, 25):
            batch, target = train_tokens[perm[i : i + 25]], train_labels[perm[i : i + 25]]
            loss = criterion(model(batch), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=target)
        model.eval()
        with torch.no_grad():
            val_loss = criterion(model(val_tokens), val_labels).item()
        history.append(val_loss)
        if doctor:
            doctor.record(val_loss=val_loss)
        print(f"epoch {epoch}: train loss {loss.item():.4f}, val loss {val_loss:.3f}")
    if doctor:
        return doctor.findings
    best = min(history)
    return {
        "ok": val_loss > 1.5 * best,
        "check": "final validation loss over 1.5x its best",
        "val_loss": val_loss,
        "best_val_loss": best,
        "best_epoch": history.index(best),
        "train_loss": loss.item(),
    }
