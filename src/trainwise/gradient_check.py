"""Gradient checking: autograd against central finite differences and, when given, a hand-written gradient.

    result = trainwise.gradcheck(model, (X, y), loss="mse", manual_grad=my_grad)
    result.ok, result.mismatches       # False, ['bias']
    print(result)                      # a per-parameter table, what disagrees with what, a verdict

All the work happens on a copy of the model converted to `dtype`, float64 by default (the user's model is never
touched), on a bounded batch, with the RNG state restored before every forward so that dropout draws the same
mask at every evaluation. docs/gradcheck.md explains the step size, the error measure and the tolerances.
"""

from __future__ import annotations

import copy
import html
import math
import random
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from trainwise import datasets
from trainwise._display import TextTable, brief_repr
from trainwise.errors import ConfigError, DataError, TrainwiseError
from trainwise.losses import LossFn, make_loss
from trainwise.rng import get_state, owned_generators, set_state

ManualGrad = Callable[[nn.Module, torch.Tensor, torch.Tensor], Mapping[str, Any]]

DEFAULT_SAMPLES = 256
DEFAULT_MAX_ENTRIES = 32
# Central differences err by ~h^2 |f'''| (truncation) plus ~u |L| / h (rounding of the two losses);
# the sum is smallest near h = u^(1/3): ~6e-6 in float64, ~5e-3 in float32. The step is eps * max(1, |p|).
DEFAULT_EPS: dict[torch.dtype, float] = {torch.float64: 1e-6, torch.float32: 1e-3}
# A mismatch is a relative error above this; docs/gradcheck.md shows the errors of correct gradients.
DEFAULT_TOLERANCE: dict[torch.dtype, float] = {torch.float64: 1e-5, torch.float32: 1e-2}
# Relative errors are taken against at least this fraction of the parameter's largest gradient entry,
# so entries near zero (where any rounding is a 100% error) do not raise false alarms.
SCALE_FLOOR = 1e-3
# The rounding noise of a finite difference, in units of (machine epsilon * |loss| / step): the loss is a
# sum over the batch, each term rounded, so its error is a few ulps of |loss|, not one.
NOISE_ULPS = 32.0
# A finite difference that disagrees is taken again with a step this many times smaller (see _retake_at_kinks).
KINK_RETRY = 10.0

SUBJECT_NAMES = {"autograd": "autograd gradient", "fd": "finite-difference estimate", "manual": "manual gradient"}
OBJECT_NAMES = {"autograd": "autograd", "fd": "finite differences", "manual": "the manual gradient"}
PAIRS = (("autograd", "fd"), ("manual", "autograd"), ("manual", "fd"))
PAIR_LABELS = {
    "autograd_vs_fd": "autograd vs FD",
    "manual_vs_autograd": "manual vs autograd",
    "manual_vs_fd": "manual vs FD",
}
HINTS = {
    "autograd": "check custom autograd.Function backwards, tensors detached from the graph, or a kink (ReLU at 0) "
    "within eps of this point",
    "fd": "both analytic gradients agree: the loss may not be smooth here (a ReLU kink) or not reproducible",
    "manual": "fix the hand-written gradient",
}


def _pair_key(pair: tuple[str, str]) -> str:
    return f"{pair[0]}_vs_{pair[1]}"


@dataclass(frozen=True)
class ParameterCheck:
    """One parameter's check: the entries compared and the largest disagreement of each pair of sources."""

    name: str
    shape: tuple[int, ...]
    size: int  # entries in the tensor
    indices: tuple[int, ...]  # flat indices of the entries checked
    values: dict[str, tuple[float, ...]]  # source -> its gradient at those entries
    scale: float  # the largest |gradient| among the checked entries, over all sources
    max_abs_err: dict[str, float]  # pair key ("autograd_vs_fd", ...) -> max |a - b|
    max_rel_err: dict[str, float]  # pair key -> max |a - b| / max(|a|, |b|, floor)
    ok: bool
    problem: str = ""  # what disagrees with what, when not ok
    note: str = ""  # e.g. "autograd gives no gradient (the parameter is not in the loss's graph)"

    @property
    def entries(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        fields = {
            "name": self.name,
            "shape": self.shape,
            "entries": self.entries,
            "ok": self.ok,
            "max_rel_err": self.max_rel_err,
            "problem": self.problem or None,
        }
        return brief_repr("ParameterCheck", fields)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "size": self.size,
            "entries": self.entries,
            "indices": list(self.indices),
            "values": {source: list(values) for source, values in self.values.items()},
            "scale": self.scale,
            "max_abs_err": dict(self.max_abs_err),
            "max_rel_err": dict(self.max_rel_err),
            "ok": self.ok,
            "problem": self.problem,
            "note": self.note,
        }


@dataclass
class GradcheckResult:
    """What gradcheck returns: one ParameterCheck per parameter, `.ok`, `.mismatches` and printable tables.

    gradcheck makes it; its fields are attributes of the same names.

    Args:
        rows: one ParameterCheck per trainable parameter, in model.named_parameters() order.
        loss: the loss at the checked point.
        dtype: the precision the check ran in ("float64" or "float32").
        eps, tolerance: the relative finite-difference step and the largest relative error that agreed.
        samples: the number of samples the loss was computed on.
        pairs: the pairs of gradients compared: "autograd_vs_fd", plus "manual_vs_autograd" and "manual_vs_fd"
            with a manual gradient.
        notes: remarks on the check as a whole (frozen parameters, a loss that is not reproducible); empty by default.
    """

    rows: list[ParameterCheck]
    loss: float  # the loss at the checked point
    dtype: str
    eps: float
    tolerance: float
    samples: int
    pairs: tuple[str, ...]  # the pair keys compared
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    @property
    def mismatches(self) -> list[str]:
        """Names of the parameters whose gradients disagree."""
        return [row.name for row in self.rows if not row.ok]

    @property
    def problems(self) -> list[str]:
        return [row.problem for row in self.rows if not row.ok]

    @property
    def entries_checked(self) -> int:
        return sum(row.entries for row in self.rows)

    def row(self, name: str) -> ParameterCheck:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no parameter {name!r}; the parameters are {', '.join(r.name for r in self.rows)}")

    def verdict(self) -> str:
        """One line: passed or failed, which gradients were compared, and the settings."""
        compared = (
            "autograd, finite differences and the manual gradient agree"
            if "manual_vs_fd" in self.pairs
            else "autograd agrees with finite differences"
        )
        setting = (
            f"{self.entries_checked} entries checked, {self.samples} samples, {self.dtype}, eps {self.eps:g}, "
            f"tolerance {self.tolerance:g}"
        )
        if self.ok:
            return f"gradcheck passed: {compared} on all {len(self.rows)} parameters ({setting})"
        names = ", ".join(repr(name) for name in self.mismatches)
        return f"gradcheck FAILED: {len(self.mismatches)} of {len(self.rows)} parameters mismatch: {names} ({setting})"

    def _columns(self) -> list[str]:
        columns = ["parameter", "shape", "checked", "max |grad|"]
        for key in self.pairs:
            columns += [f"{PAIR_LABELS[key]} abs", f"{PAIR_LABELS[key]} rel"]
        return [*columns, "ok"]

    def _cells(self, row: ParameterCheck) -> list[str]:
        cells = [row.name, "x".join(map(str, row.shape)) or "scalar", f"{row.entries}/{row.size}", _num(row.scale)]
        for key in self.pairs:
            cells += [_num(row.max_abs_err.get(key)), _num(row.max_rel_err.get(key))]
        return [*cells, "ok" if row.ok else "MISMATCH"]

    def _footer(self) -> list[str]:
        return [*self.problems, *self.notes, *(f"{row.name}: {row.note}" for row in self.rows if row.note)]

    def __repr__(self) -> str:
        fields = {
            "ok": self.ok,
            "mismatches": self.mismatches,
            "parameters": len(self.rows),
            "loss": self.loss,
            "dtype": self.dtype,
            "samples": self.samples,
        }
        return brief_repr("GradcheckResult", fields)

    def table(self) -> TextTable:
        """The per-parameter table (mismatches in red): `print()` shows it as text, a rich Console in colour."""
        from rich.table import Table

        table = Table(title=f"gradcheck: loss {self.loss:.6g} on {self.samples} samples, {self.dtype}")
        for i, column in enumerate(self._columns()):
            table.add_column(column, justify="left" if i < 2 else "right", no_wrap=i == 0)
        for row in self.rows:
            table.add_row(*self._cells(row), style=None if row.ok else "bold red")
        return TextTable(table)

    def __rich__(self) -> Any:
        """The table, then what disagrees with what (red), the notes and the verdict."""
        from rich.console import Group
        from rich.text import Text

        lines = [Text(problem, style="red") for problem in self.problems]
        lines += [Text(note) for note in self._footer()[len(self.problems) :]]
        verdict = Text(self.verdict(), style="bold green" if self.ok else "bold red")
        return Group(self.table(), *lines, verdict)

    def __str__(self) -> str:
        header = self._columns()
        body = [self._cells(row) for row in self.rows]
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

        def line(cells: list[str]) -> str:
            padded = (c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
            return "  ".join(padded).rstrip()

        lines = [f"gradcheck: loss {self.loss:.6g} on {self.samples} samples, {self.dtype}", line(header)]
        lines += [line(cells) for cells in body]
        return "\n".join([*lines, *self._footer(), self.verdict()])

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self._columns())
        rows = "".join(
            f"<tr style='{'' if row.ok else 'color:#b00;font-weight:bold'}'>"
            + "".join(f"<td>{html.escape(c)}</td>" for c in self._cells(row))
            + "</tr>"
            for row in self.rows
        )
        footer = "".join(f"<li>{html.escape(text)}</li>" for text in self._footer())
        return (
            f"<div><b>{html.escape(self.verdict())}</b><table><tr>{head}</tr>{rows}</table>"
            f"{f'<ul>{footer}</ul>' if footer else ''}</div>"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "verdict": self.verdict(),
            "loss": self.loss,
            "dtype": self.dtype,
            "eps": self.eps,
            "tolerance": self.tolerance,
            "samples": self.samples,
            "entries_checked": self.entries_checked,
            "pairs": list(self.pairs),
            "mismatches": self.mismatches,
            "problems": self.problems,
            "notes": list(self.notes),
            "parameters": [row.to_dict() for row in self.rows],
        }


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2e}"


# ----------------------------------------------------------------------------- inputs


def _tensor(values: Any, name: str) -> torch.Tensor:
    """A tensor with the values' own precision (float64 arrays stay float64: they are what the user computes on)."""
    if isinstance(values, torch.Tensor):
        return values
    try:
        return torch.as_tensor(np.asarray(values))
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: cannot read it as numbers ({exc})") from None


def _batch(data: Any, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `samples` (X, y) pairs of a tensor pair, a trainwise Dataset, a torch Dataset or a DataLoader."""
    if isinstance(data, datasets.Dataset):
        return data.X[:samples], data.y[:samples]
    if isinstance(data, tuple | list) and len(data) == 2:
        X, y = _tensor(data[0], "data X"), _tensor(data[1], "data y")
        if X.ndim == 0 or y.ndim == 0:
            raise DataError("data: X and y must hold one row per sample, got a single number")
        if X.ndim == 1:  # a single feature given as a vector, as fit reads it
            X = X.unsqueeze(1)
        if X.shape[0] != y.shape[0]:
            raise DataError(f"data: X has {X.shape[0]} samples but y has {y.shape[0]}; they must match")
        return X[:samples], y[:samples]
    if isinstance(data, torch.utils.data.DataLoader):
        xs, ys, taken = [], [], 0
        for batch in data:
            X, y = _pair(batch)
            xs.append(X)
            ys.append(y)
            taken += len(X)
            if taken >= samples:
                break
        if not xs:
            raise DataError("data: the DataLoader yields no batches; give it a non-empty dataset")
        return torch.cat(xs)[:samples], torch.cat(ys)[:samples]
    if isinstance(data, torch.utils.data.Dataset) and hasattr(data, "__len__"):
        count = min(samples, len(data))
        if count == 0:
            raise DataError("data: the Dataset is empty; give gradcheck at least one sample")
        return _pair(torch.utils.data.default_collate([data[i] for i in range(count)]))
    raise DataError(
        f"data: expected (X, y) tensors or arrays, a torch Dataset or DataLoader, got {type(data).__name__}"
    )


def _pair(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, tuple | list) and len(batch) == 2:
        return _tensor(batch[0], "data X"), _tensor(batch[1], "data y")
    raise DataError(f"data: each item must be an (input, target) pair, got {type(batch).__name__}")


def _converted(tensor: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Floating values to the check's dtype; integer class labels and indices stay integers."""
    if tensor.is_complex():
        raise DataError("data: complex values are not supported")
    return tensor.to(device=device, dtype=dtype if tensor.is_floating_point() else tensor.dtype)


# ----------------------------------------------------------------------------- evaluation


class _Objective:
    """The loss as a function of the copy's parameters, the same function at every call: before each forward,
    torch's, Python's and NumPy's global RNGs are seeded and generators the model owns (a random.Random in an
    attribute, as W3's dynamic net keeps) are rewound, so dropout and random depth draw the same every time.
    The caller's global RNG streams are left as they were."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, X: torch.Tensor, y: torch.Tensor, seed: int) -> None:
        self.model, self.loss_fn, self.X, self.y, self.seed = model, loss_fn, X, y, seed
        self.devices = [X.device.index or 0] if X.device.type == "cuda" else []
        self.on_cpu = X.device.type == "cpu"
        self.owned = [(rng, get_state(rng)) for rng in owned_generators(model)]

    @contextmanager
    def same_randomness(self) -> Iterator[None]:
        python_state, numpy_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=self.devices):
            if self.on_cpu:  # torch.manual_seed would also queue a seeding of every CUDA device, at a cost
                torch.default_generator.manual_seed(self.seed)
            else:
                torch.manual_seed(self.seed)
            random.seed(self.seed)
            np.random.seed(self.seed % 2**32)
            for rng, state in self.owned:
                set_state(rng, state)
            try:
                yield
            finally:
                random.setstate(python_state)
                np.random.set_state(numpy_state)

    def __call__(self) -> torch.Tensor:
        with self.same_randomness():
            return self.loss_fn(self.model(self.X), self.y)

    def value(self) -> float:
        with torch.no_grad():
            return float(self())


def _first_loss(objective: _Objective, dtype: torch.dtype) -> torch.Tensor:
    try:
        value = objective()
    except (RuntimeError, TypeError, ValueError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        about_dtype = any(word in first.lower() for word in ("dtype", "double", "scalar type", "float"))
        fix = (
            "make tensors created in forward follow the input's dtype, or pass dtype=torch.float32"
            if about_dtype
            else "`trainwise check` finds the usual causes (shapes, labels beyond the outputs)"
        )
        raise TrainwiseError(
            f"gradcheck: the model's forward or the loss fails on its {str(dtype).removeprefix('torch.')} copy "
            f"({type(exc).__name__}: {first}); {fix}"
        ) from None
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise TrainwiseError(
            f"loss: returns {shape}, but gradcheck needs a single number; use a loss with reduction 'mean' or 'sum'"
        )
    if not math.isfinite(float(value.detach())):
        raise TrainwiseError(
            f"gradcheck: the loss is {float(value.detach())} at this point, where gradients are undefined; "
            "check the data and the initialization (`trainwise check` helps)"
        )
    return value.reshape(())


def _manual_gradients(
    manual_grad: ManualGrad,
    objective: _Objective,
    named: list[tuple[str, nn.Parameter]],
    dtype: torch.dtype,
) -> dict[str, torch.Tensor]:
    """The user's gradients, checked against the parameters: names, shapes, and that the model is left as it was."""
    before = [p.detach().clone() for _, p in named]
    with objective.same_randomness():
        given = manual_grad(objective.model, objective.X, objective.y)
    for (name, p), old in zip(named, before, strict=True):
        if not torch.equal(p.detach(), old):
            raise TrainwiseError(
                f"manual_grad: it changed parameter {name!r}; compute the gradient without updating the model"
            )
    if not isinstance(given, Mapping):
        raise TrainwiseError(
            f"manual_grad: returned {type(given).__name__}; return a dict of gradients keyed by parameter name"
        )
    params = dict(named)
    names = _listing(params)
    unknown = [key for key in given if key not in params]
    if unknown:
        raise TrainwiseError(
            f"manual_grad: {unknown[0]!r} is not a parameter of the model; use the names of "
            f"model.named_parameters(): {names}"
        )
    missing = [name for name, p in named if p.requires_grad and name not in given]
    if missing:
        raise TrainwiseError(
            f"manual_grad: no gradient for parameter {missing[0]!r}; return one tensor for each of {names}"
        )
    gradients: dict[str, torch.Tensor] = {}
    for name, value in given.items():
        param = params[name]
        tensor = _tensor(value.detach() if isinstance(value, torch.Tensor) else value, f"manual_grad {name!r}")
        if tuple(tensor.shape) != tuple(param.shape):
            raise TrainwiseError(
                f"manual_grad: gradient of {name!r} has shape {tuple(tensor.shape)} but the parameter has shape "
                f"{tuple(param.shape)}; return a tensor of the parameter's shape"
            )
        gradients[name] = tensor.to(device=param.device, dtype=dtype)
    return gradients


def _listing(params: Mapping[str, Any], limit: int = 8) -> str:
    names = list(params)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _entries(name: str, size: int, reference: torch.Tensor | None, max_entries: int, seed: int) -> list[int]:
    """Every entry of a small tensor; of a large one, half its largest gradient entries (where a wrong factor
    shows most) and half a seeded random sample of the rest (where a wrong zero would hide)."""
    if size <= max_entries:
        return list(range(size))
    chosen: list[int] = []
    if reference is not None:
        largest = reference.detach().abs().flatten().topk(max_entries // 2).indices
        chosen = sorted(int(i) for i in largest)
    taken = set(chosen)
    rng = random.Random(f"{seed}:{name}")  # per name: adding a parameter does not move the others' samples
    for index in rng.sample(range(size), min(size, 2 * max_entries)):
        if len(chosen) >= max_entries:
            break
        if index not in taken:
            chosen.append(index)
            taken.add(index)
    return chosen


def _finite_differences(
    objective: _Objective, param: nn.Parameter, indices: list[int], eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences (L(p + h) - L(p - h)) / (2h) with h = eps * max(1, |p|) at each entry, and the
    steps h. It divides by the difference of the values actually stored, which in float32 is not exactly 2h."""
    shape = tuple(param.shape)
    estimates, steps = [], []
    with torch.no_grad():
        for index in indices:
            position = tuple(int(i) for i in np.unravel_index(index, shape)) if shape else ()
            original = param[position].item()
            step = eps * max(1.0, abs(original))
            param[position] = original + step
            upper, loss_up = param[position].item(), objective.value()
            param[position] = original - step
            lower, loss_down = param[position].item(), objective.value()
            param[position] = original
            estimates.append((loss_up - loss_down) / (upper - lower))
            steps.append(step)
    return torch.tensor(estimates, dtype=torch.float64), torch.tensor(steps, dtype=torch.float64)


def _values(tensor: torch.Tensor | None, indices: list[int]) -> torch.Tensor:
    """The gradient at the chosen entries, as float64 (no gradient reads as zeros)."""
    if tensor is None:
        return torch.zeros(len(indices), dtype=torch.float64)
    flat = tensor.detach().reshape(-1).to(device="cpu", dtype=torch.float64)
    return flat[torch.tensor(indices, dtype=torch.long)]


def _relative_errors(
    a: torch.Tensor, b: torch.Tensor, scale: float, noise: torch.Tensor | None, tolerance: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per entry |a - b| and |a - b| / max(|a|, |b|, floor).

    The floor is SCALE_FLOOR of the parameter's largest entry, so near-zero entries are judged against the
    gradient's scale; where finite differences take part it is also at least noise / tolerance, so that
    rounding noise alone never exceeds the tolerance."""
    floor = torch.full_like(a, max(SCALE_FLOOR * scale, torch.finfo(torch.float64).tiny))
    if noise is not None:
        floor = torch.maximum(floor, noise / tolerance)
    diff = (a - b).abs()
    return diff, diff / torch.maximum(torch.maximum(a.abs(), b.abs()), floor)


def _compare(
    values: dict[str, torch.Tensor],
    pairs: tuple[tuple[str, str], ...],
    noise: torch.Tensor,
    tolerance: float,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Per-entry absolute and relative errors of each pair, keyed by pair ("autograd_vs_fd", ...)."""
    scale = max((float(v.abs().max()) for v in values.values() if len(v)), default=0.0)
    abs_err, rel_err = {}, {}
    for pair in pairs:
        key = _pair_key(pair)
        a, b = values[pair[0]], values[pair[1]]
        abs_err[key], rel_err[key] = _relative_errors(a, b, scale, noise if "fd" in pair else None, tolerance)
    return abs_err, rel_err


def _problem(name: str, failed: dict[str, float], sources: tuple[str, ...]) -> str:
    """Which source disagrees: the one in both failing pairs while the pair without it agrees."""
    failing = [pair for pair in PAIRS if _pair_key(pair) in failed]
    worst = max(failed.values())
    for odd in sources:
        others = [source for source in sources if source != odd]
        if all(odd in pair for pair in failing) and len(failing) == len(others):
            against = " and ".join(OBJECT_NAMES[source] for source in others)
            return f"{SUBJECT_NAMES[odd]} of {name!r} disagrees with {against}: max rel err {worst:.3g}; {HINTS[odd]}"
    if len(failing) == 3:
        return f"autograd, finite differences and the manual gradient of {name!r} all disagree: max rel err {worst:.3g}"
    (a, b) = failing[0]
    return (
        f"{SUBJECT_NAMES[a]} of {name!r} disagrees with {OBJECT_NAMES[b]} (the third source lies between them): "
        f"max rel err {worst:.3g}"
    )


@dataclass(frozen=True)
class _Settings:
    eps: float
    tolerance: float
    max_entries: int
    seed: int
    noise_in_loss: float  # the rounding error of one loss evaluation


def _check_parameter(
    name: str,
    param: nn.Parameter,
    grad: torch.Tensor | None,
    manual: torch.Tensor | None,
    objective: _Objective,
    settings: _Settings,
) -> ParameterCheck:
    indices = _entries(name, param.numel(), grad if grad is not None else manual, settings.max_entries, settings.seed)
    fd, steps = _finite_differences(objective, param, indices, settings.eps)
    values = {"autograd": _values(grad, indices), "fd": fd}
    if manual is not None:
        values["manual"] = _values(manual, indices)
    sources = tuple(values)
    pairs = tuple(pair for pair in PAIRS if set(pair) <= set(sources))
    retaken = _retake_at_kinks(objective, param, indices, values, steps, pairs, settings)
    # the rounding noise of each finite difference, in gradient units: a gradient below it reads as zero
    noise = settings.noise_in_loss / steps
    abs_err, rel_err = _compare(values, pairs, noise, settings.tolerance)
    worst = {key: float(err.max()) if len(err) else 0.0 for key, err in rel_err.items()}
    failed = {key: err for key, err in worst.items() if err > settings.tolerance}
    scale = max((float(v.abs().max()) for v in values.values() if len(v)), default=0.0)
    largest_noise = float(noise.max()) if len(noise) else 0.0
    notes = []
    if grad is None:
        notes.append("autograd gives no gradient (the parameter is not in the loss's graph)")
    elif indices and scale <= largest_noise:
        notes.append(f"its gradient (max {scale:.2g}) is below the finite-difference noise ({largest_noise:.2g})")
    if retaken:
        notes.append(f"{retaken} finite difference(s) retaken with a {KINK_RETRY:g}x smaller step (a kink nearby)")
    return ParameterCheck(
        name=name,
        shape=tuple(param.shape),
        size=param.numel(),
        indices=tuple(indices),
        values={source: tuple(float(v) for v in values[source]) for source in sources},
        scale=scale,
        max_abs_err={key: float(err.max()) if len(err) else 0.0 for key, err in abs_err.items()},
        max_rel_err=worst,
        ok=not failed,
        problem=_problem(name, failed, sources) if failed else "",
        note="; ".join(notes),
    )


def _retake_at_kinks(
    objective: _Objective,
    param: nn.Parameter,
    indices: list[int],
    values: dict[str, torch.Tensor],
    steps: torch.Tensor,
    pairs: tuple[tuple[str, str], ...],
    settings: _Settings,
) -> int:
    """Where a finite difference disagrees with every analytic gradient, take it again with a smaller step and
    keep it where it then agrees with one of them; updates values["fd"] and steps in place, returns how many
    changed. A step that straddles a ReLU kink mixes two slopes, and the smaller step rarely straddles it;
    a wrong gradient stays wrong at every step, so this cannot hide one."""
    _, rel_err = _compare(values, pairs, settings.noise_in_loss / steps, settings.tolerance)
    suspect = torch.ones(len(indices), dtype=torch.bool)  # disagrees with every analytic gradient
    for pair, err in zip(pairs, rel_err.values(), strict=True):
        if "fd" in pair:
            suspect &= err > settings.tolerance
    if not suspect.any():
        return 0
    positions = suspect.nonzero().flatten()
    fd, new_steps = _finite_differences(objective, param, [indices[i] for i in positions], settings.eps / KINK_RETRY)
    scale = max(float(v.abs().max()) for v in values.values())
    resolved = torch.zeros(len(positions), dtype=torch.bool)
    for source, value in values.items():
        if source != "fd":
            _, err = _relative_errors(
                value[positions], fd, scale, settings.noise_in_loss / new_steps, settings.tolerance
            )
            resolved |= err <= settings.tolerance
    values["fd"][positions[resolved]] = fd[resolved]
    steps[positions[resolved]] = new_steps[resolved]
    return int(resolved.sum())


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}: must be a whole number >= 1, got {value!r}")
    return value


def _copy(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    try:
        return copy.deepcopy(model).to(dtype)
    except Exception as exc:  # a module holding something deepcopy cannot copy (an open file, a lock)
        raise TrainwiseError(f"model: cannot be copied for the check ({exc}); make it deep-copyable") from None


def gradcheck(
    model: nn.Module,
    data: Any,
    *,
    loss: str | LossFn,
    manual_grad: ManualGrad | None = None,
    eps: float | None = None,
    dtype: torch.dtype = torch.float64,
    samples: int = DEFAULT_SAMPLES,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    tolerance: float | None = None,
    seed: int = 0,
) -> GradcheckResult:
    """Compare autograd's gradient of the loss with central finite differences for every parameter and, when
    given, with `manual_grad(model, X, y) -> {parameter name: gradient}` (names of model.named_parameters()).

    data: (X, y) tensors or arrays, a trainwise or torch Dataset, or a DataLoader; the first `samples`
    samples are used. Tensors with more than `max_entries` entries are checked at that many entries.
    Works on a copy of the model in `dtype` (the model passed in is not changed); eps is the relative step
    (default 1e-6 in float64, 1e-3 in float32) and tolerance the largest relative error that still agrees
    (default 1e-5 in float64, 1e-2 in float32). The copy keeps the model's train/eval mode; the RNGs are
    reset to `seed` before every forward so that dropout is the same function at every evaluation.

    Args:
        model: the nn.Module to check; a deep copy of it is checked, the model itself is left unchanged.
        data: (X, y) tensors or arrays, a trainwise or torch Dataset of (input, target) pairs, or a DataLoader.
        loss: a loss name ("mse", "cross_entropy", ...) or a function of (output, target) returning one number.
        manual_grad: a function of (model copy, X, y), in `dtype`, returning {parameter name: gradient} for every
            trainable parameter (tensors or arrays of its shape); None (default) checks autograd only.
        eps: the finite-difference step relative to max(1, |parameter|), between 0 and 1; None: the dtype's default.
        dtype: the precision of the check: torch.float64 (default) or torch.float32.
        samples: how many samples of the data to use, from the start (default 256).
        max_entries: the most entries checked per parameter tensor (default 32); smaller tensors are checked whole.
        tolerance: the largest relative error that still counts as agreement; None: the dtype's default.
        seed: the seed of the RNGs at every forward and of the choice of entries to check.

    Returns:
        A GradcheckResult: `.ok`, `.mismatches` (the parameters whose gradients disagree) and a printable table.

    Raises:
        ConfigError: a dtype other than float64/float32, or eps, tolerance, samples or max_entries out of range.
        DataError: data that cannot be read as (X, y) samples, or that has none.
    """
    if dtype not in DEFAULT_EPS:
        raise ConfigError(f"dtype: gradcheck runs in torch.float64 or torch.float32, not {dtype}")
    if eps is not None and not (isinstance(eps, int | float) and 0 < eps < 1):
        raise ConfigError(f"eps: must be a number between 0 and 1 (default {DEFAULT_EPS[dtype]:g}), got {eps!r}")
    if tolerance is not None and not (isinstance(tolerance, int | float) and tolerance > 0):
        raise ConfigError(f"tolerance: must be a positive number, got {tolerance!r}")
    samples, max_entries = _positive_int("samples", samples), _positive_int("max_entries", max_entries)
    work = _copy(model, dtype)
    X, y = _batch(data, samples)
    if len(X) == 0:
        raise DataError("data: has no samples; give gradcheck at least one")
    named = list(work.named_parameters())
    device = named[0][1].device if named else torch.device("cpu")
    X, y = _converted(X, dtype, device), _converted(y, dtype, device)
    loss_fn = make_loss(loss)
    if isinstance(loss_fn, nn.Module):  # class weights and other buffers must follow the dtype too
        loss_fn = copy.deepcopy(loss_fn).to(device=device, dtype=dtype)
    objective = _Objective(work, loss_fn, X, y, seed)

    value = _first_loss(objective, dtype)
    trainable = [(name, p) for name, p in named if p.requires_grad]
    autograd: list[torch.Tensor | None] = [None] * len(trainable)
    if value.requires_grad and trainable:
        found = torch.autograd.grad(value, [p for _, p in trainable], allow_unused=True)
        autograd = [g.detach() if g is not None else None for g in found]
    loss_value = float(value.detach())
    settings = _Settings(
        eps=float(eps) if eps is not None else DEFAULT_EPS[dtype],
        tolerance=float(tolerance) if tolerance is not None else DEFAULT_TOLERANCE[dtype],
        max_entries=max_entries,
        seed=seed,
        noise_in_loss=NOISE_ULPS * torch.finfo(dtype).eps * max(abs(loss_value), torch.finfo(dtype).tiny),
    )
    notes: list[str] = []
    drift = max(abs(objective.value() - loss_value) for _ in range(2))
    if drift > settings.noise_in_loss:
        notes.append(
            f"the loss is not reproducible: evaluations at the same point differ by {drift:.3g} (randomness the "
            "check cannot rewind?), so finite differences are unreliable"
        )
    manual = _manual_gradients(manual_grad, objective, named, dtype) if manual_grad is not None else None
    rows = [
        _check_parameter(name, param, grad, manual[name] if manual else None, objective, settings)
        for (name, param), grad in zip(trainable, autograd, strict=True)
    ]
    notes += [f"{name}: frozen (requires_grad=False), not checked" for name, p in named if not p.requires_grad]
    pairs = PAIRS if manual is not None else PAIRS[:1]
    return GradcheckResult(
        rows=rows,
        loss=loss_value,
        dtype=str(dtype).removeprefix("torch."),
        eps=settings.eps,
        tolerance=settings.tolerance,
        samples=len(X),
        pairs=tuple(_pair_key(pair) for pair in pairs),
        notes=notes,
    )
