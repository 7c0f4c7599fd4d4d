"""W4: fit sin(x) on [-pi, pi] with a cubic polynomial ("Learning PyTorch with Examples"), nn.Linear on the
features (x, x^2, x^3). The write-up's RMSprop version kept the SGD version's lr 1e-6.

    python w4_polynomial_sin.py              # RMSprop at lr 1e-6, as written
    python w4_polynomial_sin.py --lr 1e-3    # the tutorial's lr for RMSprop
"""

import argparse
import math

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=1e-6)
args = parser.parse_args()

x = torch.linspace(-math.pi, math.pi, 2000)
y = torch.sin(x)
p = torch.tensor([1, 2, 3])
xx = x.unsqueeze(-1).pow(p)
model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0, 1))
loss_fn = torch.nn.MSELoss(reduction="sum")
optimizer = torch.optim.RMSprop(model.parameters(), lr=args.lr)
for t in range(2000):
    y_pred = model(xx)
    loss = loss_fn(y_pred, y)
    if t % 500 == 499:
        print(t, loss.item())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
linear_layer = model[0]
print(
    f"Result: y = {linear_layer.bias.item()} + {linear_layer.weight[:, 0].item()} x + "
    f"{linear_layer.weight[:, 1].item()} x^2 + {linear_layer.weight[:, 2].item()} x^3"
)
