"""Fault: binary segmentation masks were read as 0/255 greyscale and fed to BCEWithLogitsLoss as they are;
a target of 255 pushes every logit up without bound, so the net marks every pixel as foreground.
Source: https://github.com/milesial/Pytorch-UNet/issues/291 - "check that your masks are loaded with class
indices and not with raw greyscale value: greyscale values are from 0 to 255"."""

import torch
from torch import nn

EXPECT = {"codes": ["label-out-of-range"], "also_ok": []}


def make_images(n, gen):
    images = 0.3 * torch.randn(n, 1, 24, 24, generator=gen)
    masks = torch.zeros(n, 1, 24, 24, dtype=torch.uint8)
    for i in range(n):
        r, c = torch.randint(0, 14, (2,), generator=gen).tolist()
        size = int(torch.randint(5, 10, (1,), generator=gen))
        images[i, :, r : r + size, c : c + size] += 1.0
        masks[i, :, r : r + size, c : c + size] = 255  # the mask PNGs store the object as white
    return images, masks


class TinySegNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, x):
        return self.head(self.body(x))


def train(tw=None):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    train_x, train_m = make_images(320, gen)
    val_x, val_m = make_images(80, gen)
    model = TinySegNet()
    loss_fn = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    doctor = tw.watch(model, optimizer, loss_fn=loss_fn) if tw else None
    for _epoch in range(4):
        model.train()
        perm = torch.randperm(len(train_x))
        for i in range(0, len(train_x), 32):
            idx = perm[i : i + 32]
            target = train_m[idx].float()
            loss = loss_fn(model(train_x[idx]), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if doctor:
                doctor.record(loss, target=target)
        model.eval()
        with torch.no_grad():
            logits = model(val_x)
            val_loss = loss_fn(logits, val_m.float()).item()
        if doctor:
            doctor.record(val_loss=val_loss)
    if doctor:
        return doctor.findings
    pred, truth = logits > 0, val_m > 0
    iou = ((pred & truth).sum() / (pred | truth).sum()).item()
    return {
        "ok": iou < 0.5,
        "check": "foreground IoU on validation (a fixed mask/255 run gets > 0.8)",
        "iou": iou,
        "predicted_foreground": pred.float().mean().item(),
        "true_foreground": truth.float().mean().item(),
    }
