"""Fault: a bag-of-words text classifier (nn.EmbeddingBag + nn.Linear) whose optimizer was copied from a
fine-tuning tutorial that used frozen pretrained word vectors: Adam(model.fc.parameters()). Here the embedding is
randomly initialized and trainable, but it is not in the optimizer, so the word vectors never learn and the
classifier is stuck with random features.
Source: https://github.com/ronghuaiyang/arcface-pytorch/issues/20 - "the optimizer need to know which parameters
should be updated, you could update all of them or update part of them" (parameters left out are not trained)."""

import torch
from torch import nn

EXPECT = {"codes": ["params-not-optimized"], "also_ok": []}

VOCAB, N_CLASSES = 300, 4


class TextClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, num_class):
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab_size, embed_dim, mode="mean")
        self.fc = nn.Linear(embed_dim, num_class)

    def forward(self, text):
        return self.fc(self.embedding(text))


def make_data(n, length=20):
    labels = torch.randint(0, N_CLASSES, (n,))
    text = torch.randint(N_CLASSES * 10, VOCAB, (n, length))  # filler words
    keywords = labels.unsqueeze(1) * 10 + torch.randint(0, 10, (n, 3))  # 3 words from the class's 10 keywords
    text[:, :3] = keywords
    return text, labels


def train(tw=None):
    torch.manual_seed(0)
    text, labels = make_data(1600)
    val_text, val_labels = make_data(400)
    model = TextClassifier(VOCAB, 16, N_CLASSES)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.fc.parameters(), lr=1e-2)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _epoch in range(6):
        model.train()
        perm = torch.randperm(len(text))
        for i in range(0, len(text), 32):
            idx = perm[i : i + 32]
            optimizer.zero_grad()
            loss = criterion(model(text[idx]), labels[idx])
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=labels[idx])
        model.eval()
        with torch.no_grad():
            out = model(val_text)
            val_loss = criterion(out, val_labels).item()
            accuracy = (out.argmax(1) == val_labels).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy < 0.7,
        "check": "validation accuracy below 0.7 (optimizer over model.parameters(): 1.0)",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
