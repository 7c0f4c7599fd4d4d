"""Errors that trainwise raises for problems the user can fix.

Every `TrainwiseError` carries one line that names the problem and the fix; the CLI prints it
and exits with code 2, without a traceback.
"""

import torch


class TrainwiseError(Exception):
    """A user mistake (bad config, bad data, bad argument): shown as one line, CLI exit code 2."""


class ConfigError(TrainwiseError):
    """A recipe or TOML config that does not validate."""


class DataError(TrainwiseError):
    """Data that cannot be read or does not fit the task (names the file and the problem)."""


class TrainingError(TrainwiseError):
    """Training cannot go on (raised by the doctor in mode="stop")."""


def describe(value: object) -> str:
    """What a value is, for a one-line error: 'a tensor of shape (8, 3)', 'a tuple of 3', 'a dict'."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, tuple | list):
        return f"a {type(value).__name__} of {len(value)}"
    return f"a {type(value).__name__}"


def first_line(exc: BaseException) -> str:
    """An exception as "Type: first line of its message", to quote inside a one-line error. Only shown,
    never parsed: what a check decides must not depend on another library's wording, which changes."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0].strip()}" if lines else type(exc).__name__
