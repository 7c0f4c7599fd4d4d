"""Turning user data into batches: splits, scaling, features, and the two batch sources.

In-memory data (tensors or arrays) lives on the training device and each epoch slices one
permuted copy, so a step costs one slice instead of a per-sample collation. Data that does not
fit in memory comes as a torch Dataset or DataLoader and is moved to the device batch by batch.

Every source yields (inputs, target) pairs. A Dataset's items may be (x, y) pairs, (x1, x2, ..., y)
tuples (inputs: the tuple of all but the last), dicts (inputs: the dict; target: its "labels", "label",
"targets", "target" or "y" entry, if any) or (x,) alone (no target: the model computes its loss).
A Hugging Face datasets.Dataset is read in its torch format: dict items.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, random_split
from torch.utils.data import Dataset as TorchDataset

from trainwise import datasets
from trainwise.errors import DataError

Normalize = Literal["none", "standard", "minmax"] | float | None
Batch = tuple[Any, Any]  # (inputs, target): a tensor, a tuple or a dict of tensors; the target a tensor or None
TARGET_KEYS = ("labels", "label", "targets", "target", "y")  # a dict batch's target, in this order


def split_batch(batch: Any) -> Batch:
    """A loader's batch as (inputs, target); see the module docstring."""
    if isinstance(batch, Mapping):
        key = next((key for key in TARGET_KEYS if key in batch), None)
        return dict(batch), batch[key] if key is not None else None
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, Sequence) and len(batch) >= 1 and not isinstance(batch, str):
        if len(batch) == 1:
            return batch[0], None
        inputs = batch[0] if len(batch) == 2 else tuple(batch[:-1])
        return tuple(inputs) if isinstance(inputs, list) else inputs, batch[-1]
    raise DataError(
        f"data: a batch of the Dataset/DataLoader is a {type(batch).__name__}; give (inputs, target) pairs, "
        "(x1, ..., target) tuples or dicts of tensors"
    )


class _Items(TorchDataset[Any]):
    """A map-style source that is not a torch Dataset (a Hugging Face datasets.Dataset), as one."""

    def __init__(self, items: Any) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        return self.items[index]


def hugging_face_items(data: Any) -> Any:
    """A Hugging Face datasets.Dataset as a torch Dataset whose items are dicts of tensors (its torch
    format: the columns as tensors, "labels" the target); anything else as it is. Duck-typed: trainwise
    does not import `datasets`."""
    if type(data).__module__.startswith("datasets.") and hasattr(data, "with_format"):
        return _Items(data.with_format("torch"))
    return data


def to_device(value: Any, device: torch.device) -> Any:
    """Tensors, and the tensors in tuples, lists and dicts, on `device` (non-blocking from pinned memory)."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, Mapping):
        return {key: to_device(item, device) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return type(value)(to_device(item, device) for item in value)
    return value


def samples_in(inputs: Any) -> int:
    """A batch's samples: the first dimension of its (first) input tensor."""
    if isinstance(inputs, torch.Tensor):
        return int(inputs.shape[0])
    items = inputs.values() if isinstance(inputs, Mapping) else inputs
    for item in items:
        if isinstance(item, torch.Tensor) and item.ndim:
            return int(item.shape[0])
    raise DataError("data: a batch holds no tensor with a batch dimension; each input must be a tensor")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise DataError(f"device: {device!r} is not a device; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise DataError(f"device: {device!r} asked for, but CUDA is not available here; use device 'auto' or 'cpu'")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise DataError(
            f"device: {device!r} asked for, but this machine has {torch.cuda.device_count()} CUDA device(s); "
            "use 'cuda' or 'cuda:0'"
        )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise DataError(f"device: {device!r} asked for, but MPS is not available here; use device 'auto' or 'cpu'")
    return resolved


def as_tensor(values: Any, name: str) -> torch.Tensor:
    """A tensor from a tensor or array: float64 becomes float32 (torch's default), integers and bools int64."""
    if isinstance(values, torch.Tensor):
        tensor = values
    else:
        try:
            tensor = torch.as_tensor(np.asarray(values))
        except (TypeError, ValueError) as exc:  # strings, objects, ragged lists
            raise DataError(f"{name}: cannot read it as numbers ({exc})") from None
    if tensor.is_complex():
        raise DataError(f"{name}: complex values are not supported")
    if tensor.dtype == torch.float64:
        return tensor.float()
    if tensor.is_floating_point():
        return tensor
    return tensor.long()


# ----------------------------------------------------------------------------- scaling


@dataclass
class AffineTransform:
    """x * scale + shift, fitted on the training split only and applied everywhere after.

    Standardization, min-max scaling and a constant factor (W1's t_un = 0.1 * t_u) are all this.
    """

    method: str
    scale: torch.Tensor
    shift: torch.Tensor

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        return X * self.scale.to(X.device) + self.shift.to(X.device)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "shape": list(self.scale.shape),
            "scale": self.scale.flatten().tolist(),
            "shift": self.shift.flatten().tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AffineTransform:
        shape = tuple(data["shape"])
        scale = torch.tensor(data["scale"], dtype=torch.float32).reshape(shape)
        shift = torch.tensor(data["shift"], dtype=torch.float32).reshape(shape)
        return cls(str(data["method"]), scale, shift)


def fit_transform(X: torch.Tensor, method: Normalize) -> AffineTransform | None:
    """Fit a scaling on X: 'standard' (zero mean, unit variance per feature; per channel for images),
    'minmax' (to [0, 1] per feature), a number (multiply by it), or None/'none'."""
    if method is None or method == "none":
        return None
    if isinstance(method, int | float) and not isinstance(method, bool):
        if not math.isfinite(method) or method == 0:
            raise DataError(f"data.normalize: a scale factor must be finite and non-zero, got {method}")
        one = torch.ones(())
        return AffineTransform("scale", one * float(method), torch.zeros(()))
    if method not in ("standard", "minmax"):
        raise DataError(f"data.normalize: {method!r} is not allowed; use 'standard', 'minmax', 'none' or a number")
    # images (N, C, H, W): statistics per channel; tabular (N, F): per feature
    dims = (0, *range(2, X.ndim)) if X.ndim > 2 else (0,)
    Xd = X.double()
    if method == "standard":
        center, spread = Xd.mean(dim=dims, keepdim=True), Xd.std(dim=dims, keepdim=True, correction=0)
    else:
        low, high = Xd.amin(dim=dims, keepdim=True), Xd.amax(dim=dims, keepdim=True)
        center, spread = low, high - low
    spread = torch.where(spread > 0, spread, torch.ones_like(spread))  # constant features stay as they are
    scale = (1.0 / spread).float().squeeze(0)
    return AffineTransform(method, scale, (-center / spread).float().squeeze(0))


def poly_features(X: torch.Tensor, degree: int) -> torch.Tensor:
    """[x, x^2, ..., x^degree] for every feature (no cross terms), as W4's (x, x^2, x^3)."""
    if degree < 1:
        raise DataError(f"data.poly_features: degree must be at least 1, got {degree}")
    X = X.reshape(X.shape[0], -1)
    return torch.cat([X.pow(k) for k in range(1, degree + 1)], dim=1)


def one_hot(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(N,) class labels 0..n_classes-1 as (N, n_classes) float rows of 0 and 1."""
    labels = y.long().reshape(-1)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        low, high = int(labels.min()), int(labels.max())
        raise DataError(f"data.one_hot: labels run from {low} to {high}, outside 0..{n_classes - 1}")
    return torch.nn.functional.one_hot(labels, n_classes).float()


# ----------------------------------------------------------------------------- splits


def split_indices(
    y: torch.Tensor, val_fraction: float, *, seed: int, stratify: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded train/validation indices; stratified keeps each class's share in both parts."""
    n = y.shape[0]
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_split: must be between 0 and 1 (exclusive), got {val_fraction}")
    generator = torch.Generator().manual_seed(seed)
    if not stratify:
        n_val = round(n * val_fraction)
        if n_val < 1 or n_val >= n:
            raise DataError(f"val_split: {val_fraction} of {n} samples leaves an empty train or validation set")
        perm = torch.randperm(n, generator=generator)
        return perm[n_val:].sort().values, perm[:n_val].sort().values
    labels = _class_labels(y)
    train_parts, val_parts = [], []
    for label in labels.unique():
        members = (labels == label).nonzero().reshape(-1)
        members = members[torch.randperm(members.numel(), generator=generator)]
        n_val = round(members.numel() * val_fraction)
        val_parts.append(members[:n_val])
        train_parts.append(members[n_val:])
    train, val = torch.cat(train_parts).sort().values, torch.cat(val_parts).sort().values
    if val.numel() == 0 or train.numel() == 0:
        raise DataError(f"val_split: {val_fraction} of {n} samples leaves an empty train or validation set")
    return train, val


def _class_labels(y: torch.Tensor) -> torch.Tensor:
    """(N,) labels to stratify on: class indices, (N, 1) columns, or one-hot rows (their argmax)."""
    n = y.shape[0]
    y = y.detach().cpu()
    if y.ndim > 1 and math.prod(y.shape[1:]) > 1:
        rows = y.reshape(n, -1)
        if not (((rows == 0) | (rows == 1)).all() and (rows.sum(1) == 1).all()):
            raise DataError("data.stratify: needs class labels, but the targets are continuous; set stratify = false")
        return rows.argmax(1)
    labels = y.reshape(n)
    # float targets are classes only when every value is a whole number (0.0/1.0 for BCE)
    if labels.is_floating_point() and not bool((labels == labels.round()).all()):
        raise DataError("data.stratify: needs class labels, but the targets are continuous; set stratify = false")
    return labels


# ----------------------------------------------------------------------------- batch sources


class InMemoryBatches:
    """Batches sliced from device-resident tensors, re-permuted each epoch when shuffling (on an
    accelerator the epoch's permuted copy is sliced; on the CPU each batch gathers its rows).

    Full batch (batch_size None) takes the tensors as they are: the gradient does not depend on order.
    With shard=(rank, processes), a distributed run: every process draws the same permutation and
    takes its share of each step's processes * batch_size samples (a last step with fewer samples than
    processes is left out: a process with an empty batch has no loss).
    """

    def __init__(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        batch_size: int | None,
        *,
        shuffle: bool = True,
        generator: torch.Generator | None = None,
        shard: tuple[int, int] | None = None,
    ) -> None:
        if X.shape[0] != y.shape[0]:
            raise DataError(f"data: X has {X.shape[0]} samples but y has {y.shape[0]}; they must match")
        if X.shape[0] == 0:
            raise DataError("data: no samples")
        if batch_size is not None and batch_size < 1:
            raise DataError(f"batch_size: must be at least 1 (or None for the full batch), got {batch_size}")
        self.X, self.y = X, y
        self.rank, self.processes = shard or (0, 1)
        self.n = X.shape[0]
        if self.n < self.processes:
            raise DataError(f"data: {self.n} samples cannot be shared by {self.processes} processes")
        self.batch_size = self.n if batch_size is None else min(batch_size, self.n)
        # samples per optimizer step, over all processes
        self.step_samples = self.n if batch_size is None else min(self.batch_size * self.processes, self.n)
        self.shuffle = shuffle and self.step_samples < self.n
        self.generator = generator or torch.Generator()
        self.epoch_start = self.generator.get_state()

    def __len__(self) -> int:
        steps, left = divmod(self.n, self.step_samples)
        return steps + (1 if left >= self.processes else 0)

    def __iter__(self) -> Iterator[Batch]:
        return self.iterate()

    def iterate(self, skip: int = 0) -> Iterator[Batch]:
        """One epoch's batches, the first `skip` left out (resuming mid-epoch). A shuffling epoch
        first notes the generator's state, so a checkpoint can redraw the same permutation."""
        X, y = self.X, self.y
        if self.step_samples >= self.n and self.processes == 1:  # the full batch: the tensors, not a view
            if skip == 0:
                yield X, y
            return
        rows = None  # on the CPU, each shuffled batch's rows of the unpermuted tensors
        if self.shuffle:
            self.epoch_start = self.generator.get_state()
            perm = torch.randperm(self.n, generator=self.generator).to(X.device, non_blocking=True)
            if X.device.type != "cpu":  # one gather kernel per epoch, then every batch is a slice
                X, y = X[perm], y[perm]
            else:  # each batch gathers its own rows: the same batches as slicing a permuted copy, without
                rows = perm  # the copy (the data set's size again in memory, and a pass over all of it)
        size = self.step_samples
        for step in range(skip, len(self)):
            start, stop = self._share(step * size, min(step * size + size, self.n))
            if rows is None:
                yield X[start:stop], y[start:stop]
            else:
                batch_rows = rows[start:stop]
                yield X.index_select(0, batch_rows), y.index_select(0, batch_rows)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All the samples (this process's data set, unshuffled)."""
        return self.X, self.y

    def _share(self, start: int, stop: int) -> tuple[int, int]:
        """This process's part of rows start..stop (sizes differ by at most one, as torch.tensor_split)."""
        if self.processes == 1:
            return start, stop
        base, extra = divmod(stop - start, self.processes)
        low = start + self.rank * base + min(self.rank, extra)
        return low, low + base + (1 if self.rank < extra else 0)

    def state_dict(self, *, mid_epoch: bool) -> dict[str, Any]:
        """Where the batch order stands. Mid-epoch: the generator's state when the epoch began, from which
        iterate(skip) redraws the same permutation; between epochs: its state now."""
        if not self.shuffle:
            return {}
        return {"generator": self.epoch_start if mid_epoch else self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("generator") is not None:
            self.generator.set_state(state["generator"])


class LoaderBatches:
    """Batches from a DataLoader, moved to the device (non-blocking from pinned memory on CUDA)."""

    def __init__(self, loader: DataLoader, device: torch.device) -> None:
        self.loader = loader
        self.device = device
        self.n = len(loader.dataset)  # type: ignore[arg-type]
        self.epoch_start: dict[str, Any] = {}
        self._resume: dict[str, Any] | None = None
        self.epoch = 0  # a DistributedSampler shuffles by epoch (set_epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        return self.iterate()

    def iterate(self, skip: int = 0) -> Iterator[Batch]:
        """One epoch's batches, the first `skip` drawn and dropped (resuming mid-epoch: the sampler, and
        any random augmentation, then draw what they drew before the interruption)."""
        resume, self._resume = self._resume, None
        self.epoch_start = resume if resume is not None and skip else self._epoch_start()
        if isinstance(self.loader.sampler, DistributedSampler):
            self.loader.sampler.set_epoch(self.epoch)
        self.epoch += 1
        if resume is not None and skip:
            now = torch.get_rng_state()
            self._set_epoch_start(resume)
            batches = iter(self.loader)
            for _ in range(skip):
                next(batches, None)
            torch.set_rng_state(now)  # the checkpoint's own state, for what comes after
        else:
            batches = iter(self.loader)
        for batch in batches:
            yield to_device(split_batch(batch), self.device)

    def tensors(self) -> None:
        """None: the samples are loaded batch by batch."""
        return None

    def _epoch_start(self) -> dict[str, Any]:
        # a sampler without its own generator draws its seed from torch's global one
        generator = self.loader.generator
        return {"torch": torch.get_rng_state(), "generator": generator.get_state() if generator is not None else None,
                "epoch": self.epoch}  # fmt: skip

    def _set_epoch_start(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        if state.get("generator") is not None and self.loader.generator is not None:
            self.loader.generator.set_state(state["generator"])

    def state_dict(self, *, mid_epoch: bool) -> dict[str, Any]:
        """Mid-epoch: the random states when the epoch began; between epochs: the loader generator's now."""
        if mid_epoch:
            return dict(self.epoch_start)
        generator = self.loader.generator
        return {"generator": generator.get_state() if generator is not None else None, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = state.get("epoch", 0)
        if "torch" in state:  # mid-epoch: iterate(skip) rewinds to the epoch's start, then skips
            self._resume = state
        elif state.get("generator") is not None and self.loader.generator is not None:
            self.loader.generator.set_state(state["generator"])


class BatchSource(Protocol):
    """What the loop, the LR finder, evaluation and checkpoints use of a batch source (InMemoryBatches,
    LoaderBatches, or one of your own)."""

    def __len__(self) -> int: ...  # batches an epoch

    def iterate(self, skip: int = 0) -> Iterator[Batch]: ...  # an epoch's (inputs, target), the first `skip` left out

    def state_dict(self, *, mid_epoch: bool) -> dict[str, Any]: ...  # where the batch order stands

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor] | None: ...  # all the data, when it is in memory


@dataclass
class PreparedData:
    """What fit needs: the batch sources, the fitted scaling, and the shapes for building models."""

    train: BatchSource
    val: BatchSource | None
    transform: AffineTransform | None
    sample_shape: tuple[int, ...]
    target_shape: tuple[int, ...]
    has_targets: bool = True  # False: a Dataset of inputs alone, for a model that computes its loss


def to_xy(data: Any, name: str = "data") -> tuple[torch.Tensor, torch.Tensor]:
    """(X, y) tensors from a pair of tensors/arrays or a loaded datasets.Dataset."""
    if isinstance(data, datasets.Dataset):
        return data.X, data.y
    if isinstance(data, tuple | list) and len(data) == 2:
        X, y = as_tensor(data[0], f"{name} X"), as_tensor(data[1], f"{name} y")
        if X.ndim == 0 or y.ndim == 0:
            raise DataError(f"{name}: X and y must hold one row per sample, got a single number")
        if X.ndim == 1:  # a single feature given as a vector
            X = X.unsqueeze(1)
        if X.shape[0] != y.shape[0]:
            raise DataError(f"{name}: X has {X.shape[0]} samples but y has {y.shape[0]}; they must match")
        return X, y
    raise DataError(
        f"{name}: expected (X, y) tensors or arrays, a torch Dataset, a DataLoader or a dataset name, "
        f"got {type(data).__name__}"
    )


def prepare_data(
    data: Any,
    *,
    batch_size: int | None,
    val_split: float = 0.0,
    val_data: Any = None,
    stratify: bool = False,
    normalize: Normalize = None,
    shuffle: bool = True,
    seed: int = 0,
    device: torch.device,
    shard: tuple[int, int] | None = None,
    workers: int = 0,
) -> PreparedData:
    """Split, scale (fitted on the training part only) and batch the data for training. shard=(rank,
    processes): this process's share of each batch, in a distributed run. workers: the DataLoader worker
    processes that load a torch Dataset's items (in-memory tensors need none)."""
    if isinstance(data, str):
        data = datasets.load_dataset(data)
    data, val_data = hugging_face_items(data), hugging_face_items(val_data)
    if isinstance(data, datasets.Dataset) and val_data is None and not val_split and data.X_val is not None:
        val_data = (data.X_val, data.y_val)
    if workers and not isinstance(data, TorchDataset):
        raise DataError(
            "workers: worker processes load a torch Dataset's items; in-memory tensors are batched without them, "
            "and a DataLoader keeps its own num_workers"
        )
    if isinstance(data, DataLoader | TorchDataset):
        return _prepare_streamed(
            data, batch_size, val_split, val_data, normalize, shuffle, seed, device, shard, workers
        )
    X, y = to_xy(data)
    X_val = y_val = None
    if val_split:
        if val_data is not None:
            raise DataError("give either val_split or val_data, not both")
        train_idx, val_idx = split_indices(y, val_split, seed=seed, stratify=stratify)
        X, y, X_val, y_val = X[train_idx], y[train_idx], X[val_idx], y[val_idx]
    elif val_data is not None and not isinstance(val_data, DataLoader | TorchDataset):
        X_val, y_val = to_xy(val_data, "val_data")
        if X_val.shape[1:] != X.shape[1:]:
            raise DataError(
                f"val_data: samples of shape {tuple(X_val.shape[1:])} but the training samples are "
                f"{tuple(X.shape[1:])}; they must match"
            )
    transform = fit_transform(X, normalize)
    if transform is not None:
        X = transform(X)
        X_val = transform(X_val) if X_val is not None else None
    generator = torch.Generator().manual_seed(seed)
    train = InMemoryBatches(X.to(device), y.to(device), batch_size, shuffle=shuffle, generator=generator, shard=shard)
    val: BatchSource | None = None
    if X_val is not None and y_val is not None:
        val = InMemoryBatches(X_val.to(device), y_val.to(device), batch_size, shuffle=False)
    elif val_data is not None:  # a Dataset or DataLoader next to in-memory training data
        if transform is not None:
            raise DataError(
                "data.normalize: val_data is a Dataset/DataLoader, which the fitted scaling cannot be "
                "applied to; pass it as (X, y) tensors"
            )
        val = _loader_batches(val_data, batch_size, device)
    return PreparedData(train, val, transform, tuple(X.shape[1:]), tuple(y.shape[1:]))


def _prepare_streamed(
    data: DataLoader | TorchDataset,
    batch_size: int | None,
    val_split: float,
    val_data: Any,
    normalize: Normalize,
    shuffle: bool,
    seed: int,
    device: torch.device,
    shard: tuple[int, int] | None = None,
    workers: int = 0,
) -> PreparedData:
    if normalize not in (None, "none"):
        raise DataError(
            "data.normalize: scaling is fitted on in-memory data only; pass (X, y) tensors, "
            "or normalize inside your Dataset"
        )
    generator = torch.Generator().manual_seed(seed)
    loading = _loader_options(device, workers)
    val: BatchSource | None = None
    if isinstance(data, DataLoader):
        if val_split:
            raise DataError("val_split: a DataLoader cannot be split; pass the Dataset, or val_data")
        if shard is not None:
            raise DataError("data: in a distributed run pass the Dataset, not a DataLoader, so that each "
                            "process can take its share (a DistributedSampler)")  # fmt: skip
        train_loader = data
    else:
        dataset: TorchDataset = data
        if val_split:
            n = len(dataset)  # type: ignore[arg-type]
            n_val = round(n * val_split)
            if not 0 < n_val < n:
                raise DataError(f"val_split: {val_split} of {n} samples leaves an empty train or validation set")
            dataset, held_out = random_split(dataset, [n - n_val, n_val], generator=generator)
            val = LoaderBatches(DataLoader(held_out, batch_size=batch_size or n_val, **loading), device)
        size = batch_size or len(dataset)  # type: ignore[arg-type]
        if shard is not None:
            rank, processes = shard
            sampler: DistributedSampler[Any] = DistributedSampler(dataset, processes, rank, shuffle=shuffle, seed=seed)
            train_loader = DataLoader(dataset, batch_size=size, sampler=sampler, **loading)
        else:
            train_loader = DataLoader(dataset, batch_size=size, shuffle=shuffle, generator=generator, **loading)
    if val_data is not None:
        if isinstance(val_data, DataLoader | TorchDataset):
            val = _loader_batches(val_data, batch_size, device, workers)
        else:
            X_val, y_val = to_xy(val_data, "val_data")
            val = InMemoryBatches(X_val.to(device), y_val.to(device), batch_size, shuffle=False)
    train = LoaderBatches(train_loader, device)
    # the first batch gives the sample shapes (a collate_fn may change them, so not dataset[0]); the random
    # states it draws from are put back, so that training draws the same with and without worker processes
    # (their prefetching draws ahead)
    states = torch.get_rng_state(), train_loader.generator.get_state() if train_loader.generator else None
    first = next(iter(train_loader), None)
    torch.set_rng_state(states[0])
    if states[1] is not None and train_loader.generator is not None:
        train_loader.generator.set_state(states[1])
    if first is None:
        raise DataError("data: the Dataset/DataLoader yields no batches")
    first_x, first_y = split_batch(first)
    samples_in(first_x)  # a batch without a batch dimension: said before training
    shape = tuple(first_x.shape[1:]) if isinstance(first_x, torch.Tensor) else ()
    target_shape = tuple(first_y.shape[1:]) if isinstance(first_y, torch.Tensor) else ()
    return PreparedData(train, val, None, shape, target_shape, has_targets=first_y is not None)


def _loader_batches(
    data: DataLoader | TorchDataset, batch_size: int | None, device: torch.device, workers: int = 0
) -> LoaderBatches:
    if isinstance(data, DataLoader):
        return LoaderBatches(data, device)
    return LoaderBatches(DataLoader(data, batch_size=batch_size or 1024, **_loader_options(device, workers)), device)


def _loader_options(device: torch.device, workers: int) -> dict[str, Any]:
    # worker processes load items while the step runs; not persistent, so that each epoch's iterator draws its
    # seed from the loader's generator as without workers: the same shuffles, and resuming mid-epoch stays exact.
    # Pinned pages copy faster to CUDA.
    return {"num_workers": workers, "pin_memory": device.type == "cuda"}


def batches_for(data: Any, batch_size: int | None, device: torch.device, transform: Any = None) -> BatchSource:
    """Unshuffled batches of any data fit takes (a batch source as it is), for evaluation: the inputs of
    in-memory data scaled by `transform`, `batch_size` None as large batches (4096 rows, 1024 items)."""
    if hasattr(data, "iterate") and hasattr(data, "tensors"):  # a batch source already
        return data
    if isinstance(data, str):
        data = datasets.load_dataset(data)
    data = hugging_face_items(data)
    if isinstance(data, DataLoader | TorchDataset):
        return _loader_batches(data, batch_size, device)
    X, y = to_xy(data)
    if transform is not None:
        X = transform(X)
    return InMemoryBatches(X.to(device), y.to(device), batch_size or 4096, shuffle=False)
