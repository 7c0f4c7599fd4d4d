"""Random states: capture and restore every source of randomness training draws from.

torch's CPU and CUDA generators, NumPy's and Python's global ones, and the generators a model keeps in
an attribute (W3's dynamic net holds a random.Random). The LR finder puts them back after its trials,
the gradient checker rewinds a model's own before every forward, and checkpoints save them all so a
resumed run draws exactly what the uninterrupted one would have.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

Generator = random.Random | np.random.RandomState | np.random.Generator | torch.Generator


def owned_generators(model: nn.Module) -> list[Generator]:
    """The generators the model's modules hold in attributes, each once, in module order."""
    found: dict[int, Generator] = {}
    for module in model.modules():
        for value in vars(module).values():
            if isinstance(value, random.Random | np.random.RandomState | np.random.Generator | torch.Generator):
                found[id(value)] = value
    return list(found.values())


def get_state(rng: Generator) -> Any:
    if isinstance(rng, np.random.Generator):
        return rng.bit_generator.state
    if isinstance(rng, np.random.RandomState):
        return rng.get_state()
    return rng.getstate() if isinstance(rng, random.Random) else rng.get_state()


def set_state(rng: Generator, state: Any) -> None:
    if isinstance(rng, np.random.Generator):
        rng.bit_generator.state = state
    elif isinstance(rng, np.random.RandomState):
        rng.set_state(state)
    elif isinstance(rng, random.Random):
        rng.setstate(state)
    else:
        rng.set_state(state)


def capture(model: nn.Module | None = None) -> dict[str, Any]:
    """The global random states (torch CPU and CUDA, NumPy, Python) and those of the model's own generators."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "owned": [get_state(rng) for rng in owned_generators(model)] if model is not None else [],
    }


def restore(states: dict[str, Any], model: nn.Module | None = None) -> None:
    """Put back what capture() returned (CUDA states only where CUDA is there to take them)."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if model is not None:
        for rng, state in zip(owned_generators(model), states["owned"], strict=False):
            set_state(rng, state)


@contextmanager
def kept() -> Iterator[None]:
    """The global random states as they were before the block, after it (also after an error)."""
    states = capture()
    try:
        yield
    finally:
        restore(states)
