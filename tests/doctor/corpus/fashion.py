"""A slice of Fashion-MNIST for the corpus programs, read the way tutorials read the IDX files by hand
(only the first rows are decompressed, so a program pays for what it uses)."""

import gzip
from pathlib import Path

import numpy as np
import torch

FOLDER = Path("/usr/share/datasets/fashion-mnist")


def fashion_mnist(n: int = 2000, *, test: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n images as uint8 [n, 28, 28] and their labels 0..9 as int64 [n]."""
    prefix = "t10k" if test else "train"
    with gzip.open(FOLDER / f"{prefix}-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(16 + n * 784)[16:], dtype=np.uint8).reshape(-1, 28, 28)
    with gzip.open(FOLDER / f"{prefix}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(8 + n)[8:], dtype=np.uint8)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))
