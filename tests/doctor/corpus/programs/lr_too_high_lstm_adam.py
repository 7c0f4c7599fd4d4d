"""Fault: an LSTM sequence classifier (nn.Embedding + nn.LSTM) trained with Adam at lr=0.5, copied from a
setting meant for a linear model: the first updates saturate the gates and blow up the output layer, the loss
jumps far above ln(2) and the model ends up guessing.
Source: https://github.com/guillaumegenthial/sequence_tagging/issues/47 - LSTM tagger: "when I use lr = 0.001
... no problem; but lr = 0.01 or 0.1, the train loss decrease first and then increase" (then nan)."""

import math

import torch
from torch import nn

EXPECT = {"codes": ["lr-too-high"], "also_ok": ["nonfinite-loss", "not-learning"]}


class SeqClassifier(nn.Module):
    def __init__(self, vocab=20, emb=16, hidden=32):
        super().__init__()
        self.embed = nn.Embedding(vocab, emb)
        self.lstm = nn.LSTM(emb, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, 2)

    def forward(self, tokens):
        _, (h, _) = self.lstm(self.embed(tokens))
        return self.fc(h[-1])


def make_data(n, length=12):
    tokens = torch.randint(0, 20, (n, length))
    labels = ((tokens == 3).sum(1) > (tokens == 7).sum(1)).long()  # more 3s than 7s
    return tokens, labels


def train(tw=None):
    torch.manual_seed(0)
    tokens, labels = make_data(960)
    val_tokens, val_labels = make_data(300)
    model = SeqClassifier()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.5)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    batch_size = 32
    for _epoch in range(5):
        model.train()
        perm = torch.randperm(len(tokens))
        for i in range(0, len(tokens), batch_size):
            idx = perm[i : i + batch_size]
            optimizer.zero_grad()
            loss = criterion(model(tokens[idx]), labels[idx])
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=labels[idx])
        model.eval()
        with torch.no_grad():
            out = model(val_tokens)
            val_loss = criterion(out, val_labels).item()
            accuracy = (out.argmax(1) == val_labels).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    majority = max(val_labels.float().mean().item(), 1 - val_labels.float().mean().item())
    return {
        "ok": accuracy < majority + 0.1,
        "check": "validation accuracy within 0.1 of always guessing the majority class (lr=1e-2 reaches 0.99)",
        "accuracy": accuracy,
        "majority": majority,
        "val_loss": val_loss,
        "chance_loss": math.log(2),
    }
