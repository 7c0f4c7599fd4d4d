"""The training doctor: watches training and says what went wrong, why, and how to fix it.

    with trainwise.watch(model, optimizer, loss_fn=loss_fn) as doctor:
        for x, y in loader:
            ...                                  # the usual step
            doctor.record(loss, target=y)
    print(doctor.report())

Each family of checks lives in its own module and registers itself (see registry.py):
labels (the loss and its targets), numerics, learning_rate, inputs, optimizer, network,
generalization. docs/doctor.md lists every code with its statistic, threshold and fix.
"""

# importing a family registers its checks
import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from trainwise.doctor import generalization, inputs, labels, learning_rate, network, numerics, optimization  # noqa: F401
from trainwise.doctor.core import Doctor, Mode
from trainwise.doctor.findings import CODES, Finding
from trainwise.doctor.session import AutowatchSession, autowatch
from trainwise.errors import TrainwiseError

__all__ = ["CODES", "AutowatchSession", "Doctor", "Finding", "autowatch", "check", "watch"]


def watch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    loss_fn: Callable[..., torch.Tensor] | None = None,
    mode: Mode = "warn",
    **options: Any,
) -> Doctor:
    """Start watching a hand-written training loop. Call `doctor.record(loss, target=y)` once per step
    (and `doctor.record(val_loss=...)` after validating); read `doctor.findings` or `doctor.report()`.

    Args:
        model: the model the loop trains (its forward, backward and parameters are watched through hooks).
        optimizer: the loop's optimizer (its zero_grad and step are watched).
        loss_fn: the loss function, when it is a module or a known functional loss: the label and loss checks.
        mode: "warn" prints each finding once, "stop" raises trainwise.TrainingError at the first error,
            "quiet" only collects.
        **options: sample_every (steps between sampled checks), warmup (steps all checked first),
            steps_per_epoch, feature_names (for messages about inputs), printer (where findings go).

    Returns:
        The Doctor, also a context manager (`with trainwise.watch(...) as doctor:` removes its hooks at the end).
    """
    return Doctor(model, optimizer, loss_fn=loss_fn, mode=mode, **options)


def check(
    model: nn.Module,
    data: Any,
    *,
    loss: Any,
    optimizer: str = "sgd",
    lr: float = 1e-3,
    batch_size: int = 256,
    feature_names: Sequence[str] | None = None,
) -> list[Finding]:
    """Pre-flight checks without training: the data as a whole, then one forward and backward pass on a
    batch (labels against outputs, the loss's inputs, gradients reaching every parameter, the start).
    The model's weights are left exactly as they were.

    Args:
        model: the model to check.
        data: (X, y) tensors or arrays (as fit takes them).
        loss: a loss name or callable.
        optimizer, lr: the optimizer (by name) and learning rate the training would use.
        batch_size: the rows of the one batch the forward and backward pass runs on.
        feature_names: names of the input columns, for the messages.

    Returns:
        The findings, most severe first (empty when nothing is wrong).
    """
    from trainwise.data import to_xy
    from trainwise.losses import make_loss
    from trainwise.models import model_device
    from trainwise.optim import make_optimizer

    X, y = to_xy(data)
    loss_fn = make_loss(loss)
    opt = make_optimizer(optimizer, model.parameters(), lr)
    saved = copy.deepcopy(model.state_dict())
    was_training = model.training
    doctor = Doctor(model, opt, loss_fn=loss_fn, mode="quiet", warmup=1, feature_names=feature_names)
    device = model_device(model)
    try:
        doctor.inspect_data(X, y)
        xb, yb = X[:batch_size].to(device), y[:batch_size].to(device)
        model.train()
        try:
            value = loss_fn(model(xb), yb)
            opt.zero_grad()
            value.backward()
            opt.step()  # only to let the step hooks see the gradients; the weights are restored below
        except Exception as exc:  # a crash the checks may already explain (labels beyond the outputs)
            if not any(f.severity == "error" for f in doctor.findings):
                raise TrainwiseError(f"check: one training step fails: {type(exc).__name__}: {exc}") from None
            return doctor.findings
        doctor.record(value, target=yb)
    finally:
        doctor.close()
        model.load_state_dict(saved)
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return doctor.findings
