"""Healthy: binary logistic regression as in the tutorials, a Linear layer followed by torch.sigmoid in forward,
BCELoss and SGD(lr=0.1) on two Gaussian clusters, with a train/test split.
Source: https://towardsdatascience.com/logistic-regression-with-pytorch-3c8bbea594be/ - "Logistic Regression
with PyTorch": LogisticRegression(nn.Module) with torch.sigmoid(self.linear(x)), BCELoss, SGD, train/test split."""

import torch

EXPECT = {"codes": [], "also_ok": []}


class LogisticRegression(torch.nn.Module):
    def __init__(self, input_dim, output_dim):
        super().__init__()
        self.linear = torch.nn.Linear(input_dim, output_dim)

    def forward(self, x):
        return torch.sigmoid(self.linear(x))


def train(tw=None):
    torch.manual_seed(0)
    n = 400
    red = torch.randn(n, 2) + torch.tensor([-1.5, -1.0])
    blue = torch.randn(n, 2) + torch.tensor([1.5, 1.0])
    inputs = torch.cat([red, blue])
    labels = torch.cat([torch.zeros(n), torch.ones(n)]).unsqueeze(1)
    perm = torch.randperm(2 * n)
    inputs, labels = inputs[perm], labels[perm]
    X_train, X_test, y_train, y_test = inputs[:536], inputs[536:], labels[:536], labels[536:]

    model = LogisticRegression(2, 1)
    criterion = torch.nn.BCELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    doctor = tw.watch(model, optimizer, loss_fn=criterion) if tw else None
    for epoch in range(300):
        optimizer.zero_grad()
        outputs = model(X_train)
        loss = criterion(outputs, y_train)
        loss.backward()
        optimizer.step()
        if doctor:
            doctor.record(loss, target=y_train)
        if epoch % 30 == 29:
            with torch.no_grad():
                test_loss = criterion(model(X_test), y_test).item()
            if doctor:
                doctor.record(val_loss=test_loss)
    if doctor:
        return doctor.findings
    with torch.no_grad():
        accuracy = ((model(X_test) > 0.5).float() == y_test).float().mean().item()
    return {
        "ok": accuracy > 0.9,
        "check": "test accuracy above 0.9 (Bayes rate ~0.96)",
        "accuracy": accuracy,
        "test_loss": test_loss,
    }
