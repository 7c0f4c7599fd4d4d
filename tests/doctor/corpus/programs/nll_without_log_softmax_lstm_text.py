"""Fault: an LSTM text classifier returns F.softmax(logits) and the loop uses F.nll_loss on it; the loss is
always negative (minus a probability), its gradient vanishes on confidently wrong sentences, and the model
learns much less than with log_softmax.
Source: https://github.com/AnubhavGupta3377/Text-Classification-Models-Pytorch/issues/9 - "the input of
nn.NLLLoss() is after logsoftmax ... here only softmax is provided in model.py therefore, the loss is always
negative"."""

import torch
import torch.nn.functional as F
from torch import nn

EXPECT = {"codes": ["nll-without-log-softmax"], "also_ok": []}

VOCAB = 200


class TextLSTM(nn.Module):
    def __init__(self, n_classes=3):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.lstm = nn.LSTM(16, 32, batch_first=True)
        self.fc = nn.Linear(32, n_classes)

    def forward(self, tokens):
        _, (h, _) = self.lstm(self.embed(tokens))
        return F.softmax(self.fc(h[-1]), dim=1)


def make_sentences(n, gen):
    label = torch.randint(0, 3, (n,), generator=gen)
    tokens = torch.randint(30, VOCAB, (n, 12), generator=gen)
    keyword = label[:, None] * 10 + torch.randint(0, 10, (n, 3), generator=gen)  # 3 class words per sentence
    positions = torch.rand(n, 12, generator=gen).argsort(dim=1)[:, :3]
    tokens.scatter_(1, positions, keyword)
    return tokens, label


def train(tw=None):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    X_train, y_train = make_sentences(1500, gen)
    X_val, y_val = make_sentences(300, gen)
    model = TextLSTM()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    doctor = tw.watch(model, optimizer, loss_fn=F.nll_loss) if tw else None
    for _epoch in range(4):
        perm = torch.randperm(len(X_train))
        for i in range(0, len(X_train), 32):
            idx = perm[i : i + 32]
            loss = F.nll_loss(model(X_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y_train[idx])
        with torch.no_grad():
            out = model(X_val)
            val_loss = F.nll_loss(out, y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    accuracy = (out.argmax(1) == y_val).float().mean().item()
    return {
        "ok": accuracy < 0.85,
        "check": "validation accuracy (log_softmax instead: 0.95)",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
