"""W3: a two-layer ReLU net on random data ("Learning PyTorch with Examples"), with the sum of squared errors
as its loss and plain SGD, as the tutorial writes it.

    python w3_two_layer_net.py           # MSELoss(reduction="sum"), SGD lr 1e-4
    python w3_two_layer_net.py --adam    # the tutorial's optim version: Adam lr 1e-4
"""

import argparse

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--adam", action="store_true")
args = parser.parse_args()

torch.manual_seed(0)
N, D_in, H, D_out = 64, 1000, 100, 10
x = torch.randn(N, D_in)
y = torch.randn(N, D_out)
model = torch.nn.Sequential(torch.nn.Linear(D_in, H), torch.nn.ReLU(), torch.nn.Linear(H, D_out))
loss_fn = torch.nn.MSELoss(reduction="sum")
learning_rate = 1e-4
if args.adam:
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
else:
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
for t in range(500):
    y_pred = model(x)
    loss = loss_fn(y_pred, y)
    if t % 100 == 99:
        print(t, loss.item())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
