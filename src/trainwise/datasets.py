"""Datasets for tutorial-style workloads: built-ins, IDX/pickled MNIST files, and CSV/NPZ files.

`load_dataset(name, **options)` returns an in-memory `Dataset`. Nothing here downloads anything: the
image datasets are looked up on disk (an explicit `path`, then `$TRAINWISE_DATA`, then a default folder)
and a missing file is a `DataError` that says where it looked and how to get the files.

Every problem with a file is raised as a one-line `DataError` naming the file, the problem and the fix,
never as a raw parsing traceback, because the CLI shows `TrainwiseError`s to the user as they are.
"""

import _compat_pickle
import codecs
import csv
import difflib
import gzip
import importlib
import inspect
import io
import math
import os
import pickle
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from trainwise.errors import DataError

__all__ = ["BUILTIN", "Dataset", "dataset_options", "load_dataset", "load_mnist_pickle", "read_idx"]

Task = Literal["regression", "classification"]
TaskOption = Literal["auto", "regression", "classification"]

BUILTIN: tuple[str, ...] = ("temperature", "sine", "random-regression", "fashion-mnist", "mnist")

DATA_ENV = "TRAINWISE_DATA"
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
MNIST_USER_DIR = "~/.trainwise/data/mnist"

FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

_GZIP_MAGIC = b"\x1f\x8b"
# Above this many distinct integer values an integer CSV target is more likely a count than a class.
_MAX_AUTO_CLASSES = 20


@dataclass(eq=False, repr=False)
class Dataset:
    """A loaded dataset: training tensors, optional validation/test splits, and names for reports.

    X is float32 of shape (N, ...); images are (N, 1, 28, 28) in [0, 1]. For classification y is int64
    of shape (N,) holding 0..n_classes-1; for regression y is float32 of shape (N, k), always 2-D.
    X_val/y_val and X_test/y_test hold the splits the source itself defines, else None.

    load_dataset makes it; its fields are attributes of the same names.

    Args:
        name: the dataset's name (a built-in's name, or the file's name).
        X, y: the training inputs and targets, as above.
        task: "regression" or "classification".
        n_classes: the number of classes for classification; None for regression.
        X_val, y_val, X_test, y_test: the validation and test splits the source defines; None where it has none.
        feature_names, target_names, class_names: names of the input columns, the regression targets and the
            classes, for reports; empty when unknown.
        description: a line saying what the data is and where it came from.
    """

    name: str
    X: torch.Tensor
    y: torch.Tensor
    task: Task
    n_classes: int | None = None
    X_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    X_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    feature_names: list[str] = field(default_factory=list)
    target_names: list[str] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    description: str = ""

    def __repr__(self) -> str:
        # The generated repr would print every tensor element; shapes are what a reader needs.
        parts = [f"name={self.name!r}", f"task={self.task!r}"]
        for attr in ("X", "y", "X_val", "y_val", "X_test", "y_test"):
            value = getattr(self, attr)
            if value is not None:
                parts.append(f"{attr}={tuple(value.shape)}")
        if self.n_classes is not None:
            parts.append(f"n_classes={self.n_classes}")
        return f"Dataset({', '.join(parts)})"


# --------------------------------------------------------------------------------------------------
# Option checking


def _int_option(dataset: str, option: str, value: object, minimum: int) -> int:
    """Return `value` as an int, or raise a DataError if it is not an integer >= `minimum`."""
    # bool is an int subclass, but `n_samples=True` is always a mistake.
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise DataError(
            f"dataset {dataset!r}: option {option}={value!r} must be an integer >= {minimum}; pass a whole number"
        )
    if value < minimum:
        raise DataError(f"dataset {dataset!r}: option {option}={value} must be >= {minimum}; pass a larger value")
    return int(value)


def _float_option(dataset: str, option: str, value: object) -> float:
    """Return `value` as a finite float, or raise a DataError."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise DataError(f"dataset {dataset!r}: option {option}={value!r} must be a number; pass a float")
    result = float(value)
    if not math.isfinite(result):
        raise DataError(f"dataset {dataset!r}: option {option}={value!r} must be finite; pass a finite number")
    return result


def _limit_option(dataset: str, limit: object) -> int | None:
    return None if limit is None else _int_option(dataset, "limit", limit, 1)


def _task_option(source: str, task: object) -> TaskOption:
    if task == "auto" or task == "regression" or task == "classification":
        return task
    raise DataError(
        f"{source}: option task={task!r} is not one of 'auto', 'regression', 'classification'; pass one of them"
    )


def _path_option(dataset: str, path: object) -> Path | None:
    if path is None:
        return None
    if not isinstance(path, str | os.PathLike):
        raise DataError(f"dataset {dataset!r}: option path={path!r} must be a path (a string); pass a folder")
    return Path(os.fspath(path)).expanduser()


# --------------------------------------------------------------------------------------------------
# Small shared helpers


def _read_file(path: Path) -> bytes:
    """Read a whole file, gunzipping it when it starts with the gzip magic bytes (whatever its name)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; check the path") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a file; pass the file itself") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}); check its permissions") from None
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip data ({exc}); re-download or re-install the file") from None


def _to_tensor(array: np.ndarray, dtype: np.dtype[Any] | type) -> torch.Tensor:
    # torch.from_numpy warns on read-only arrays (np.frombuffer, unpickled data); np.require copies those.
    return torch.from_numpy(np.require(array, dtype=dtype, requirements=["C", "W"]))


def _first_bad(array: np.ndarray) -> tuple[str, tuple[int, ...]] | None:
    """Return ("NaN" | "inf" | "-inf", index) of the first non-finite element, or None if all are finite."""
    if array.dtype.kind not in "fc":
        return None
    bad = ~np.isfinite(array)
    if not bad.any():
        return None
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    value = array[index]
    kind = "NaN" if np.isnan(value) else ("inf" if value > 0 else "-inf")
    return kind, index


def _all_finite(tensor: torch.Tensor) -> bool:
    # A sum is finite only if every element is, and it is far cheaper than isfinite() on 47M pixels;
    # only when it is not (NaN/inf, or an overflow of large finite values) is the exact check needed.
    if math.isfinite(float(tensor.sum())):
        return True
    return bool(torch.isfinite(tensor).all())


def _check_dataset(ds: Dataset) -> Dataset:
    """The checks every loader's result must pass: matching lengths, finite values, consistent labels."""
    if ds.task not in ("regression", "classification"):
        raise DataError(f"dataset {ds.name!r}: task {ds.task!r} must be 'regression' or 'classification'")
    for suffix in ("", "_val", "_test"):
        X: torch.Tensor | None = getattr(ds, "X" + suffix)
        y: torch.Tensor | None = getattr(ds, "y" + suffix)
        if X is None and y is None:
            continue
        if X is None or y is None:
            missing, present = ("X" + suffix, "y" + suffix) if X is None else ("y" + suffix, "X" + suffix)
            raise DataError(f"dataset {ds.name!r}: has {present} but no {missing}; provide both or neither")
        if X.ndim == 0 or y.ndim == 0 or len(X) != len(y):
            raise DataError(
                f"dataset {ds.name!r}: X{suffix} has {len(X) if X.ndim else 0} rows but y{suffix} has "
                f"{len(y) if y.ndim else 0}; give every sample exactly one target"
            )
        if len(X) == 0:
            raise DataError(f"dataset {ds.name!r}: X{suffix} has no rows; the dataset needs at least one sample")
        for label, tensor in (("X" + suffix, X), ("y" + suffix, y)):
            if tensor.is_floating_point() and not _all_finite(tensor):
                bad = _first_bad(tensor.numpy())
                where = f" at index {bad[1]}" if bad else ""
                kind = bad[0] if bad else "non-finite values"
                raise DataError(f"dataset {ds.name!r}: {label} contains {kind}{where}; clean or impute it")
        if ds.task == "classification":
            if y.dtype != torch.int64 or y.ndim != 1:
                raise DataError(
                    f"dataset {ds.name!r}: classification labels y{suffix} must be int64 of shape (N,), "
                    f"got {y.dtype} {tuple(y.shape)}"
                )
            if ds.n_classes is None or ds.n_classes < 1:
                raise DataError(f"dataset {ds.name!r}: classification needs n_classes >= 1")
            low, high = int(y.min()), int(y.max())
            if low < 0 or high >= ds.n_classes:
                raise DataError(
                    f"dataset {ds.name!r}: label {low if low < 0 else high} in y{suffix} is outside "
                    f"0..{ds.n_classes - 1}; labels must be 0..n_classes-1"
                )
        elif y.ndim != 2:
            raise DataError(
                f"dataset {ds.name!r}: regression targets y{suffix} must be 2-D (N, k), got {tuple(y.shape)}"
            )
    return ds


# --------------------------------------------------------------------------------------------------
# IDX files (MNIST, Fashion-MNIST)

_IDX_TYPES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "short",
    0x0C: "int",
    0x0D: "float",
    0x0E: "double",
}
_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzipped or raw) of unsigned bytes as a uint8 array of the shape in its header."""
    path = Path(path)
    data = _read_file(path)
    if not data:
        raise DataError(f"{path}: is empty; pass the .gz files of MNIST/Fashion-MNIST")
    magic = int.from_bytes(data[:4].ljust(4, b"\0"), "big")
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES or data[3] == 0:
        raise DataError(
            f"{path}: not an IDX file (magic number 0x{magic:08x}, expected 0x00000801 or 0x00000803); "
            "pass the .gz files of MNIST/Fashion-MNIST"
        )
    type_code, ndim = data[2], data[3]
    if type_code != 0x08:
        raise DataError(
            f"{path}: IDX type code 0x{type_code:02x} ({_IDX_TYPES[type_code]}) is not supported, only 0x08 "
            "(unsigned byte); pass the image/label files of MNIST/Fashion-MNIST"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{path}: truncated IDX header ({len(data)} bytes, {ndim} dimensions need {header}); "
            "re-download or re-install the file"
        )
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(shape)  # Python ints, so no overflow for hostile headers
    actual = len(data) - header
    if actual != expected:
        problem = "truncated" if actual < expected else f"{actual - expected} bytes too long"
        raise DataError(
            f"{path}: IDX data is {actual} bytes but the header's sizes {shape} need {expected} bytes "
            f"(file {problem}); re-download or re-install the file"
        )
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header).reshape(shape).copy()


def _find_file(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def _find_idx_set(directory: Path) -> tuple[dict[str, Path] | None, str]:
    """Return the four IDX files in `directory` (or None) and a note on what was found there."""
    if not directory.is_dir():
        return None, "no such folder"
    found = {key: _find_file(directory, stem) for key, stem in _IDX_FILES.items()}
    present = {key: p for key, p in found.items() if p is not None}
    if len(present) == len(_IDX_FILES):
        return present, "found"
    if not present:
        return None, "no IDX files"
    missing = ", ".join(f"{_IDX_FILES[key]}(.gz)" for key, p in found.items() if p is None)
    return None, f"missing {missing}"


def _idx_split(
    images_path: Path, labels_path: Path, limit: int | None, n_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one images/labels pair as (N, 1, H, W) float32 in [0, 1] and int64 labels."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise DataError(
            f"{images_path}: expected 3-D IDX images (N, rows, cols), got shape {images.shape}; "
            "pass the images-idx3 file here"
        )
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected 1-D IDX labels, got shape {labels.shape}; pass the labels-idx1 file")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path}: has {len(images)} images but {labels_path.name} has {len(labels)} labels; "
            "use the matching pair of files"
        )
    if labels.size and int(labels.max()) >= n_classes:
        raise DataError(
            f"{labels_path}: label {int(labels.max())} is outside 0..{n_classes - 1}; "
            "this is not an MNIST/Fashion-MNIST label file"
        )
    if limit is not None:
        # Slicing before the float conversion keeps a quick run from building 190 MB of float32.
        images, labels = images[:limit], labels[:limit]
    X = torch.from_numpy(images).unsqueeze(1).to(torch.float32).div_(255.0)
    return X, torch.from_numpy(labels).to(torch.int64)


def _search_dirs(path: Path | None, subdir: str, default: Path) -> list[Path]:
    # An explicit path is authoritative: silently falling back to another copy would hide a typo.
    if path is not None:
        return [path]
    dirs: list[Path] = []
    env = os.environ.get(DATA_ENV)
    if env:
        # The subfolder goes first so a parent holding both mnist/ and fashion-mnist/ picks the right one.
        base = Path(env).expanduser()
        dirs += [base / subdir, base]
    dirs.append(default)
    return dirs


def _load_fashion_mnist(*, path: str | Path | None = None, limit: int | None = None) -> Dataset:
    """Fashion-MNIST from its four IDX files: train (60,000) as X/y, t10k (10,000) as X_test/y_test."""
    directory = _path_option("fashion-mnist", path)
    limit = _limit_option("fashion-mnist", limit)
    looked: list[str] = []
    for candidate in _search_dirs(directory, "fashion-mnist", FASHION_MNIST_SYSTEM_DIR):
        files, note = _find_idx_set(candidate)
        if files is not None:
            break
        looked.append(f"{candidate} ({note})")
    else:
        raise DataError(
            f"dataset 'fashion-mnist': IDX files not found; looked in {'; '.join(looked)}; "
            "install them with `apt-get install dataset-fashion-mnist` or set TRAINWISE_DATA "
            "to a folder holding the IDX .gz files"
        )
    X, y = _idx_split(files["train_images"], files["train_labels"], limit, 10)
    X_test, y_test = _idx_split(files["test_images"], files["test_labels"], limit, 10)
    return Dataset(
        name="fashion-mnist",
        X=X,
        y=y,
        task="classification",
        n_classes=10,
        X_test=X_test,
        y_test=y_test,
        class_names=list(FASHION_MNIST_CLASSES),
        description=(
            "Fashion-MNIST (Zalando): 28x28 grayscale images of 10 clothing classes, train split as X/y and "
            f"t10k split as X_test/y_test, read from {candidate}"
        ),
    )


# --------------------------------------------------------------------------------------------------
# mnist.pkl.gz ("What is torch.nn really?")


def _numpy_attr(modules: tuple[str, ...], name: str) -> Any:
    # numpy 2 renamed numpy.core to numpy._core; importing the old name emits a DeprecationWarning.
    for module in modules:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise DataError(f"numpy has no {name} in {' or '.join(modules)}; upgrade numpy")


_MULTIARRAY = ("numpy._core.multiarray", "numpy.core.multiarray")
_NUMERIC = ("numpy._core.numeric", "numpy.core.numeric")
# Exactly what numpy arrays pickle to (protocol 2 in Python 2 and 3, and protocols 3-5); nothing else.
_PICKLE_ALLOWED: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {
    ("numpy.core.multiarray", "_reconstruct"): (_MULTIARRAY, "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): (_MULTIARRAY, "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): (_MULTIARRAY, "scalar"),
    ("numpy._core.multiarray", "scalar"): (_MULTIARRAY, "scalar"),
    ("numpy.core.numeric", "_frombuffer"): (_NUMERIC, "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): (_NUMERIC, "_frombuffer"),
    ("numpy", "ndarray"): (("numpy",), "ndarray"),
    ("numpy", "dtype"): (("numpy",), "dtype"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and nothing else, so a hostile file cannot run code."""

    def __init__(self, file: io.BufferedIOBase | gzip.GzipFile, path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        target = _PICKLE_ALLOWED.get((module, name))
        if target is not None:
            return _numpy_attr(*target)
        # Name what would really run: protocol 2 writes Python 2 names (__builtin__.eval for builtins.eval).
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) == ("_codecs", "encode"):
            # Python 3 pickles bytes at protocol 2 as _codecs.encode(text, "latin1"); allow only that codec.
            return self._latin1_encode
        raise DataError(
            f"{self._path}: refusing to unpickle {module}.{name}: mnist.pkl.gz may only contain numpy arrays"
        )

    def _latin1_encode(self, obj: object, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        if not isinstance(obj, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
            raise DataError(
                f"{self._path}: refusing to unpickle _codecs.encode with {encoding!r}: "
                "mnist.pkl.gz may only contain numpy arrays"
            )
        return codecs.encode(obj, "latin1")


def load_mnist_pickle(path: str | Path) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Safely read mnist.pkl.gz: ((x_train, y_train), (x_valid, y_valid), (x_test, y_test)) numpy arrays.

    Only numpy arrays can be rebuilt (a restricted `find_class`), so a malicious pickle raises DataError
    instead of running code.
    """
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            is_gzip = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            stream: io.BufferedIOBase | gzip.GzipFile = gzip.GzipFile(fileobj=raw) if is_gzip else raw
            result = _ArrayOnlyUnpickler(stream, path).load()
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; check the path") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected the mnist.pkl.gz file") from None
    except Exception as exc:
        # Unpickling bad bytes can fail with almost any exception type; all mean "not a valid file".
        raise DataError(
            f"{path}: cannot be read as mnist.pkl.gz ({type(exc).__name__}: {exc}); "
            "re-download the file from the 'What is torch.nn really?' tutorial"
        ) from None

    layout = "expected ((x_train, y_train), (x_valid, y_valid), (x_test, y_test)) of numpy arrays"
    if not isinstance(result, tuple | list) or len(result) != 3:
        raise DataError(f"{path}: holds {type(result).__name__}, {layout}; pass the tutorial's mnist.pkl.gz")
    splits: list[tuple[np.ndarray, np.ndarray]] = []
    for split_name, pair in zip(("train", "valid", "test"), result, strict=True):
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise DataError(f"{path}: the {split_name} split is not an (x, y) pair, {layout}")
        x, y = pair
        if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
            raise DataError(f"{path}: the {split_name} split holds non-arrays, {layout}")
        if x.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
            raise DataError(
                f"{path}: the {split_name} split has dtypes {x.dtype}/{y.dtype}, expected numeric arrays; "
                "pass the tutorial's mnist.pkl.gz"
            )
        if x.ndim < 1 or y.ndim != 1 or len(x) != len(y):
            raise DataError(
                f"{path}: the {split_name} split has x of shape {x.shape} but y of shape {y.shape}; "
                "x and y must have the same number of rows (y 1-D)"
            )
        splits.append((x, y))
    return tuple(splits)


def _mnist_pickle_split(
    path: Path, split: str, x: np.ndarray, y: np.ndarray, limit: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    if limit is not None:
        x, y = x[:limit], y[:limit]
    if x.size != len(x) * 784:
        raise DataError(f"{path}: {split} images have shape {x.shape}, expected rows of 784 (28x28) pixels")
    if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
        raise DataError(f"{path}: {split} labels are not whole numbers; pass the tutorial's mnist.pkl.gz")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise DataError(f"{path}: {split} labels must be 0..9, found {y.min()}..{y.max()}")
    bad = _first_bad(x)
    if bad is not None:
        raise DataError(f"{path}: {split} images contain {bad[0]} at index {bad[1]}; pass the tutorial's mnist.pkl.gz")
    # Some re-saved copies keep the raw 0..255 bytes; the tutorial's file is already float in [0, 1].
    pixels = x.astype(np.float32) / np.float32(255.0) if x.dtype == np.uint8 else x
    X = _to_tensor(pixels, np.float32).reshape(-1, 1, 28, 28)
    return X, _to_tensor(y, np.int64)


def _load_mnist(*, path: str | Path | None = None, limit: int | None = None) -> Dataset:
    """MNIST from mnist.pkl.gz (train/valid/test) or from its four IDX files (train/t10k)."""
    location = _path_option("mnist", path)
    limit = _limit_option("mnist", limit)
    description = "MNIST: 28x28 grayscale images of handwritten digits 0-9"
    common: dict[str, Any] = {
        "name": "mnist",
        "task": "classification",
        "n_classes": 10,
        "class_names": [str(d) for d in range(10)],
    }
    if location is not None and location.is_file():
        candidates: list[Path] = []
        pickle_file: Path | None = location
    else:
        candidates = _search_dirs(location, "mnist", Path(os.path.expanduser(MNIST_USER_DIR)))
        pickle_file = None
    looked: list[str] = []
    for candidate in candidates:
        found = _find_file(candidate, "mnist.pkl") if candidate.is_dir() else None
        if found is not None:
            pickle_file = found
            break
        files, note = _find_idx_set(candidate)
        if files is not None:
            X, y = _idx_split(files["train_images"], files["train_labels"], limit, 10)
            X_test, y_test = _idx_split(files["test_images"], files["test_labels"], limit, 10)
            return Dataset(
                X=X,
                y=y,
                X_test=X_test,
                y_test=y_test,
                description=f"{description}, train as X/y, t10k as X_test/y_test, read from {candidate}",
                **common,
            )
        looked.append(f"{candidate} ({'no mnist.pkl.gz and ' + note if note != 'no such folder' else note})")
    if pickle_file is None:
        raise DataError(
            f"dataset 'mnist': files not found; looked in {'; '.join(looked)}; put mnist.pkl.gz (from the "
            f"'What is torch.nn really?' tutorial) or the four MNIST IDX .gz files in {MNIST_USER_DIR}, "
            "set TRAINWISE_DATA to a folder holding them, or pass path="
        )
    train, valid, test = load_mnist_pickle(pickle_file)
    X_p, y_p = _mnist_pickle_split(pickle_file, "train", *train, limit)
    X_v, y_v = _mnist_pickle_split(pickle_file, "valid", *valid, limit)
    X_t, y_t = _mnist_pickle_split(pickle_file, "test", *test, limit)
    return Dataset(
        X=X_p,
        y=y_p,
        X_val=X_v,
        y_val=y_v,
        X_test=X_t,
        y_test=y_t,
        description=f"{description}, train/valid/test splits of {pickle_file}",
        **common,
    )


# --------------------------------------------------------------------------------------------------
# Synthetic built-ins


def _load_temperature() -> Dataset:
    """The 11 thermometer readings of "Deep Learning with PyTorch", chapter 5 (t_c = w * t_u + b)."""
    t_c = [0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0]
    t_u = [35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4]
    return Dataset(
        name="temperature",
        X=torch.tensor(t_u, dtype=torch.float32).unsqueeze(1),
        y=torch.tensor(t_c, dtype=torch.float32).unsqueeze(1),
        task="regression",
        feature_names=["t_u"],
        target_names=["t_c"],
        description="Thermometer readings t_u (unknown unit) and t_c (Celsius), DL with PyTorch ch. 5",
    )


def _load_sine(*, n_samples: int = 2000, low: float = -math.pi, high: float = math.pi) -> Dataset:
    """y = sin(x) on `n_samples` evenly spaced points from `low` to `high` (both included)."""
    n = _int_option("sine", "n_samples", n_samples, 2)
    lo, hi = _float_option("sine", "low", low), _float_option("sine", "high", high)
    if not lo < hi:
        raise DataError(f"dataset 'sine': option low={lo} must be less than high={hi}; swap or fix them")
    X = torch.linspace(lo, hi, n, dtype=torch.float32).unsqueeze(1)
    return Dataset(
        name="sine",
        X=X,
        y=torch.sin(X),
        task="regression",
        feature_names=["x"],
        target_names=["sin(x)"],
        description=f"y = sin(x) at {n} evenly spaced points in [{lo:g}, {hi:g}]",
    )


def _load_random_regression(
    *, n_samples: int = 64, n_features: int = 1000, n_outputs: int = 10, seed: int = 0
) -> Dataset:
    """Random inputs and targets, as in "Learning PyTorch with Examples" (a net that memorizes noise)."""
    n = _int_option("random-regression", "n_samples", n_samples, 1)
    d_in = _int_option("random-regression", "n_features", n_features, 1)
    d_out = _int_option("random-regression", "n_outputs", n_outputs, 1)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise DataError(f"dataset 'random-regression': option seed={seed!r} must be an integer")
    try:
        generator = torch.Generator().manual_seed(int(seed))
    except (RuntimeError, ValueError, OverflowError) as exc:  # outside the 64 bits torch's seeds have
        raise DataError(f"dataset 'random-regression': option seed={seed} is invalid ({exc})") from None
    X = torch.randn(n, d_in, generator=generator)
    y = torch.randn(n, d_out, generator=generator)
    return Dataset(
        name="random-regression",
        X=X,
        y=y,
        task="regression",
        feature_names=[f"x{i}" for i in range(d_in)],
        target_names=[f"y{i}" for i in range(d_out)],
        description=f"{n} samples of N(0, 1) noise: {d_in} inputs, {d_out} targets, seed {seed}",
    )


# --------------------------------------------------------------------------------------------------
# CSV files


def _parses_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def is_header(fields: Sequence[str]) -> bool:
    """Is this first CSV row a header? Yes when any of its fields is not a number (no data row has one)."""
    return any(not _parses_as_float(field.strip()) for field in fields)


def _read_csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    """Return the non-blank records of a (possibly gzipped) UTF-8 CSV with their 1-based line numbers."""
    data = _read_file(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: is not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8 CSV") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    try:
        for fields in reader:
            if len(fields) <= 1 and not "".join(fields).strip():
                continue
            rows.append((reader.line_num, [f.strip() for f in fields]))
    except csv.Error as exc:
        raise DataError(f"{path}: row {reader.line_num} is not valid CSV ({exc}); fix that line") from None
    return rows


def _load_csv(
    file: Path,
    *,
    target: str | int | None = None,
    task: TaskOption = "auto",
    header: bool | Literal["auto"] = "auto",
) -> Dataset:
    """A numeric CSV: one row per sample; `target` (name or index, default last) is y, the rest is X.

    Rows in messages are line numbers of the file (the header, if any, is row 1).
    """
    task = _task_option(str(file), task)
    if header not in ("auto", True, False) or (header != "auto" and not isinstance(header, bool)):
        raise DataError(f"{file}: option header={header!r} must be 'auto', True or False")
    rows = _read_csv_rows(file)
    if not rows:
        raise DataError(f"{file}: is empty; a CSV needs one row per sample with numeric columns")
    first_line, first = rows[0]
    has_header = is_header(first) if header == "auto" else bool(header)
    n_cols = len(first)
    for line, fields in rows:
        if len(fields) != n_cols:
            raise DataError(
                f"{file}: row {line} has {len(fields)} fields, expected {n_cols} (like row {first_line}); "
                "fix the row or quote fields that contain commas"
            )
    names = first if has_header else None
    body = rows[1:] if has_header else rows
    if not body:
        raise DataError(f"{file}: has a header row but no data rows; add one row per sample")
    if n_cols < 2:
        raise DataError(f"{file}: has only {n_cols} column; need at least one feature column and a target column")

    def column(j: int) -> str:
        return f"column {names[j]!r}" if names is not None else f"column {j} (counting from 0)"

    values = np.empty((len(body), n_cols), dtype=np.float64)
    for i, (line, fields) in enumerate(body):
        for j, text in enumerate(fields):
            try:
                value = float(text)
            except ValueError:
                if not text:
                    raise DataError(
                        f"{file}: has an empty value at row {line}, {column(j)}; clean or impute it"
                    ) from None
                hint = " (if row 1 is a header, pass header=True)" if line == first_line else ""
                raise DataError(
                    f"{file}: row {line}, {column(j)} holds {text!r}, which is not a number{hint}; "
                    "fix it or encode text columns as numbers"
                ) from None
            if not math.isfinite(value):
                kind = "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
                raise DataError(f"{file}: contains {kind} at row {line}, {column(j)}; clean or impute it")
            values[i, j] = value

    t = _csv_target_index(file, target, names, n_cols)
    feature_cols = [j for j in range(n_cols) if j != t]
    X = torch.from_numpy(values[:, feature_cols].astype(np.float32))
    target_values = values[:, t]
    if names is not None:
        feature_names = [names[j] for j in feature_cols]
        target_name = names[t]
    else:
        feature_names = [f"x{k}" for k in range(len(feature_cols))]
        target_name = "y"

    integral = np.equal(target_values, np.round(target_values))
    distinct = np.unique(target_values)
    chosen: Task
    if task == "auto":
        chosen = "classification" if bool(integral.all()) and len(distinct) <= _MAX_AUTO_CLASSES else "regression"
    else:
        chosen = task
    described = f"{chosen} (inferred; pass task= to override)" if task == "auto" else chosen
    description = (
        f"CSV file {file}: {len(body)} rows, {len(feature_cols)} features, target {target_name!r}, {described}"
    )
    if chosen == "regression":
        return Dataset(
            name=file.name,
            X=X,
            y=torch.from_numpy(target_values.astype(np.float32).reshape(-1, 1)),
            task="regression",
            feature_names=feature_names,
            target_names=[target_name],
            description=description,
        )
    if not integral.all():
        i = int(np.argmin(integral))
        raise DataError(
            f"{file}: task='classification' needs whole-number labels but row {body[i][0]}, {column(t)} "
            f"holds {body[i][1][t]!r}; use task='regression' or fix the labels"
        )
    # Labels become 0..K-1 in sorted order; class_names keep the file's values so reports read naturally.
    labels = np.searchsorted(distinct, target_values).astype(np.int64)
    return Dataset(
        name=file.name,
        X=X,
        y=torch.from_numpy(labels),
        task="classification",
        n_classes=len(distinct),
        feature_names=feature_names,
        target_names=[target_name],
        class_names=[str(int(v)) for v in distinct],
        description=description,
    )


def _csv_target_index(file: Path, target: object, names: list[str] | None, n_cols: int) -> int:
    """Resolve the `target` option (None = last column, a column index, or a header name) to an index."""
    if target is None:
        return n_cols - 1
    if isinstance(target, str):
        if names is not None and target in names:
            if names.count(target) > 1:
                raise DataError(
                    f"{file}: column name {target!r} appears {names.count(target)} times in the header; "
                    "pass target as a column index"
                )
            return names.index(target)
        if target.strip().lstrip("-").isdigit():
            target = int(target)
        elif names is None:
            raise DataError(
                f"{file}: has no header row, so target={target!r} cannot be found by name; pass target as a "
                f"column index (0..{n_cols - 1}) or add a header row"
            )
        else:
            raise DataError(
                f"{file}: no column named {target!r}; columns: {', '.join(repr(n) for n in names)}; "
                "pass one of them or a column index"
            )
    if isinstance(target, bool) or not isinstance(target, int | np.integer):
        raise DataError(f"{file}: option target={target!r} must be a column name or index")
    if not -n_cols <= target < n_cols:
        raise DataError(
            f"{file}: target column index {target} is out of range; the file has {n_cols} columns (0..{n_cols - 1})"
        )
    return int(target) % n_cols


# --------------------------------------------------------------------------------------------------
# NPZ files


def _npz_array(npz: Any, key: str, file: Path) -> np.ndarray:
    try:
        array = npz[key]
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise DataError(
                f"{file}: array {key!r} is an object array (pickled Python objects), which trainwise refuses "
                "to load; save numeric arrays with np.savez"
            ) from None
        raise DataError(f"{file}: array {key!r} cannot be read ({exc}); re-save the file") from None
    except Exception as exc:
        # A damaged zip member can raise zipfile, zlib, OS or EOF errors; all mean "re-save the file".
        raise DataError(
            f"{file}: array {key!r} cannot be read ({type(exc).__name__}: {exc}); re-save the file"
        ) from None
    if not isinstance(array, np.ndarray):
        raise DataError(f"{file}: entry {key!r} is not an array; save arrays with np.savez")
    return array


def _pick_key(keys: list[str], *candidates: str) -> str | None:
    return next((k for k in candidates if k in keys), None)


def _npz_names(npz: Any, keys: list[str], key: str, file: Path) -> list[str]:
    if key not in keys:
        return []
    array = _npz_array(npz, key, file)
    if array.dtype.kind not in "US" or array.ndim != 1:
        raise DataError(f"{file}: {key!r} must be a 1-D array of strings, got {array.dtype} {array.shape}")
    return [str(v) for v in array.tolist()]


def _check_finite(file: Path, key: str, array: np.ndarray) -> None:
    bad = _first_bad(array)
    if bad is not None:
        raise DataError(f"{file}: array {key!r} contains {bad[0]} at index {bad[1]}; clean or impute it")


def _load_npz(file: Path, *, task: TaskOption = "auto") -> Dataset:
    """Arrays X (or x) and y from an .npz archive, with optional X_val/y_val and X_test/y_test splits.

    Optional string arrays feature_names, target_names and class_names are used for reports.
    """
    task = _task_option(str(file), task)
    if not file.is_file():
        _read_file(file)  # raises the right "no such file" / "is a directory" DataError
    try:
        npz = np.load(file, allow_pickle=False)
    except Exception as exc:
        # np.load reports a non-archive as ValueError, OSError or BadZipFile depending on the bytes.
        raise DataError(
            f"{file}: cannot be read as an .npz archive ({type(exc).__name__}: {exc}); "
            "save it with np.savez(path, X=..., y=...)"
        ) from None
    if not hasattr(npz, "files"):
        raise DataError(
            f"{file}: holds a single .npy array, not an .npz archive; save it with np.savez(path, X=..., y=...)"
        )
    with npz:
        keys = list(npz.files)
        x_key, y_key = _pick_key(keys, "X", "x"), _pick_key(keys, "y", "Y")
        if x_key is None or y_key is None:
            missing = " and ".join(k for k, found in (("'X'", x_key), ("'y'", y_key)) if found is None)
            raise DataError(
                f"{file}: has no {missing} array (keys found: {', '.join(repr(k) for k in keys) or 'none'}); "
                "save it with np.savez(path, X=..., y=...)"
            )
        pairs: list[tuple[str, str, str]] = [("", x_key, y_key)]
        for suffix, x_names, y_names in (
            ("_val", ("X_val", "x_val", "X_valid", "x_valid"), ("y_val", "y_valid", "Y_val")),
            ("_test", ("X_test", "x_test"), ("y_test", "Y_test")),
        ):
            xs, ys = _pick_key(keys, *x_names), _pick_key(keys, *y_names)
            if (xs is None) != (ys is None):
                present, absent = (xs, "y" + suffix) if ys is None else (ys, "X" + suffix)
                raise DataError(f"{file}: has {present!r} but no {absent!r}; save both or neither")
            if xs is not None and ys is not None:
                pairs.append((suffix, xs, ys))
        arrays = {suffix: (xk, yk, _npz_array(npz, xk, file), _npz_array(npz, yk, file)) for suffix, xk, yk in pairs}
        feature_names = _npz_names(npz, keys, "feature_names", file)
        target_names = _npz_names(npz, keys, "target_names", file)
        class_names = _npz_names(npz, keys, "class_names", file)

    _, _, X0, y0 = arrays[""]
    is_integer = y0.dtype.kind in "biu"
    column_like = y0.ndim == 1 or (y0.ndim == 2 and y0.shape[1] == 1)
    inferred: Task = "classification" if is_integer and column_like else "regression"
    chosen: Task = inferred if task == "auto" else task
    if chosen == "classification" and not is_integer:
        raise DataError(
            f"{file}: task='classification' needs integer labels but {y_key!r} has dtype {y0.dtype}; "
            "save y with y.astype(np.int64) or use task='regression'"
        )
    if chosen == "classification" and not column_like:
        raise DataError(f"{file}: classification labels {y_key!r} must be 1-D, got shape {y0.shape}")

    tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    max_label = -1
    for suffix, (xk, yk, x, y) in arrays.items():
        for key, array in ((xk, x), (yk, y)):
            if array.dtype.kind not in "biuf":
                raise DataError(f"{file}: array {key!r} has dtype {array.dtype}; trainwise needs numeric arrays")
            if array.ndim == 0:
                raise DataError(f"{file}: array {key!r} is a scalar; save one row per sample")
            _check_finite(file, key, array)
        if len(x) != len(y):
            raise DataError(f"{file}: {xk} has {len(x)} rows but {yk} has {len(y)}; save one target per row")
        if len(x) == 0:
            raise DataError(f"{file}: {xk} has no rows; save at least one sample")
        if x.shape[1:] != X0.shape[1:]:
            raise DataError(f"{file}: {xk} rows have shape {x.shape[1:]} but {x_key} rows have {X0.shape[1:]}")
        X = _to_tensor(x.reshape(len(x), -1) if x.ndim == 1 else x, np.float32)
        if chosen == "classification":
            if y.dtype.kind not in "biu" or y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
                raise DataError(f"{file}: {yk} must hold 1-D integer labels like {y_key}, got {y.dtype} {y.shape}")
            labels = y.reshape(-1)
            if labels.size and int(labels.min()) < 0:
                i = int(np.argmin(labels))
                raise DataError(f"{file}: {yk} has label {labels[i]} at index {i}; labels must be 0..K-1")
            max_label = max(max_label, int(labels.max()))
            Y = _to_tensor(labels, np.int64)
        else:
            Y = _to_tensor(y.reshape(len(y), -1), np.float32)
        tensors[suffix] = (X, Y)

    n_classes: int | None = None
    if chosen == "classification":
        n_classes = max_label + 1
        if class_names:
            if len(class_names) < n_classes:
                raise DataError(
                    f"{file}: class_names has {len(class_names)} names but labels go up to {max_label}; "
                    "give one name per class"
                )
            n_classes = len(class_names)
    X_val, y_val = tensors.get("_val", (None, None))
    X_test, y_test = tensors.get("_test", (None, None))
    return Dataset(
        name=file.name,
        X=tensors[""][0],
        y=tensors[""][1],
        task=chosen,
        n_classes=n_classes,
        X_val=X_val,
        y_val=y_val,
        X_test=X_test,
        y_test=y_test,
        feature_names=feature_names,
        target_names=target_names,
        class_names=class_names,
        description=f"NPZ file {file}: {len(X0)} rows, {chosen}" + (" (inferred)" if task == "auto" else ""),
    )


# --------------------------------------------------------------------------------------------------
# Dispatch

_BUILTIN_LOADERS: dict[str, Callable[..., Dataset]] = {
    "temperature": _load_temperature,
    "sine": _load_sine,
    "random-regression": _load_random_regression,
    "fashion-mnist": _load_fashion_mnist,
    "mnist": _load_mnist,
}
_FILE_SUFFIXES = (".csv", ".csv.gz", ".npz")


def _resolve(name: str) -> tuple[str, Callable[..., Dataset], Path | None]:
    """Return (canonical name, loader, file path or None) for a built-in name or a .csv/.npz path."""
    if not isinstance(name, str | os.PathLike):
        raise DataError(f"dataset name {name!r} must be a string: a built-in name or a path")
    text = os.fspath(name)
    lowered = text.lower()
    if lowered.endswith((".csv", ".csv.gz")):
        return text, _load_csv, Path(text).expanduser()
    if lowered.endswith(".npz"):
        return text, _load_npz, Path(text).expanduser()
    key = lowered.strip().replace("_", "-")
    if key in _BUILTIN_LOADERS:
        return key, _BUILTIN_LOADERS[key], None
    close = difflib.get_close_matches(key, BUILTIN, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    if Path(text).expanduser().is_file():
        problem = f"{text}: unsupported file type{hint}"
    else:
        problem = f"unknown dataset {text!r}{hint}"
    raise DataError(
        f"{problem}; built-in datasets: {', '.join(BUILTIN)}; a path to a .csv (or .csv.gz) or .npz file also works"
    )


def _keyword_options(loader: Callable[..., Dataset]) -> dict[str, inspect.Parameter]:
    parameters = inspect.signature(loader).parameters
    return {k: p for k, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def dataset_options(name: str) -> dict[str, inspect.Parameter]:
    """The keyword options `load_dataset(name, ...)` accepts, with their defaults and annotations."""
    _, loader, _ = _resolve(name)
    return _keyword_options(loader)


def load_dataset(name: str, **options: Any) -> Dataset:
    """Load a built-in dataset (see `BUILTIN`; case-insensitive, `_` or `-`) or a .csv/.csv.gz/.npz file.

    Args:
        name: "temperature", "sine", "random-regression", "fashion-mnist", "mnist", or the path of a .csv,
            .csv.gz or .npz file.
        **options: the source's keyword options (dataset_options(name) lists them): sine takes n_samples, low,
            high; random-regression n_samples, n_features, n_outputs, seed; fashion-mnist and mnist path (a
            folder, or mnist.pkl.gz) and limit (at most that many samples per split); a CSV target (column name
            or index; default the last), task ("auto", "regression", "classification") and header ("auto",
            True, False); an NPZ task.

    Returns:
        The in-memory Dataset, checked: matching lengths, finite values, labels in 0..n_classes-1.

    Raises:
        DataError: an unknown name or option, a bad option value, a missing or unreadable file, or data that
            fails the checks.
    """
    canonical, loader, file = _resolve(name)
    allowed = _keyword_options(loader)
    unknown = [k for k in options if k not in allowed]
    if unknown:
        accepted = f"allowed options: {', '.join(allowed)}" if allowed else "it takes no options"
        raise DataError(
            f"dataset {canonical!r}: unknown option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)}; {accepted}"
        )
    if file is None:
        return _check_dataset(loader(**options))
    if not file.exists():
        raise DataError(f"{file}: no such file; check the path (built-in datasets: {', '.join(BUILTIN)})")
    return _check_dataset(loader(file, **options))
