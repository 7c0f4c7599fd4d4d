"""W1: fit Celsius from an unknown temperature unit by gradient descent ("Deep Learning with PyTorch", ch. 5-6).

python w1_temperature.py            # as the book first writes it: raw inputs, lr 1e-2 (it diverges)
python w1_temperature.py --fixed    # the book's fix: inputs scaled by 0.1, 5000 epochs
trainwise doctor w1_temperature.py  # the same script, watched by the doctor
"""

import argparse

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--fixed", action="store_true", help="normalize the inputs (t_un = 0.1 * t_u)")
args = parser.parse_args()

t_c = torch.tensor([0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0])
t_u = torch.tensor([35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4])
if args.fixed:
    t_u = 0.1 * t_u


t_c, t_u = t_c.unsqueeze(1), t_u.unsqueeze(1)  # one sample per row, as nn.Linear wants (the book's ch. 6)
linear_model = torch.nn.Linear(1, 1)
loss_fn = torch.nn.MSELoss()
optimizer = torch.optim.SGD(linear_model.parameters(), lr=1e-2)
epochs = 5000 if args.fixed else 100
for epoch in range(1, epochs + 1):
    loss = loss_fn(linear_model(t_u), t_c)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if epoch in (1, 2, 3, 10, 100, 5000):
        print(f"Epoch {epoch}, Loss {loss.item():f}")
print("w, b =", linear_model.weight.item(), linear_model.bias.item())
