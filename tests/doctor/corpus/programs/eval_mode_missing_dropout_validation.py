"""Fault: an MLP with Dropout(0.5) after each hidden layer is validated without model.eval(), so half of the
hidden units are still dropped at validation; the reported validation loss is far above what the trained weights
actually give (and noisy from epoch to epoch), which misleads the checkpoint choice.
Source: https://theneuralbase.com/torchvision/learn/beginner/model-eval-inference-mode/ - "Forgetting model.eval()
causes your model to produce different predictions every time you run it" (Dropout stays active)."""

import torch
from tests.doctor.corpus.fashion import fashion_mnist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPECT = {"codes": ["eval-mode-missing"], "also_ok": []}


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, 10)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x):
        x = self.dropout(torch.relu(self.fc1(x.flatten(1))))
        x = self.dropout(torch.relu(self.fc2(x)))
        return self.fc3(x)


def train(tw=None):
    torch.manual_seed(0)
    images, labels = fashion_mnist(2000)
    val_images, val_labels = fashion_mnist(500, test=True)
    X, X_val = images.float() / 255, val_images.float() / 255
    loader = DataLoader(TensorDataset(X, labels), batch_size=64, shuffle=True)
    model = Classifier()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for epoch in range(6):
        for xb, yb in loader:
            loss = criterion(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=yb)
        with torch.no_grad():
            out = model(X_val)
            val_loss = criterion(out, val_labels).item()
            val_acc = (out.argmax(1) == val_labels).float().mean().item()
        if doctor:
            doctor.record(val_loss=val_loss)
        print(f"epoch {epoch}: val loss {val_loss:.3f}, val accuracy {val_acc:.3f}")
    if doctor:
        return doctor.findings
    model.eval()
    with torch.no_grad():
        out = model(X_val)
    true_loss, true_acc = criterion(out, val_labels).item(), (out.argmax(1) == val_labels).float().mean().item()
    return {
        "ok": val_loss > 1.2 * true_loss and val_acc < true_acc - 0.05,
        "check": "validation loss and accuracy in train mode far worse than in eval mode",
        "val_loss": val_loss,
        "eval_mode_val_loss": true_loss,
        "val_acc": val_acc,
        "eval_mode_val_acc": true_acc,
    }
