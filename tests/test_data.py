"""Tests for trainwise.data: devices, tensors, scaling, features, splits, batch sources and prepare_data."""

from __future__ import annotations

import math
import time
from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import trainwise
from trainwise.data import (
    AffineTransform,
    InMemoryBatches,
    LoaderBatches,
    PreparedData,
    as_tensor,
    fit_transform,
    one_hot,
    poly_features,
    prepare_data,
    resolve_device,
    split_indices,
    to_xy,
)
from trainwise.datasets import Dataset
from trainwise.errors import DataError

CPU = torch.device("cpu")
no_accelerator = pytest.mark.skipif(
    torch.cuda.is_available() or torch.backends.mps.is_available(), reason="an accelerator is present"
)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(2024)


def collect(batches: InMemoryBatches | LoaderBatches) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*batches, strict=True)
    return torch.cat(xs), torch.cat(ys)


# ----------------------------------------------------------------------------- devices and tensors


@no_accelerator
def test_auto_device_is_cpu_here() -> None:
    assert resolve_device("auto") == CPU
    assert resolve_device() == CPU


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_cuda_without_cuda_is_a_data_error(name: str) -> None:
    with pytest.raises(DataError, match=f"device: '{name}' asked for, but CUDA is not available"):
        resolve_device(name)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="MPS is available")
def test_mps_without_mps_is_a_data_error() -> None:
    with pytest.raises(DataError, match="MPS is not available"):
        resolve_device("mps")


def test_explicit_devices() -> None:
    assert resolve_device("cpu") == CPU
    device = torch.device("cpu")
    assert resolve_device(device) is device
    with pytest.raises(DataError, match="'gpu' is not a device"):
        resolve_device("gpu")


def test_as_tensor_dtypes() -> None:
    assert as_tensor(np.array([1.5, 2.5]), "x").dtype == torch.float32
    assert as_tensor(torch.tensor([1.5], dtype=torch.float64), "x").dtype == torch.float32
    assert as_tensor(np.array([1, 2], dtype=np.int32), "x").dtype == torch.int64
    assert as_tensor([1, 2, 3], "x").dtype == torch.int64
    assert as_tensor(np.array([0, 255], dtype=np.uint8), "x").dtype == torch.int64
    # bools count as integers: class labels 0/1
    flags = as_tensor(np.array([True, False, True]), "x")
    assert flags.dtype == torch.int64 and flags.tolist() == [1, 0, 1]
    assert as_tensor(torch.tensor([1.0], dtype=torch.float16), "x").dtype == torch.float16
    same = torch.randn(3)
    assert as_tensor(same, "x") is same  # float32 tensors are not copied
    values = as_tensor(np.array([[0.1, 0.2], [0.3, 0.4]]), "x")
    np.testing.assert_array_equal(values.numpy(), np.array([[0.1, 0.2], [0.3, 0.4]], dtype=np.float32))


def test_as_tensor_errors() -> None:
    with pytest.raises(DataError, match="train X: complex values are not supported"):
        as_tensor(np.array([1 + 2j]), "train X")
    with pytest.raises(DataError, match="labels: cannot read it as numbers"):
        as_tensor(np.array(["a", "b"]), "labels")


# ----------------------------------------------------------------------------- scaling


def test_standard_scaling_gives_zero_mean_unit_std(gen: torch.Generator) -> None:
    # (float32 x * scale + shift loses about |mean / std| * 6e-8 to cancellation: keep that ratio modest)
    X = torch.randn(50, 3, generator=gen) * torch.tensor([1.0, 20.0, 0.1]) + torch.tensor([5.0, -3.0, 10.0])
    transform = fit_transform(X, "standard")
    assert transform is not None and transform.method == "standard"
    Xn = X.numpy().astype(np.float64)
    np.testing.assert_allclose(transform.scale.numpy(), 1 / Xn.std(0), rtol=1e-6)
    np.testing.assert_allclose(transform.shift.numpy(), -Xn.mean(0) / Xn.std(0), rtol=1e-5)
    scaled = transform(X).double().numpy()
    np.testing.assert_allclose(scaled.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(scaled.std(0), 1.0, rtol=1e-5)


def test_minmax_scaling_gives_zero_to_one(gen: torch.Generator) -> None:
    X = torch.randn(40, 2, generator=gen) * 7 - 2
    transform = fit_transform(X, "minmax")
    assert transform is not None
    scaled = transform(X).numpy()
    np.testing.assert_allclose(scaled.min(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(scaled.max(0), 1.0, atol=1e-6)
    Xn = X.numpy().astype(np.float64)
    expected = (Xn - Xn.min(0)) / (Xn.max(0) - Xn.min(0))
    np.testing.assert_allclose(scaled, expected, atol=1e-6)


def test_constant_factor() -> None:
    X = torch.tensor([[35.7], [55.9], [58.2]])
    transform = fit_transform(X, 0.1)
    assert transform is not None and transform.method == "scale"
    torch.testing.assert_close(transform(X), X * 0.1)
    assert fit_transform(X, None) is None
    assert fit_transform(X, "none") is None


def test_constant_features_are_left_unscaled() -> None:
    X = torch.tensor([[1.0, 3.0], [2.0, 3.0], [4.0, 3.0]])
    for method in ("standard", "minmax"):
        transform = fit_transform(X, method)
        assert transform is not None
        assert float(transform.scale[1]) == 1.0  # std/range 0: no division
        scaled = transform(X)
        assert torch.isfinite(scaled).all()
        assert scaled[:, 1].tolist() == [0.0, 0.0, 0.0]  # centred only


def test_images_are_scaled_per_channel(gen: torch.Generator) -> None:
    X = torch.rand(6, 2, 4, 4, generator=gen) * torch.tensor([1.0, 50.0]).reshape(1, 2, 1, 1)
    transform = fit_transform(X, "standard")
    assert transform is not None
    assert transform.scale.shape == (2, 1, 1)
    Xn = X.numpy().astype(np.float64)
    np.testing.assert_allclose(transform.scale.numpy().ravel(), 1 / Xn.std(axis=(0, 2, 3)), rtol=1e-6)
    scaled = transform(X).double().numpy()
    np.testing.assert_allclose(scaled.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(scaled.std(axis=(0, 2, 3)), 1.0, rtol=1e-5)


@pytest.mark.parametrize("method", ["standard", "minmax", 0.1])
def test_transform_round_trips_through_a_dict(gen: torch.Generator, method: str | float) -> None:
    X = torch.rand(10, 3, 2, 2, generator=gen)
    transform = fit_transform(X, method)
    assert transform is not None
    again = AffineTransform.from_dict(transform.to_dict())
    assert again.method == transform.method
    assert torch.equal(again.scale, transform.scale) and torch.equal(again.shift, transform.shift)
    assert torch.equal(again(X), transform(X))


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ("zscore", "'zscore' is not allowed"),
        (0, "must be finite and non-zero, got 0"),
        (0.0, "must be finite and non-zero"),
        (math.nan, "must be finite and non-zero"),
        (True, "is not allowed"),
    ],
)
def test_invalid_normalize(method: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        fit_transform(torch.ones(3, 1), method)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- features


def test_poly_features_match_numpy() -> None:
    X = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    expected = np.concatenate([X.numpy() ** k for k in (1, 2, 3)], axis=1)
    np.testing.assert_allclose(poly_features(X, 3).numpy(), expected)
    np.testing.assert_allclose(poly_features(torch.tensor([2.0, 3.0]), 2).numpy(), [[2, 4], [3, 9]])
    with pytest.raises(DataError, match="degree must be at least 1, got 0"):
        poly_features(X, 0)


def test_one_hot_matches_eye() -> None:
    labels = np.array([2, 0, 1, 2])
    encoded = one_hot(torch.from_numpy(labels), 4)
    assert encoded.dtype == torch.float32
    np.testing.assert_array_equal(encoded.numpy(), np.eye(4, dtype=np.float32)[labels])
    with pytest.raises(DataError, match=r"labels run from 0 to 4, outside 0..2"):
        one_hot(torch.tensor([0, 4]), 3)


# ----------------------------------------------------------------------------- splits


def test_split_is_seeded_and_covers_everything() -> None:
    y = torch.arange(11).float().unsqueeze(1)
    train, val = split_indices(y, 0.2, seed=0)
    assert (len(train), len(val)) == (9, 2)  # W1: 20% of 11 samples
    assert sorted(train.tolist() + val.tolist()) == list(range(11))
    assert not set(train.tolist()) & set(val.tolist())
    assert train.tolist() == sorted(train.tolist())
    again = split_indices(y, 0.2, seed=0)
    assert torch.equal(train, again[0]) and torch.equal(val, again[1])
    # the seed drives the permutation: the same one torch.randperm gives
    perm = torch.randperm(11, generator=torch.Generator().manual_seed(0))
    assert val.tolist() == sorted(perm[:2].tolist())
    others = {tuple(split_indices(y, 0.2, seed=s)[1].tolist()) for s in range(6)}
    assert len(others) > 1


def test_stratified_split_keeps_class_shares(gen: torch.Generator) -> None:
    y = torch.tensor([0] * 30 + [1] * 12 + [2] * 7 + [3] * 51)
    y = y[torch.randperm(len(y), generator=gen)]
    train, val = split_indices(y, 0.25, seed=3, stratify=True)
    assert sorted(train.tolist() + val.tolist()) == list(range(len(y)))
    counts, val_counts = Counter(y.tolist()), Counter(y[val].tolist())
    for label, count in counts.items():
        assert abs(val_counts[label] - 0.25 * count) <= 1
    again = split_indices(y, 0.25, seed=3, stratify=True)
    assert torch.equal(val, again[1])


def test_stratified_split_on_one_hot_and_float_binary_targets() -> None:
    labels = torch.tensor([0] * 8 + [1] * 12)
    one_hot_train, one_hot_val = split_indices(one_hot(labels, 2), 0.25, seed=1, stratify=True)
    label_train, label_val = split_indices(labels, 0.25, seed=1, stratify=True)
    assert torch.equal(one_hot_val, label_val) and torch.equal(one_hot_train, label_train)
    _, binary_val = split_indices(labels.float().unsqueeze(1), 0.25, seed=1, stratify=True)
    assert torch.equal(binary_val, label_val)
    assert Counter(labels[label_val].tolist()) == {0: 2, 1: 3}


@pytest.mark.parametrize(
    "targets", [torch.linspace(0, 1, 20), torch.linspace(0, 1, 20).unsqueeze(1), torch.rand(20, 3)]
)
def test_stratify_refuses_continuous_targets(targets: torch.Tensor) -> None:
    with pytest.raises(DataError, match="targets are continuous"):
        split_indices(targets, 0.2, seed=0, stratify=True)


@pytest.mark.parametrize(("n", "fraction"), [(3, 0.1), (3, 0.9), (10, 0.04)])
def test_empty_splits_are_errors(n: int, fraction: float) -> None:
    with pytest.raises(DataError, match="leaves an empty train or validation set"):
        split_indices(torch.zeros(n), fraction, seed=0)


def test_stratified_empty_split_is_an_error() -> None:
    with pytest.raises(DataError, match="leaves an empty train or validation set"):
        split_indices(torch.tensor([0, 1, 2, 3]), 0.2, seed=0, stratify=True)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_fraction_out_of_range(fraction: float) -> None:
    with pytest.raises(DataError, match="between 0 and 1"):
        split_indices(torch.zeros(10), fraction, seed=0)


# ----------------------------------------------------------------------------- in-memory batches


def test_full_batch_yields_the_tensors_unshuffled() -> None:
    X, y = torch.randn(10, 3), torch.randn(10, 1)
    batches = InMemoryBatches(X, y, None)
    assert len(batches) == 1
    for _ in range(2):
        ((xb, yb),) = list(batches)
        assert xb is X and yb is y
    assert next(iter(InMemoryBatches(X, y, 64)))[0] is X  # a batch size above n is the full batch


def test_minibatches_cover_every_sample_once_in_a_new_order_each_epoch() -> None:
    X = torch.arange(23).float().unsqueeze(1)
    y = torch.arange(23) * 10
    batches = InMemoryBatches(X, y, 5, generator=torch.Generator().manual_seed(0))
    assert len(batches) == math.ceil(23 / 5)
    orders = []
    for _ in range(3):
        sizes = [len(xb) for xb, _ in batches]
        assert sizes == [5, 5, 5, 5, 3]
        xs, ys = collect(batches)  # a further epoch: its own order
        assert sorted(xs[:, 0].long().tolist()) == list(range(23))
        assert torch.equal(ys, xs[:, 0].long() * 10)  # pairs stay together
        orders.append(xs[:, 0].long().tolist())
    assert len({tuple(o) for o in orders}) == 3
    replay = InMemoryBatches(X, y, 5, generator=torch.Generator().manual_seed(0))
    first_epoch = [i for xb, _ in replay for i in xb[:, 0].long().tolist()]
    expected = torch.randperm(23, generator=torch.Generator().manual_seed(0)).tolist()
    assert first_epoch == expected  # the seeded permutation, reproducibly


def test_shuffled_batches_are_the_permuted_copys_slices_and_resume_skips_to_them() -> None:
    X, y = torch.randn(50, 2, 3, 3), torch.arange(50)
    batches = InMemoryBatches(X, y, 8, generator=torch.Generator().manual_seed(3))
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(3))
    got = list(batches)
    assert len(got) == 7
    for step, (xb, yb) in enumerate(got):
        assert torch.equal(xb, X[perm][step * 8 : step * 8 + 8]) and xb.is_contiguous()
        assert torch.equal(yb, y[perm][step * 8 : step * 8 + 8])
    batches.load_state_dict(batches.state_dict(mid_epoch=True))  # back to that epoch's start
    assert [torch.equal(a, b) for (a, _), (b, _) in zip(batches.iterate(skip=4), got[4:], strict=True)] == [True] * 3


def test_unshuffled_minibatches_keep_the_order() -> None:
    X = torch.arange(7).float().unsqueeze(1)
    xs, _ = collect(InMemoryBatches(X, torch.zeros(7), 3, shuffle=False))
    assert torch.equal(xs, X)


def test_in_memory_batch_errors() -> None:
    with pytest.raises(DataError, match="X has 4 samples but y has 3"):
        InMemoryBatches(torch.zeros(4, 1), torch.zeros(3), 2)
    with pytest.raises(DataError, match="no samples"):
        InMemoryBatches(torch.zeros(0, 1), torch.zeros(0), 2)
    with pytest.raises(DataError, match="batch_size: must be at least 1"):
        InMemoryBatches(torch.zeros(4, 1), torch.zeros(4), 0)


# ----------------------------------------------------------------------------- prepare_data


def tabular(n: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 3, generator=g) * torch.tensor([2.0, 10.0, 0.5]) + torch.tensor([1.0, 50.0, -3.0])
    return X, X.sum(1, keepdim=True)


def test_val_split_fits_the_scaling_on_the_train_part_only() -> None:
    X, y = tabular()
    prepared = prepare_data((X, y), batch_size=None, val_split=0.25, normalize="standard", seed=5, device=CPU)
    train_idx, val_idx = split_indices(y, 0.25, seed=5)
    X_train = X[train_idx].numpy().astype(np.float64)
    assert prepared.transform is not None
    np.testing.assert_allclose(prepared.transform.scale.numpy(), 1 / X_train.std(0), rtol=1e-6)
    np.testing.assert_allclose(prepared.transform.shift.numpy(), -X_train.mean(0) / X_train.std(0), rtol=1e-5)
    assert not np.allclose(prepared.transform.scale.numpy(), 1 / X.numpy().std(0), rtol=1e-3)  # not all data
    xs, ys = collect(prepared.train)
    np.testing.assert_allclose(xs.numpy(), (X_train - X_train.mean(0)) / X_train.std(0), atol=1e-5)
    assert torch.equal(ys, y[train_idx])
    assert isinstance(prepared.val, InMemoryBatches)
    val_x, val_y = collect(prepared.val)
    torch.testing.assert_close(val_x, prepared.transform(X[val_idx]))
    assert torch.equal(val_y, y[val_idx])
    assert (prepared.sample_shape, prepared.target_shape) == ((3,), (1,))


def test_val_data_is_scaled_with_the_train_fit() -> None:
    X, y = tabular(seed=1)
    X_val, y_val = tabular(n=6, seed=2)
    prepared = prepare_data((X, y), batch_size=4, val_data=(X_val, y_val), normalize="minmax", device=CPU)
    assert prepared.transform is not None and prepared.val is not None
    Xn = X.numpy().astype(np.float64)
    expected = (X_val.numpy() - Xn.min(0)) / (Xn.max(0) - Xn.min(0))
    val_x, val_y = collect(prepared.val)
    np.testing.assert_allclose(val_x.numpy(), expected, atol=1e-5)
    assert torch.equal(val_y, y_val)
    assert len(prepared.train) == 5


def test_val_split_and_val_data_together_are_an_error() -> None:
    with pytest.raises(DataError, match="either val_split or val_data"):
        prepare_data(tabular(), batch_size=None, val_split=0.2, val_data=tabular(5), device=CPU)


def test_val_data_with_other_features_is_an_error() -> None:
    X_val = torch.zeros(4, 2)
    with pytest.raises(DataError, match=r"val_data: samples of shape \(2,\) but the training samples are \(3,\)"):
        prepare_data(tabular(), batch_size=None, val_data=(X_val, torch.zeros(4, 1)), device=CPU)


def test_arrays_and_vectors_are_accepted() -> None:
    X = np.linspace(0.0, 1.0, 8)  # float64 vector: one feature
    y = 2 * X
    prepared = prepare_data((X, y), batch_size=None, device=CPU)
    xs, ys = collect(prepared.train)
    assert xs.shape == (8, 1) and xs.dtype == torch.float32 and ys.dtype == torch.float32
    assert prepared.sample_shape == (1,) and prepared.val is None and prepared.transform is None


def test_mismatched_lengths_name_both() -> None:
    with pytest.raises(DataError, match="data: X has 5 samples but y has 4"):
        prepare_data((torch.zeros(5, 2), torch.zeros(4)), batch_size=None, device=CPU)
    with pytest.raises(DataError, match="val_data: X has 3 samples but y has 2"):
        prepare_data(tabular(), batch_size=None, val_data=(torch.zeros(3, 3), torch.zeros(2)), device=CPU)


def test_unsupported_data_is_an_error() -> None:
    with pytest.raises(DataError, match=r"expected \(X, y\) tensors.*got dict"):
        to_xy({"X": 1})
    with pytest.raises(DataError, match="single number"):
        to_xy((1.0, 2.0))


def test_trainwise_dataset_brings_its_validation_split() -> None:
    X, y = tabular(10)
    X_val, y_val = tabular(4, seed=9)
    ds = Dataset(name="toy", X=X, y=y, task="regression", X_val=X_val, y_val=y_val)
    prepared = prepare_data(ds, batch_size=None, device=CPU)
    assert prepared.val is not None
    assert torch.equal(collect(prepared.val)[0], X_val)


def test_tensor_dataset_streams_through_loader_batches() -> None:
    X, y = torch.arange(20).float().reshape(10, 2), torch.arange(10)
    prepared = prepare_data(TensorDataset(X, y), batch_size=4, shuffle=False, device=CPU)
    assert isinstance(prepared, PreparedData) and isinstance(prepared.train, LoaderBatches)
    assert len(prepared.train) == 3 and prepared.train.n == 10
    xs, ys = collect(prepared.train)
    assert torch.equal(xs, X) and torch.equal(ys, y)
    assert (prepared.sample_shape, prepared.target_shape, prepared.transform) == ((2,), (), None)


def test_dataset_val_split_is_seeded_and_disjoint() -> None:
    X, y = torch.arange(10).float().unsqueeze(1), torch.arange(10)
    prepared = prepare_data(TensorDataset(X, y), batch_size=3, val_split=0.2, seed=4, device=CPU)
    assert prepared.val is not None
    train_y, val_y = collect(prepared.train)[1], collect(prepared.val)[1]
    assert (len(train_y), len(val_y)) == (8, 2)
    assert sorted(train_y.tolist() + val_y.tolist()) == list(range(10))
    again = prepare_data(TensorDataset(X, y), batch_size=3, val_split=0.2, seed=4, device=CPU)
    assert again.val is not None and torch.equal(collect(again.val)[1], val_y)


def test_data_loader_passes_through() -> None:
    X, y = torch.randn(9, 1, 4, 4), torch.randint(0, 3, (9,))
    loader = DataLoader(TensorDataset(X, y), batch_size=4)
    val_set = TensorDataset(X[:3], y[:3])
    prepared = prepare_data(loader, batch_size=None, val_data=val_set, device=CPU)
    assert isinstance(prepared.train, LoaderBatches) and prepared.train.loader is loader
    assert prepared.sample_shape == (1, 4, 4)
    assert isinstance(prepared.val, LoaderBatches)
    assert torch.equal(collect(prepared.val)[0], X[:3])
    with pytest.raises(DataError, match="a DataLoader cannot be split"):
        prepare_data(loader, batch_size=None, val_split=0.2, device=CPU)


def test_dataset_validation_next_to_in_memory_training() -> None:
    X, y = tabular()
    val_set = TensorDataset(X[:5], y[:5])
    prepared = prepare_data((X, y), batch_size=8, val_data=val_set, device=CPU)
    assert isinstance(prepared.val, LoaderBatches)
    assert torch.equal(collect(prepared.val)[0], X[:5])
    with pytest.raises(DataError, match="normalize"):
        prepare_data((X, y), batch_size=8, val_data=val_set, normalize="standard", device=CPU)


@pytest.mark.parametrize("normalize", ["standard", "minmax", 0.1])
def test_normalize_with_a_dataset_is_an_error(normalize: str | float) -> None:
    dataset = TensorDataset(torch.randn(6, 2), torch.randn(6, 1))
    with pytest.raises(DataError, match="scaling is fitted on in-memory data only"):
        prepare_data(dataset, batch_size=2, normalize=normalize, device=CPU)


def test_streamed_batches_of_inputs_alone_have_no_target() -> None:
    loader = DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2)  # inputs only
    assert not prepare_data(loader, batch_size=None, device=CPU).has_targets
    assert [target for _, target in LoaderBatches(loader, CPU)] == [None, None]
    with pytest.raises(DataError, match=r"^data: the batches hold inputs but no target for the loss to compare with"):
        trainwise.fit(torch.nn.Linear(2, 1), loader, loss="mse", lr=0.1, progress=False)
    with pytest.raises(DataError, match=r"^data: a batch of the Dataset/DataLoader is a set; give \(inputs, target\)"):
        list(LoaderBatches(DataLoader([{1, 2}], batch_size=None), CPU))
    empty = TensorDataset(torch.zeros(0, 2), torch.zeros(0))
    with pytest.raises(DataError, match="yields no batches"):
        prepare_data(DataLoader(empty, batch_size=2), batch_size=None, device=CPU)


class _SlowItems(torch.utils.data.Dataset):
    """A Dataset that decodes each item (here: waits 2 ms for it), as image files do."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.X, self.y = torch.randn(96, 5, generator=generator), torch.randint(0, 3, (96,), generator=generator)

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        time.sleep(0.002)
        return self.X[index], self.y[index]


def test_workers_load_a_datasets_items_and_train_the_same_run() -> None:
    def train(workers: int) -> tuple[torch.Tensor, list[float]]:
        torch.manual_seed(0)
        model = torch.nn.Linear(5, 3)
        result = trainwise.fit(model, _SlowItems(), loss="cross_entropy", lr=0.1, epochs=2, batch_size=16,
                               val_split=0.25, workers=2 if workers else 0, device="cpu", progress=False)  # fmt: skip
        return model.weight.detach(), result.history["val_loss"]

    alone, with_workers = train(0), train(2)
    assert torch.equal(alone[0], with_workers[0]) and alone[1] == with_workers[1]  # the same shuffles, the same run
    with pytest.raises(DataError, match=r"^workers: worker processes load a torch Dataset's items; in-memory"):
        trainwise.fit(torch.nn.Linear(5, 3), (torch.randn(8, 5), torch.zeros(8, dtype=torch.long)),
                      loss="cross_entropy", lr=0.1, workers=2, progress=False)  # fmt: skip
