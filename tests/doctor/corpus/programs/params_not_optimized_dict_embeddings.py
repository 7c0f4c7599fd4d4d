"""Fault: a tabular sales model keeps one nn.Embedding per categorical column in a plain dict
(self.embeddings = {"store": nn.Embedding(...), "product": nn.Embedding(...)}); forward() looks them up, but a
dict is not registered like nn.ModuleDict, so the embeddings are not in model.parameters(), stay random, and
the per-store and per-product effects are never learned.
Source: https://github.com/pytorch/pytorch/issues/38639 - "as soon as you add any module to a python list the
parameters of that module get invisible and hence can't be seen by the optimizer"."""

import torch
from torch import nn

EXPECT = {"codes": ["params-not-optimized"], "also_ok": []}

N_STORES, N_PRODUCTS = 40, 30


class SalesModel(nn.Module):
    def __init__(self, emb_dim=4):
        super().__init__()
        self.embeddings = {"store": nn.Embedding(N_STORES, emb_dim), "product": nn.Embedding(N_PRODUCTS, emb_dim)}
        self.mlp = nn.Sequential(nn.Linear(2 * emb_dim + 2, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, store, product, numeric):
        parts = [self.embeddings["store"](store), self.embeddings["product"](product), numeric]
        return self.mlp(torch.cat(parts, 1))


def make_data(n, store_effect, product_effect):
    store = torch.randint(0, N_STORES, (n,))
    product = torch.randint(0, N_PRODUCTS, (n,))
    numeric = torch.randn(n, 2)  # price change, promotion intensity (standardized)
    y = store_effect[store] + product_effect[product] - 0.5 * numeric[:, 0] + 0.3 * numeric[:, 1]
    return store, product, numeric, (y + 0.1 * torch.randn(n)).unsqueeze(1)


def train(tw=None):
    torch.manual_seed(0)
    store_effect, product_effect = torch.randn(N_STORES), torch.randn(N_PRODUCTS)
    s, p, num, y = make_data(2000, store_effect, product_effect)
    s_val, p_val, num_val, y_val = make_data(400, store_effect, product_effect)
    model = SalesModel()
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(8):
        perm = torch.randperm(len(y))
        for i in range(0, len(y), 64):
            idx = perm[i : i + 64]
            optimizer.zero_grad()
            loss = loss_fn(model(s[idx], p[idx], num[idx]), y[idx])
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=y[idx])
        with torch.no_grad():
            val_loss = loss_fn(model(s_val, p_val, num_val), y_val).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    r2 = 1 - val_loss / y_val.var().item()
    return {"ok": r2 < 0.8, "check": "validation R^2 below 0.8 (with nn.ModuleDict: 0.99)", "r2": r2}
