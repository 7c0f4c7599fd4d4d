"""Fault: a rating model (user and item embeddings) outputs [B, 1] while the ratings batch is [B]; HuberLoss
broadcasts them to [B, B], and the model only learns the global mean rating.
Source: http://xiaobeizi.cn/x/6iuujguWdu - output and label shapes differ, "the code works with a warning:
using a target size different to the input size will likely lead to incorrect results due to broadcasting"."""

import warnings

import torch
from torch import nn

EXPECT = {"codes": ["loss-broadcast"], "also_ok": []}


class RatingModel(nn.Module):
    def __init__(self, n_users, n_items, dim=8):
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        self.out = nn.Linear(dim, 1)  # generalized matrix factorization: weigh the product of the embeddings
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)

    def forward(self, users, items):
        return self.out(self.user(users) * self.item(items))


def train(tw=None):
    torch.manual_seed(0)
    warnings.filterwarnings("ignore", message="Using a target size")
    n_users, n_items, n = 100, 80, 6000
    user_taste, item_style = torch.randn(n_users, 3), torch.randn(n_items, 3)
    users, items = torch.randint(0, n_users, (n,)), torch.randint(0, n_items, (n,))
    ratings = (3 + (user_taste[users] * item_style[items]).sum(1) + 0.2 * torch.randn(n)).clamp(1, 5)
    split = 5000
    model = RatingModel(n_users, n_items)
    loss_fn = nn.HuberLoss()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-2)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(6):
        perm = torch.randperm(split)
        for i in range(0, split, 128):
            idx = perm[i : i + 128]
            loss = loss_fn(model(users[idx], items[idx]), ratings[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=ratings[idx])
        with torch.no_grad():
            pred = model(users[split:], items[split:])
            val_loss = loss_fn(pred, ratings[split:]).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    y_val = ratings[split:]
    r2 = 1 - ((pred.squeeze(1) - y_val) ** 2).mean().item() / y_val.var().item()
    return {
        "ok": r2 < 0.2,
        "check": "validation R^2 of the ratings (matching shapes gets > 0.8)",
        "r2": r2,
        "val_loss": val_loss,
    }
