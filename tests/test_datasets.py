"""Tests for trainwise.datasets: built-ins, IDX and pickled MNIST files, CSV and NPZ files."""

import gzip
import inspect
import math
import os
import pickle
import struct
import subprocess
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from trainwise.datasets import (
    BUILTIN,
    FASHION_MNIST_CLASSES,
    Dataset,
    dataset_options,
    load_dataset,
    load_mnist_pickle,
    read_idx,
)
from trainwise.errors import DataError, TrainwiseError

SYSTEM_FASHION = Path("/usr/share/datasets/fashion-mnist")


def write_idx(path: Path, array: np.ndarray, *, gz: bool = True, type_code: int = 0x08) -> Path:
    """Write `array` as an IDX file (the MNIST format), gzipped or raw."""
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_idx_set(directory: Path, n_train: int = 12, n_test: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    """Write the four MNIST-named IDX .gz files with random content; return the arrays written."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, array in arrays.items():
        write_idx(directory / f"{name}.gz", array)
    return arrays


def write_mnist_pickle(path: Path, sizes: tuple[int, int, int] = (20, 5, 5)) -> tuple[Any, ...]:
    """Write a small mnist.pkl.gz exactly like the tutorial's: gzip of a protocol-2 pickle of 3 (x, y)."""
    rng = np.random.default_rng(1)
    splits = tuple((rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n).astype(np.int64)) for n in sizes)
    with gzip.open(path, "wb") as f:
        pickle.dump(splits, f, protocol=2)
    return splits


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def _isolated_data_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Keep the developer's own TRAINWISE_DATA and ~/.trainwise out of every test.
    monkeypatch.delenv("TRAINWISE_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


# --------------------------------------------------------------------------------------------------
# Built-ins


def test_temperature_values() -> None:
    ds = load_dataset("temperature")
    assert isinstance(ds, Dataset)
    assert ds.task == "regression"
    assert ds.X.shape == (11, 1) and ds.y.shape == (11, 1)
    assert ds.X.dtype == torch.float32 and ds.y.dtype == torch.float32
    assert ds.X[3, 0].item() == pytest.approx(81.9, abs=1e-5)
    assert ds.y[7, 0].item() == -4.0
    assert ds.y[0, 0].item() == 0.5
    assert ds.X[:, 0].sum().item() == pytest.approx(569.8, abs=1e-3)
    assert ds.feature_names == ["t_u"] and ds.target_names == ["t_c"]
    assert ds.n_classes is None and ds.X_test is None and ds.X_val is None


def test_sine_endpoints_and_size() -> None:
    ds = load_dataset("sine")
    assert ds.X.shape == (2000, 1) and ds.y.shape == (2000, 1)
    assert ds.X[0, 0].item() == pytest.approx(-math.pi, abs=1e-6)
    assert ds.X[-1, 0].item() == pytest.approx(math.pi, abs=1e-6)
    assert torch.equal(ds.y, torch.sin(ds.X))
    assert ds.y[0, 0].item() == pytest.approx(0.0, abs=1e-6)
    small = load_dataset("sine", n_samples=5, low=0.0, high=2.0)
    assert small.X[:, 0].tolist() == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    assert small.y[2, 0].item() == pytest.approx(math.sin(1.0), abs=1e-6)
    assert small.feature_names == ["x"] and small.target_names == ["sin(x)"]


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"n_samples": 1}, "n_samples=1 must be >= 2"),
        ({"low": 1.0, "high": 1.0}, "low=1.0 must be less than high=1.0"),
        ({"n_samples": 2.5}, "must be an integer"),
        ({"low": "a"}, "must be a number"),
    ],
)
def test_sine_rejects_bad_options(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(DataError, match=fragment):
        load_dataset("sine", **options)


def test_random_regression_is_deterministic_by_seed() -> None:
    a = load_dataset("random-regression")
    b = load_dataset("random_regression")
    c = load_dataset("random-regression", seed=1)
    assert a.X.shape == (64, 1000) and a.y.shape == (64, 10)
    assert torch.equal(a.X, b.X) and torch.equal(a.y, b.y)
    assert not torch.equal(a.X, c.X)
    generator = torch.Generator().manual_seed(0)
    expected_X = torch.randn(64, 1000, generator=generator)
    expected_y = torch.randn(64, 10, generator=generator)
    assert torch.equal(a.X, expected_X) and torch.equal(a.y, expected_y)
    small = load_dataset("random-regression", n_samples=3, n_features=4, n_outputs=2, seed=7)
    assert small.X.shape == (3, 4) and small.y.shape == (3, 2)
    assert small.task == "regression"


def test_names_are_case_insensitive() -> None:
    assert load_dataset("Temperature").name == "temperature"
    assert load_dataset("SINE", n_samples=3).X.shape == (3, 1)


def test_unknown_dataset_lists_builtins() -> None:
    with pytest.raises(DataError) as info:
        load_dataset("cifar10")
    message = str(info.value)
    assert "'cifar10'" in message
    for name in BUILTIN:
        assert name in message
    assert ".csv" in message and ".npz" in message
    assert "\n" not in message


def test_unknown_option_names_option_and_allowed() -> None:
    with pytest.raises(DataError) as info:
        load_dataset("sine", n_sample=10)
    message = str(info.value)
    assert "'n_sample'" in message and "n_samples" in message and "low" in message and "high" in message
    with pytest.raises(DataError, match="takes no options"):
        load_dataset("temperature", seed=1)


def test_dataset_options_returns_loader_parameters() -> None:
    options = dataset_options("sine")
    assert list(options) == ["n_samples", "low", "high"]
    assert options["n_samples"].default == 2000
    assert options["low"].default == -math.pi
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in options.values())
    assert dataset_options("temperature") == {}
    assert list(dataset_options("random-regression")) == ["n_samples", "n_features", "n_outputs", "seed"]
    assert list(dataset_options("fashion_mnist")) == ["path", "limit"]
    assert list(dataset_options("mnist")) == ["path", "limit"]
    assert list(dataset_options("data.csv")) == ["target", "task", "header"]
    assert list(dataset_options("data.npz")) == ["task"]
    with pytest.raises(DataError, match="unknown dataset"):
        dataset_options("nope")


def test_data_error_is_trainwise_error() -> None:
    with pytest.raises(TrainwiseError):
        load_dataset("nope")


def test_repr_is_short() -> None:
    text = repr(load_dataset("random-regression"))
    assert text == "Dataset(name='random-regression', task='regression', X=(64, 1000), y=(64, 10))"


# --------------------------------------------------------------------------------------------------
# IDX files


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_images_and_labels(tmp_path: Path, gz: bool) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    # The name says nothing about compression: detection is by the gzip magic bytes.
    image_file = write_idx(tmp_path / "images.bin", images, gz=gz)
    label_file = write_idx(tmp_path / "labels.gz", labels, gz=gz)
    got_images = read_idx(image_file)
    got_labels = read_idx(str(label_file))
    assert got_images.dtype == np.uint8 and got_images.shape == (2, 3, 4)
    assert np.array_equal(got_images, images)
    assert np.array_equal(got_labels, labels)
    got_images[0, 0, 0] = 9  # a writable array, not a view of the file bytes


def test_read_idx_wrong_magic(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"\x00\x00\x00\x00" + b"\x00" * 16))
    with pytest.raises(DataError) as info:
        read_idx(bad)
    assert str(info.value) == (
        f"{bad}: not an IDX file (magic number 0x00000000, expected 0x00000801 or 0x00000803); "
        "pass the .gz files of MNIST/Fashion-MNIST"
    )
    text = tmp_path / "text.idx"
    text.write_text("hello world")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(text)


def test_read_idx_unsupported_type_code(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "floats", np.zeros((2, 2), dtype=np.uint8), type_code=0x0D)
    with pytest.raises(DataError, match=r"type code 0x0d \(float\) is not supported"):
        read_idx(path)


def test_read_idx_truncated_and_too_long(tmp_path: Path) -> None:
    images = np.ones((4, 28, 28), dtype=np.uint8)
    good = write_idx(tmp_path / "good", images, gz=False).read_bytes()
    short = tmp_path / "short"
    short.write_bytes(good[:-10])
    with pytest.raises(DataError) as info:
        read_idx(short)
    message = str(info.value)
    assert str(short) in message and "3126 bytes" in message and "3136 bytes" in message
    assert "truncated" in message
    long = tmp_path / "long.gz"
    long.write_bytes(gzip.compress(good + b"\x00\x00"))
    with pytest.raises(DataError, match=r"3138 bytes.*need 3136 bytes"):
        read_idx(long)
    header_only = tmp_path / "header"
    header_only.write_bytes(good[:6])
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(header_only)


def test_read_idx_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress(write_idx(tmp_path / "raw", np.ones((50, 28, 28), np.uint8), gz=False).read_bytes())
    broken = tmp_path / "broken.gz"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"broken\.gz: corrupt or truncated gzip data"):
        read_idx(broken)


def test_read_idx_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_idx(tmp_path / "absent.gz")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="is empty"):
        read_idx(empty)
    with pytest.raises(DataError, match="is a directory"):
        read_idx(tmp_path)


# --------------------------------------------------------------------------------------------------
# Fashion-MNIST and MNIST from IDX files


def test_fashion_mnist_from_trainwise_data_subfolder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    arrays = write_idx_set(tmp_path / "data" / "fashion-mnist")
    monkeypatch.setenv("TRAINWISE_DATA", str(tmp_path / "data"))
    ds = load_dataset("fashion-mnist")
    assert ds.X.shape == (12, 1, 28, 28) and ds.X.dtype == torch.float32
    assert ds.y.shape == (12,) and ds.y.dtype == torch.int64
    assert ds.X_test is not None and ds.y_test is not None
    assert ds.X_test.shape == (5, 1, 28, 28)
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte"].astype(np.float32) / 255).unsqueeze(1)
    assert torch.allclose(ds.X, expected)
    assert ds.y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert ds.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert ds.n_classes == 10 and ds.class_names == FASHION_MNIST_CLASSES
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    assert ds.task == "classification"


def test_fashion_mnist_from_trainwise_data_folder_itself_raw_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rng = np.random.default_rng(3)
    write_idx(tmp_path / "train-images-idx3-ubyte", rng.integers(0, 256, (4, 28, 28), dtype=np.uint8), gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, 1, 2, 9], np.uint8), gz=False)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([5, 6], np.uint8))
    monkeypatch.setenv("TRAINWISE_DATA", str(tmp_path))
    ds = load_dataset("fashion_mnist", limit=3)
    assert ds.X.shape == (3, 1, 28, 28) and ds.y.tolist() == [0, 1, 2]
    assert ds.X_test is not None and ds.X_test.shape == (2, 1, 28, 28)
    assert ds.y_test is not None and ds.y_test.tolist() == [5, 6]


def test_fashion_mnist_path_option_and_limit(tmp_path: Path) -> None:
    write_idx_set(tmp_path, n_train=12, n_test=5)
    ds = load_dataset("fashion-mnist", path=tmp_path, limit=4)
    assert ds.X.shape == (4, 1, 28, 28) and ds.y.shape == (4,)
    assert ds.X_test is not None and ds.X_test.shape == (4, 1, 28, 28)
    full = load_dataset("fashion-mnist", path=str(tmp_path))
    assert torch.equal(full.X[:4], ds.X)


def test_fashion_mnist_missing_files_say_where_and_how(tmp_path: Path) -> None:
    nowhere = tmp_path / "nowhere"
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", path=nowhere)
    message = str(info.value)
    assert str(nowhere) in message
    assert "apt-get install dataset-fashion-mnist" in message and "TRAINWISE_DATA" in message


def test_fashion_mnist_partial_folder_names_missing_file(tmp_path: Path) -> None:
    write_idx_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"missing t10k-labels-idx1-ubyte\(\.gz\)"):
        load_dataset("fashion-mnist", path=tmp_path)


def test_fashion_mnist_mismatched_counts(tmp_path: Path) -> None:
    write_idx_set(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(11, np.uint8))
    with pytest.raises(DataError, match=r"has 12 images but train-labels-idx1-ubyte\.gz has 11 labels"):
        load_dataset("fashion-mnist", path=tmp_path)


def test_fashion_mnist_rejects_bad_limit(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="limit=0 must be >= 1"):
        load_dataset("fashion-mnist", path=tmp_path, limit=0)


def test_mnist_from_idx_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    arrays = write_idx_set(tmp_path / "data" / "mnist", n_train=6, n_test=3)
    monkeypatch.setenv("TRAINWISE_DATA", str(tmp_path / "data"))
    ds = load_dataset("mnist")
    assert ds.X.shape == (6, 1, 28, 28) and ds.X_val is None
    assert ds.X_test is not None and ds.X_test.shape == (3, 1, 28, 28)
    assert ds.y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert ds.class_names == [str(d) for d in range(10)] and ds.n_classes == 10


def test_mnist_missing_says_where_it_looked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRAINWISE_DATA", str(tmp_path / "data"))
    with pytest.raises(DataError) as info:
        load_dataset("mnist")
    message = str(info.value)
    assert str(tmp_path / "data" / "mnist") in message
    assert str(tmp_path / "home" / ".trainwise" / "data" / "mnist") in message
    assert "mnist.pkl.gz" in message


# --------------------------------------------------------------------------------------------------
# mnist.pkl.gz


def test_mnist_pickle_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "mnist.pkl.gz"
    splits = write_mnist_pickle(path)
    loaded = load_mnist_pickle(path)
    assert len(loaded) == 3
    for (x, y), (ex, ey) in zip(loaded, splits, strict=True):
        assert np.array_equal(x, ex) and np.array_equal(y, ey)

    for where in (tmp_path, path):  # the folder holding the file, or the file itself
        ds = load_dataset("mnist", path=where)
        assert ds.X.shape == (20, 1, 28, 28) and ds.X.dtype == torch.float32
        assert ds.y.shape == (20,) and ds.y.dtype == torch.int64
        assert ds.X_val is not None and ds.X_val.shape == (5, 1, 28, 28)
        assert ds.X_test is not None and ds.X_test.shape == (5, 1, 28, 28)
        assert torch.equal(ds.X[3].reshape(-1), torch.from_numpy(splits[0][0][3]))
        assert ds.y.tolist() == splits[0][1].tolist()
        assert ds.y_val is not None and ds.y_val.tolist() == splits[1][1].tolist()
        assert ds.y_test is not None and ds.y_test.tolist() == splits[2][1].tolist()
        assert ds.n_classes == 10

    limited = load_dataset("mnist", path=path, limit=2)
    assert limited.X.shape == (2, 1, 28, 28)
    assert limited.X_val is not None and limited.X_val.shape[0] == 2


def test_mnist_pickle_found_via_trainwise_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_mnist_pickle(tmp_path / "mnist.pkl.gz", sizes=(4, 2, 3))
    monkeypatch.setenv("TRAINWISE_DATA", str(tmp_path))
    ds = load_dataset("mnist")
    assert ds.X.shape[0] == 4 and ds.X_val is not None and ds.X_val.shape[0] == 2


def test_mnist_pickle_in_home_default(tmp_path: Path) -> None:
    folder = tmp_path / "home" / ".trainwise" / "data" / "mnist"
    folder.mkdir(parents=True)
    write_mnist_pickle(folder / "mnist.pkl.gz", sizes=(3, 1, 1))
    assert load_dataset("mnist").X.shape == (3, 1, 28, 28)


def _py2_pickle_of_arrays(pairs: list[tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Protocol-2 bytes as Python 2's cPickle wrote mnist.pkl.gz: numpy.core names, data as BINSTRING."""

    def string(raw: bytes) -> bytes:
        return b"T" + struct.pack("<i", len(raw)) + raw

    def array(a: np.ndarray) -> bytes:
        shape = b"(" + b"".join(b"J" + struct.pack("<i", d) for d in a.shape) + b"t"
        return (
            b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + string(b"b") + b"\x87R"
            b"(K\x01" + shape + b"cnumpy\ndtype\n" + string(a.dtype.str[1:].encode()) + b"K\x00K\x01\x87R"
            b"(K\x03" + string(b"<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
            b"\x89" + string(a.tobytes()) + b"tb"
        )

    return b"\x80\x02" + b"".join(array(x) + array(y) + b"\x86" for x, y in pairs) + b"\x87."


def test_mnist_pickle_written_by_python2(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    pairs = [(rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)) for n in (4, 2, 3)]
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(_py2_pickle_of_arrays(pairs)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy.core is deprecated in numpy 2: it must be mapped, not imported
        loaded = load_mnist_pickle(path)
    for (x, y), (ex, ey) in zip(loaded, pairs, strict=True):
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert np.array_equal(x, ex) and np.array_equal(y, ey)
    ds = load_dataset("mnist", path=path)
    assert ds.X.shape == (4, 1, 28, 28) and ds.y.tolist() == pairs[0][1].tolist()


class _Exploit:
    def __init__(self, func: Any, args: tuple[Any, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


@pytest.mark.parametrize(
    ("func", "name"),
    [(os.system, "system"), (eval, "builtins.eval"), (subprocess.Popen, "subprocess.Popen")],
)
def test_malicious_pickle_is_refused(tmp_path: Path, func: Any, name: str) -> None:
    marker = tmp_path / "pwned"
    command = f"echo pwned > {marker}"
    args: tuple[Any, ...] = (command,) if func is os.system else (f"open({str(marker)!r}, 'w')",)
    if func is subprocess.Popen:
        args = (["sh", "-c", command],)
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(_Exploit(func, args), f, protocol=2)
    with pytest.raises(DataError) as info:
        load_mnist_pickle(path)
    message = str(info.value)
    assert "refusing to unpickle" in message and name in message
    assert "mnist.pkl.gz may only contain numpy arrays" in message
    with pytest.raises(DataError, match="refusing to unpickle"):
        load_dataset("mnist", path=tmp_path)
    assert not marker.exists()


def test_malicious_pickle_nested_in_tuple_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    x = np.zeros((2, 784), np.float32)
    y = np.zeros(2, np.int64)
    payload = ((x, y), (x, _Exploit(os.system, (f"echo pwned > {marker}",))), (x, y))
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(payload, f, protocol=2)
    with pytest.raises(DataError, match="refusing to unpickle"):
        load_mnist_pickle(path)
    assert not marker.exists()


def test_mnist_pickle_wrong_structure(tmp_path: Path) -> None:
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump({"x": 1}, f, protocol=2)
    with pytest.raises(DataError, match="holds dict"):
        load_mnist_pickle(path)
    x = np.zeros((3, 784), np.float32)
    with gzip.open(path, "wb") as f:
        pickle.dump(((x, np.zeros(3, np.int64)), (x, np.zeros(2, np.int64)), (x, np.zeros(3))), f, protocol=2)
    with pytest.raises(DataError, match="valid split has x of shape"):
        load_mnist_pickle(path)


def test_mnist_pickle_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "mnist.pkl.gz"
    write_mnist_pickle(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cannot be read as mnist\.pkl\.gz"):
        load_mnist_pickle(path)
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(DataError, match=r"cannot be read as mnist\.pkl\.gz"):
        load_mnist_pickle(path)
    with pytest.raises(DataError, match="no such file"):
        load_mnist_pickle(tmp_path / "absent.pkl.gz")


# --------------------------------------------------------------------------------------------------
# CSV files


def test_csv_with_header_defaults_to_last_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.csv", "a,b,price\n1,2,3.5\n4,5,6.25\n7,8,9.125\n")
    ds = load_dataset(str(path))
    assert ds.task == "regression"
    assert ds.X.dtype == torch.float32 and ds.X.tolist() == [[1, 2], [4, 5], [7, 8]]
    assert ds.y.shape == (3, 1) and ds.y[:, 0].tolist() == [3.5, 6.25, 9.125]
    assert ds.feature_names == ["a", "b"] and ds.target_names == ["price"]
    assert ds.name == "data.csv"


def test_csv_without_header(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.csv", "1,2,0.5\n3,4,1.5\n")
    ds = load_dataset(str(path))
    assert ds.X.tolist() == [[1, 2], [3, 4]] and ds.y[:, 0].tolist() == [0.5, 1.5]
    assert ds.feature_names == ["x0", "x1"] and ds.target_names == ["y"]


def test_csv_target_by_name_and_index(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", "t_c,t_u\n0.5,35.7\n14.0,55.9\n15.0,58.2\n")
    by_name = load_dataset(str(path), target="t_c")
    assert by_name.feature_names == ["t_u"] and by_name.target_names == ["t_c"]
    assert by_name.X[:, 0].tolist() == pytest.approx([35.7, 55.9, 58.2])
    assert by_name.y[:, 0].tolist() == [0.5, 14.0, 15.0]
    assert by_name.task == "regression"  # 0.5 is not a whole number
    by_index = load_dataset(str(path), target=0)
    assert torch.equal(by_index.y, by_name.y) and torch.equal(by_index.X, by_name.X)
    assert torch.equal(load_dataset(str(path), target=-2).y, by_name.y)
    with pytest.raises(DataError, match=r"no column named 'temp'; columns: 't_c', 't_u'"):
        load_dataset(str(path), target="temp")
    with pytest.raises(DataError, match="target column index 5 is out of range"):
        load_dataset(str(path), target=5)


def test_csv_header_options(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "n.csv", "10,20,30\n1,2,3\n4,5,6\n")
    assert load_dataset(str(path), task="regression").X.shape == (3, 2)
    with_header = load_dataset(str(path), header=True, task="regression")
    assert with_header.X.shape == (2, 2) and with_header.feature_names == ["10", "20"]
    text = write_csv(tmp_path / "t.csv", "a,b\n1,2\n")
    with pytest.raises(DataError, match=r"row 1, column 0 \(counting from 0\) holds 'a'.*header=True"):
        load_dataset(str(text), header=False)
    no_header = write_csv(tmp_path / "nh.csv", "1,2\n3,4\n")
    with pytest.raises(DataError, match="no header row, so target='b' cannot be found"):
        load_dataset(str(no_header), target="b")


def test_csv_gz(tmp_path: Path) -> None:
    path = tmp_path / "data.csv.gz"
    path.write_bytes(gzip.compress(b"x,y\n1,0.5\n2,1.5\n"))
    ds = load_dataset(str(path))
    assert ds.X[:, 0].tolist() == [1.0, 2.0] and ds.y[:, 0].tolist() == [0.5, 1.5]


def test_csv_ragged_row(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", "a,b,c,d\n1,2,3,4\n1,2,3,4\n1,2,3,4\n1,2,3,4\n1,2,3,4\n1,2,3\n")
    with pytest.raises(DataError) as info:
        load_dataset(str(path))
    assert str(path) in str(info.value) and "row 7 has 3 fields, expected 4" in str(info.value)


def test_csv_text_in_numeric_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", "a,b\n1,2\n3,four\n")
    with pytest.raises(DataError) as info:
        load_dataset(str(path))
    message = str(info.value)
    assert str(path) in message and "row 3" in message and "column 'b'" in message and "'four'" in message


def test_csv_nan_and_empty_value(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "n.csv", "a,b\n1,2\n3,4\n5,6\n7,nan\n")
    with pytest.raises(DataError) as info:
        load_dataset(str(path))
    assert str(info.value) == f"{path}: contains NaN at row 5, column 'b'; clean or impute it"
    inf = write_csv(tmp_path / "i.csv", "a,b\n1,2\n-inf,4\n")
    with pytest.raises(DataError, match="contains -inf at row 3, column 'a'"):
        load_dataset(str(inf))
    blank = write_csv(tmp_path / "e.csv", "a,b\n1,\n")
    with pytest.raises(DataError, match="empty value at row 2, column 'b'"):
        load_dataset(str(blank))


def test_csv_empty_and_header_only(tmp_path: Path) -> None:
    empty = write_csv(tmp_path / "empty.csv", "")
    with pytest.raises(DataError, match=r"empty\.csv: is empty"):
        load_dataset(str(empty))
    blank_lines = write_csv(tmp_path / "blank.csv", "\n\n")
    with pytest.raises(DataError, match="is empty"):
        load_dataset(str(blank_lines))
    header_only = write_csv(tmp_path / "h.csv", "a,b\n")
    with pytest.raises(DataError, match="header row but no data rows"):
        load_dataset(str(header_only))
    one_column = write_csv(tmp_path / "one.csv", "1\n2\n")
    with pytest.raises(DataError, match="only 1 column"):
        load_dataset(str(one_column))


def test_csv_classification_label_mapping(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", "f1,f2,label\n0.1,1,3\n0.2,2,7\n0.3,3,3\n0.4,4,-1\n0.5,5,7.0\n")
    ds = load_dataset(str(path))
    assert ds.task == "classification"
    assert ds.y.dtype == torch.int64 and ds.y.tolist() == [1, 2, 1, 0, 2]
    assert ds.n_classes == 3 and ds.class_names == ["-1", "3", "7"]
    assert ds.target_names == ["label"]
    forced = load_dataset(str(path), task="regression")
    assert forced.task == "regression" and forced.y[:, 0].tolist() == [3, 7, 3, -1, 7]


def test_csv_many_integer_values_are_regression(tmp_path: Path) -> None:
    rows = "\n".join(f"{i},{i * 3}" for i in range(25))
    ds = load_dataset(str(write_csv(tmp_path / "r.csv", f"x,y\n{rows}\n")))
    assert ds.task == "regression" and ds.y.shape == (25, 1)


def test_csv_forced_classification_needs_whole_numbers(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "f.csv", "x,y\n1,0\n2,0.5\n")
    with pytest.raises(DataError, match=r"row 3, column 'y' holds '0.5'"):
        load_dataset(str(path), task="classification")
    with pytest.raises(DataError, match="task='sometimes'"):
        load_dataset(str(path), task="sometimes")


def test_csv_missing_file_and_bad_encoding(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_dataset(str(tmp_path / "absent.csv"))
    latin = tmp_path / "latin.csv"
    latin.write_bytes("a,b\n1,\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_dataset(str(latin))
    with pytest.raises(DataError, match="unknown option 'targt'"):
        load_dataset(str(latin), targt="a")


# --------------------------------------------------------------------------------------------------
# NPZ files


def test_npz_classification_with_test_split(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    X = np.arange(12, dtype=np.float64).reshape(6, 2)
    y = np.array([0, 2, 1, 2, 0, 1], dtype=np.int32)
    np.savez(path, X=X, y=y, X_test=X[:2], y_test=y[:2])
    ds = load_dataset(str(path))
    assert ds.task == "classification" and ds.n_classes == 3
    assert ds.X.dtype == torch.float32 and ds.X.tolist() == X.tolist()
    assert ds.y.dtype == torch.int64 and ds.y.tolist() == [0, 2, 1, 2, 0, 1]
    assert ds.X_test is not None and ds.X_test.shape == (2, 2)
    assert ds.y_test is not None and ds.y_test.tolist() == [0, 2]
    assert ds.X_val is None


def test_npz_regression_lowercase_x_and_val_split(tmp_path: Path) -> None:
    path = tmp_path / "r.npz"
    np.savez(
        path,
        x=np.ones((4, 3), np.float32),
        y=np.array([0.5, 1.5, 2.5, 3.5]),
        X_val=np.zeros((2, 3)),
        y_val=np.zeros(2),
    )
    ds = load_dataset(str(path))
    assert ds.task == "regression"
    assert ds.y.shape == (4, 1) and ds.y.dtype == torch.float32 and ds.y[:, 0].tolist() == [0.5, 1.5, 2.5, 3.5]
    assert ds.X_val is not None and ds.X_val.shape == (2, 3)
    assert ds.y_val is not None and ds.y_val.shape == (2, 1)
    forced = load_dataset(str(path), task="regression")
    assert forced.task == "regression"


def test_npz_length_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    np.savez(path, X=np.zeros((100, 2)), y=np.zeros(99))
    with pytest.raises(DataError) as info:
        load_dataset(str(path))
    assert str(path) in str(info.value) and "X has 100 rows but y has 99" in str(info.value)


def test_npz_object_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.npz"
    np.savez(path, X=np.array([{"a": 1}, None], dtype=object), y=np.zeros(2))
    with pytest.raises(DataError, match="'X' is an object array"):
        load_dataset(str(path))


def test_npz_missing_keys_nan_and_forced_classification(tmp_path: Path) -> None:
    missing = tmp_path / "k.npz"
    np.savez(missing, features=np.zeros((2, 2)), y=np.zeros(2))
    with pytest.raises(DataError, match=r"no 'X' array \(keys found: 'features', 'y'\)"):
        load_dataset(str(missing))
    nan = tmp_path / "n.npz"
    X = np.zeros((3, 2))
    X[1, 1] = np.nan
    np.savez(nan, X=X, y=np.zeros(3))
    with pytest.raises(DataError, match=r"'X' contains NaN at index \(1, 1\)"):
        load_dataset(str(nan))
    floats = tmp_path / "f.npz"
    np.savez(floats, X=np.zeros((3, 2)), y=np.array([0.0, 1.0, 1.0]))
    with pytest.raises(DataError, match="needs integer labels but 'y' has dtype float64"):
        load_dataset(str(floats), task="classification")
    negative = tmp_path / "neg.npz"
    np.savez(negative, X=np.zeros((2, 2)), y=np.array([0, -1]))
    with pytest.raises(DataError, match="label -1 at index 1"):
        load_dataset(str(negative))


def test_npz_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    path.write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"bad\.npz: cannot be read as an \.npz archive"):
        load_dataset(str(path))


def test_unsupported_existing_file(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.txt", "1,2\n")
    with pytest.raises(DataError, match=r"data\.txt: unsupported file type"):
        load_dataset(str(path))


# --------------------------------------------------------------------------------------------------
# The real Fashion-MNIST files (installed by `apt-get install dataset-fashion-mnist`)


@pytest.fixture(scope="module")
def real_fashion() -> Dataset:
    if not SYSTEM_FASHION.is_dir():
        pytest.skip(f"{SYSTEM_FASHION} is not installed")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("TRAINWISE_DATA", raising=False)
        return load_dataset("fashion-mnist")


def test_real_fashion_mnist(real_fashion: Dataset) -> None:
    ds = real_fashion
    assert ds.X.shape == (60000, 1, 28, 28) and ds.X.dtype == torch.float32
    assert ds.y.shape == (60000,) and ds.y.dtype == torch.int64
    assert ds.X_test is not None and ds.X_test.shape == (10000, 1, 28, 28)
    assert ds.y_test is not None and ds.y_test.shape == (10000,)
    assert ds.X.min().item() == 0.0 and ds.X.max().item() == 1.0
    assert torch.bincount(ds.y, minlength=10).tolist() == [6000] * 10
    assert torch.bincount(ds.y_test, minlength=10).tolist() == [1000] * 10
    assert ds.class_names == FASHION_MNIST_CLASSES and ds.n_classes == 10
    assert ds.y[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]  # the well-known first labels


def test_real_fashion_mnist_limit(real_fashion: Dataset) -> None:
    small = load_dataset("fashion-mnist", path=SYSTEM_FASHION, limit=50)
    assert small.X.shape == (50, 1, 28, 28)
    assert small.X_test is not None and small.X_test.shape == (50, 1, 28, 28)
    assert torch.equal(small.X, real_fashion.X[:50])
    assert torch.equal(small.y, real_fashion.y[:50])


# --------------------------------------------------------------------------------------------------
# Malformed files (docs/reliability.md): one line naming the file and the problem, from load_dataset
# and from `trainwise fit` (exit code 2, nothing else on stderr)

MalformedCase = tuple[dict[str, Any], str]  # (the config's [data] table, the exact message)


def _idx_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "idx"
    write_idx_set(folder)
    return folder


def _truncated_gzip(tmp_path: Path) -> MalformedCase:
    labels = _idx_folder(tmp_path) / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-12])
    reason = "Compressed file ended before the end-of-stream marker was reached"
    return {"name": "fashion-mnist", "path": str(labels.parent)}, (
        f"{labels}: corrupt or truncated gzip data ({reason}); re-download or re-install the file"
    )


def _corrupt_gzip(tmp_path: Path) -> MalformedCase:
    images = _idx_folder(tmp_path) / "train-images-idx3-ubyte.gz"
    data = bytearray(images.read_bytes())
    data[-8] ^= 0xFF  # the CRC-32 of the content
    images.write_bytes(bytes(data))
    return {"name": "fashion-mnist", "path": str(images.parent)}, (
        f"{images}: corrupt or truncated gzip data (CRC check failed); re-download or re-install the file"
    )


def _idx_wrong_magic(tmp_path: Path) -> MalformedCase:
    labels = _idx_folder(tmp_path) / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(b"\x12\x34\x56\x78" + bytes(8)))
    return {"name": "fashion-mnist", "path": str(labels.parent)}, (
        f"{labels}: not an IDX file (magic number 0x12345678, expected 0x00000801 or 0x00000803); "
        "pass the .gz files of MNIST/Fashion-MNIST"
    )


def _idx_wrong_sizes(tmp_path: Path) -> MalformedCase:
    labels = _idx_folder(tmp_path) / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + struct.pack(">I", 12) + bytes(10)))
    return {"name": "fashion-mnist", "path": str(labels.parent)}, (
        f"{labels}: IDX data is 10 bytes but the header's sizes (12,) need 12 bytes (file truncated); "
        "re-download or re-install the file"
    )


def _idx_lengths_differ(tmp_path: Path) -> MalformedCase:
    folder = _idx_folder(tmp_path)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(11, np.uint8))  # 12 images
    return {"name": "fashion-mnist", "path": str(folder)}, (
        f"{folder / 'train-images-idx3-ubyte.gz'}: has 12 images but train-labels-idx1-ubyte.gz has 11 labels; "
        "use the matching pair of files"
    )


def _empty_idx(tmp_path: Path) -> MalformedCase:
    images = _idx_folder(tmp_path) / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(b""))
    return {"name": "fashion-mnist", "path": str(images.parent)}, (
        f"{images}: is empty; pass the .gz files of MNIST/Fashion-MNIST"
    )


def _csv_ragged(tmp_path: Path) -> MalformedCase:
    path = write_csv(tmp_path / "ragged.csv", "a,b,y\n1,2,3\n4,5\n")
    return {"name": str(path)}, (
        f"{path}: row 3 has 2 fields, expected 3 (like row 1); fix the row or quote fields that contain commas"
    )


def _csv_text(tmp_path: Path) -> MalformedCase:
    path = write_csv(tmp_path / "text.csv", "a,b,y\n1,2,3\n4,five,6\n")
    return {"name": str(path)}, (
        f"{path}: row 3, column 'b' holds 'five', which is not a number; fix it or encode text columns as numbers"
    )


def _csv_nan(tmp_path: Path) -> MalformedCase:
    path = write_csv(tmp_path / "nan.csv", "a,y\n1,2\nNaN,3\n")
    return {"name": str(path)}, f"{path}: contains NaN at row 3, column 'a'; clean or impute it"


def _csv_inf(tmp_path: Path) -> MalformedCase:
    path = write_csv(tmp_path / "inf.csv.gz", "")
    path.write_bytes(gzip.compress(b"a,y\n1,2\n3,-inf\n"))
    return {"name": str(path)}, f"{path}: contains -inf at row 3, column 'y'; clean or impute it"


def _csv_empty(tmp_path: Path) -> MalformedCase:
    path = write_csv(tmp_path / "empty.csv", "")
    return {"name": str(path)}, f"{path}: is empty; a CSV needs one row per sample with numeric columns"


def _csv_text_labels(tmp_path: Path) -> MalformedCase:
    path = write_csv(tmp_path / "labels.csv", "a,label\n1,cat\n2,dog\n")
    return {"name": str(path)}, (
        f"{path}: row 2, column 'label' holds 'cat', which is not a number; fix it or encode text columns as numbers"
    )


def _npz_inf(tmp_path: Path) -> MalformedCase:
    path = tmp_path / "inf.npz"
    np.savez(path, X=np.array([[1.0], [np.inf]]), y=np.array([[1.0], [2.0]]))
    return {"name": str(path)}, f"{path}: array 'X' contains inf at index (1, 0); clean or impute it"


def _npz_empty(tmp_path: Path) -> MalformedCase:
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    return {"name": str(path)}, (
        f"{path}: cannot be read as an .npz archive (EOFError: No data left in file); "
        "save it with np.savez(path, X=..., y=...)"
    )


def _npz_lengths_differ(tmp_path: Path) -> MalformedCase:
    path = tmp_path / "lengths.npz"
    np.savez(path, X=np.ones((3, 2)), y=np.ones((2, 1)))
    return {"name": str(path)}, f"{path}: X has 3 rows but y has 2; save one target per row"


def _npz_float_labels(tmp_path: Path) -> MalformedCase:
    path = tmp_path / "float-labels.npz"
    np.savez(path, X=np.ones((3, 2)), y=np.array([0.0, 1.5, 2.0]))
    return {"name": str(path), "task": "classification"}, (
        f"{path}: task='classification' needs integer labels but 'y' has dtype float64; "
        "save y with y.astype(np.int64) or use task='regression'"
    )


def _npz_string_labels(tmp_path: Path) -> MalformedCase:
    path = tmp_path / "string-labels.npz"
    np.savez(path, X=np.ones((3, 2)), y=np.array(["cat", "dog", "cat"]))
    return {"name": str(path)}, f"{path}: array 'y' has dtype <U3; trainwise needs numeric arrays"


def _pickle_of(path: Path, splits: Any) -> Path:
    with gzip.open(path, "wb") as f:
        pickle.dump(splits, f, protocol=2)
    return path


def _pickle_empty(tmp_path: Path) -> MalformedCase:
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(b"")
    return {"name": "mnist", "path": str(path)}, (
        f"{path}: cannot be read as mnist.pkl.gz (EOFError: Ran out of input); "
        "re-download the file from the 'What is torch.nn really?' tutorial"
    )


def _pickle_nan(tmp_path: Path) -> MalformedCase:
    x = np.zeros((3, 784), np.float32)
    x[1, 5] = np.nan
    path = _pickle_of(tmp_path / "mnist.pkl.gz", ((x, np.zeros(3, np.int64)),) * 3)
    return {"name": "mnist", "path": str(path)}, (
        f"{path}: train images contain NaN at index (1, 5); pass the tutorial's mnist.pkl.gz"
    )


def _pickle_lengths_differ(tmp_path: Path) -> MalformedCase:
    path = _pickle_of(tmp_path / "mnist.pkl.gz", ((np.zeros((3, 784), np.float32), np.zeros(2, np.int64)),) * 3)
    return {"name": "mnist", "path": str(path)}, (
        f"{path}: the train split has x of shape (3, 784) but y of shape (2,); "
        "x and y must have the same number of rows (y 1-D)"
    )


def _pickle_float_labels(tmp_path: Path) -> MalformedCase:
    path = _pickle_of(tmp_path / "mnist.pkl.gz", ((np.zeros((3, 784), np.float32), np.array([0.5, 1, 2])),) * 3)
    return {"name": "mnist", "path": str(path)}, (
        f"{path}: train labels are not whole numbers; pass the tutorial's mnist.pkl.gz"
    )


def _pickle_string_labels(tmp_path: Path) -> MalformedCase:
    labels = np.array(["a", "b", "c"])
    path = _pickle_of(tmp_path / "mnist.pkl.gz", ((np.zeros((3, 784), np.float32), labels),) * 3)
    return {"name": "mnist", "path": str(path)}, (
        f"{path}: the train split has dtypes float32/<U1, expected numeric arrays; pass the tutorial's mnist.pkl.gz"
    )


MALFORMED = {
    "truncated-gzip": _truncated_gzip,
    "corrupt-gzip": _corrupt_gzip,
    "idx-wrong-magic": _idx_wrong_magic,
    "idx-wrong-sizes": _idx_wrong_sizes,
    "idx-lengths-differ": _idx_lengths_differ,
    "idx-empty": _empty_idx,
    "csv-ragged-rows": _csv_ragged,
    "csv-text-in-numeric-column": _csv_text,
    "csv-nan": _csv_nan,
    "csv-gz-inf": _csv_inf,
    "csv-empty": _csv_empty,
    "csv-text-labels": _csv_text_labels,
    "npz-inf": _npz_inf,
    "npz-empty": _npz_empty,
    "npz-lengths-differ": _npz_lengths_differ,
    "npz-float-labels-for-classification": _npz_float_labels,
    "npz-string-labels": _npz_string_labels,
    "pickle-empty": _pickle_empty,
    "pickle-nan": _pickle_nan,
    "pickle-lengths-differ": _pickle_lengths_differ,
    "pickle-float-labels": _pickle_float_labels,
    "pickle-string-labels": _pickle_string_labels,
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_file_is_one_line_naming_it(tmp_path: Path, case: str) -> None:
    data, message = MALFORMED[case](tmp_path)
    options = {k: v for k, v in data.items() if k != "name"}
    with pytest.raises(DataError) as info:
        load_dataset(data["name"], **options)
    assert str(info.value) == message


@pytest.mark.parametrize("case", ["truncated-gzip", "idx-wrong-magic", "csv-ragged-rows", "npz-string-labels",
                                  "pickle-nan", "npz-float-labels-for-classification"])  # fmt: skip
def test_a_malformed_file_ends_trainwise_fit_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    import tomli_w

    from trainwise.cli import main

    data, message = MALFORMED[case](tmp_path)
    config = tmp_path / "config.toml"
    config.write_text(tomli_w.dumps({"data": data, "model": {"name": "linear"}, "loss": {"name": "mse"},
                                     "optim": {"name": "sgd", "lr": 0.1},
                                     "train": {"epochs": 1, "device": "cpu"}}))  # fmt: skip
    assert main(["fit", str(config), "--quiet", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"


def test_in_memory_data_of_different_lengths_or_text_labels_is_one_line() -> None:
    import trainwise

    X = torch.randn(20, 3)
    with pytest.raises(DataError, match=r"^data: X has 20 samples but y has 19; they must match$"):
        trainwise.fit(torch.nn.Linear(3, 3), (X, torch.zeros(19, dtype=torch.long)), loss="cross_entropy", lr=0.1,
                      progress=False, device="cpu")  # fmt: skip
    with pytest.raises(DataError, match=r"^data y: cannot read it as numbers \("):
        trainwise.fit(torch.nn.Linear(3, 3), (X, np.array(["cat"] * 20)), loss="cross_entropy", lr=0.1,
                      progress=False, device="cpu")  # fmt: skip


def test_labels_of_the_wrong_dtype_for_the_loss_in_a_config(tmp_path: Path) -> None:
    from trainwise.config import load_config
    from trainwise.errors import ConfigError
    from trainwise.recipes import run_config

    path = write_csv(tmp_path / "classes.csv", "a,b,label\n1,2,0\n3,4,1\n5,6,2\n")
    overrides = [f"data.name={str(path)!r}", "model.name=linear", "train.epochs=1", "train.device=cpu"]
    with pytest.raises(ConfigError) as info:  # class labels with an element-wise loss
        run_config(load_config("w1-normalized", [*overrides, "loss.name=mse"]), progress=False)
    assert str(info.value) == (
        "loss.name: loss 'mse' compares each output with a target of the same shape, but classes.csv's targets "
        "are class labels; use 'cross_entropy', or set data.one_hot = true"
    )
    with pytest.raises(ConfigError) as info:  # regression targets with a classification loss
        run_config(load_config("w1-normalized", ["loss.name=cross_entropy", "model.outputs=3", "train.device=cpu"]),
                   progress=False)  # fmt: skip
    assert str(info.value) == (
        "loss.name: loss 'cross_entropy' needs class labels, but temperature's targets are numbers (1 per sample); "
        "use a regression loss such as 'mse'"
    )


def test_float_labels_with_cross_entropy_in_python_are_a_data_error() -> None:
    import trainwise

    with pytest.raises(DataError) as info:
        trainwise.fit(torch.nn.Linear(3, 3), (torch.randn(20, 3), torch.rand(20)), loss="cross_entropy", lr=0.1,
                      progress=False, doctor="off", device="cpu")  # fmt: skip
    assert str(info.value) == (
        "y: loss 'cross_entropy' needs integer class labels, but the targets are float32 numbers, one per sample; "
        "pass y.long() if they are labels 0..C-1, or use a regression loss such as 'mse'"
    )
    # class probabilities, one row per sample, are what cross_entropy also takes
    probabilities = torch.softmax(torch.randn(20, 3), dim=1)
    result = trainwise.fit(torch.nn.Linear(3, 3), (torch.randn(20, 3), probabilities), loss="cross_entropy", lr=0.1,
                           epochs=2, progress=False, doctor="off", device="cpu")  # fmt: skip
    assert result.status == "completed" and len(result.history["loss"]) == 2


def test_a_malicious_mnist_pickle_named_by_a_config_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`trainwise fit` on a config whose dataset is a hostile mnist.pkl.gz: refused, and the command never runs."""
    import tomli_w

    from trainwise.cli import main

    marker = tmp_path / "x"
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(_Exploit(os.system, (f"touch {marker}",)), f)  # the default protocol (5), not 2
    config = tmp_path / "config.toml"
    config.write_text(tomli_w.dumps({"data": {"name": "mnist", "path": str(path)}, "model": {"name": "logistic"},
                                     "loss": {"name": "cross_entropy"}, "optim": {"name": "sgd", "lr": 0.1},
                                     "train": {"epochs": 1, "device": "cpu"}}))  # fmt: skip
    assert main(["fit", str(config), "--quiet", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err == (
        f"error: {path}: refusing to unpickle posix.system: mnist.pkl.gz may only contain numpy arrays\n"
    )
    assert not marker.exists()
