"""Read the Fashion-MNIST IDX files the way the tutorials' helper functions do (no download: the Debian package
dataset-fashion-mnist puts them in /usr/share/datasets/fashion-mnist)."""

import gzip
from pathlib import Path

import numpy as np
import torch

FOLDER = Path("/usr/share/datasets/fashion-mnist")


def load(split="train", limit=None):
    """Images as float tensors in [0, 1] of shape [n, 28, 28], labels as int64 tensors of shape [n]."""
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(FOLDER / f"{prefix}-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(FOLDER / f"{prefix}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    images, labels = images[:limit], labels[:limit]
    return torch.tensor(images, dtype=torch.float32) / 255, torch.tensor(labels, dtype=torch.int64)
