"""Healthy: a bag-of-words text classifier: token ids padded to a fixed length, nn.Embedding(padding_idx=0),
mean over the non-padding tokens, a Linear layer to 4 topics; Adam, DataLoader over (tokens, label) pairs.
Source: https://jamesmccaffrey.wordpress.com/2021/04/14/explaining-the-pytorch-embeddingbag-layer/ - "Explaining
the PyTorch EmbeddingBag layer": each sentence becomes the average of its word embeddings, then a simple network."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": [], "also_ok": []}

VOCAB, TOPICS, MAX_LEN = 500, 4, 24


def make_corpus(n):
    """Each topic has its own 40 keywords; a document mixes 3-8 of them with 8-16 common words, then padding."""
    labels = torch.randint(0, TOPICS, (n,))
    docs = torch.zeros(n, MAX_LEN, dtype=torch.long)
    for i, topic in enumerate(labels.tolist()):
        k, c = torch.randint(3, 9, ()).item(), torch.randint(8, 17, ()).item()
        keywords = 1 + topic * 40 + torch.randint(0, 40, (k,))
        common = 161 + torch.randint(0, VOCAB - 161, (c,))
        words = torch.cat([keywords, common])
        docs[i, : len(words)] = words[torch.randperm(len(words))]
    return docs, labels


class BagOfWords(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, 32, padding_idx=0)
        self.fc = nn.Linear(32, TOPICS)

    def forward(self, tokens):
        mask = (tokens != 0).unsqueeze(-1).float()
        pooled = (self.embedding(tokens) * mask).sum(1) / mask.sum(1)
        return self.fc(pooled)


def train(tw=None):
    torch.manual_seed(0)
    docs, labels = make_corpus(2000)
    loader = DataLoader(TensorDataset(docs[:1600], labels[:1600]), batch_size=32, shuffle=True)
    val_docs, val_labels = docs[1600:], labels[1600:]

    model = BagOfWords()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for _ in range(6):
        model.train()
        for text, label in loader:
            optimizer.zero_grad()
            loss = criterion(model(text), label)
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=label)
        model.eval()
        with torch.no_grad():
            out = model(val_docs)
            val_loss = criterion(out, val_labels).item()
            accuracy = (out.argmax(1) == val_labels).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    return {
        "ok": accuracy > 0.9,
        "check": "validation accuracy above 0.9 (4 topics)",
        "accuracy": accuracy,
        "val_loss": val_loss,
    }
