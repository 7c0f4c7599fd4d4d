"""Property-based tests of config handling: whatever TOML a user writes, `trainwise fit` either trains or
ends with exit code 2 and one line "error: <section.key>: <problem>"; never a traceback.

Documents start from quick built-in recipes and are mutated: sections and keys dropped, unknown keys
added, values replaced by random types (strings, negative and huge numbers, NaN-like strings, lists,
nested tables, dates). A document that validates is trained for at most 2 epochs on at most 64 samples.
Plots are not drawn (Figure.savefig writes a 1x1 PNG): drawing is most of a tiny fit's time and is tested
in test_plots.py and test_report.py; everything before it (the figure's data) still runs.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import tempfile
import tomllib
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from trainwise import datasets
from trainwise.cli import main
from trainwise.config import load_config, recipe_text
from trainwise.errors import ConfigError
from trainwise.options import toml_key

# quick recipes: 11 to 2000 samples, models of at most ~100k parameters
BASES = ("w1-normalized", "w1-quadratic", "w3-sequential-sgd", "w3-custom-module", "w4-sgd-sum")
RECIPES = {name: tomllib.loads(recipe_text(name)) for name in BASES}
SECTIONS = ("data", "model", "loss", "optim", "scheduler", "train", "checkpoint", "log")
# keys each section knows (its own fields and what datasets, models, optimizers and schedulers take)
KNOWN_KEYS = {
    "": ("name", "description", "workload"),
    "data": ("name", "normalize", "poly_features", "one_hot", "val_split", "stratify", "shuffle", "limit",
             "fallback", "test", "n_samples", "low", "high", "n_features", "n_outputs", "seed", "path",
             "target", "task", "header"),
    "model": ("name", "outputs", "init", "hidden", "activation", "dropout", "batchnorm", "degree", "bias",
              "max_repeats", "seed", "channels", "in_channels", "image_size", "d_in", "d_out"),
    "loss": ("name", "reduction", "delta", "beta", "weight", "ignore_index", "label_smoothing", "pos_weight"),
    "optim": ("name", "lr", "momentum", "weight_decay", "nesterov", "betas", "eps", "alpha", "amsgrad",
              "dampening", "centered", "foreach"),
    "scheduler": ("name", "interval", "monitor", "step_size", "gamma", "T_max", "eta_min", "milestones",
                  "factor", "patience", "mode", "max_lr", "total_steps", "warmup_steps", "min_lr"),
    # not train.compile: a valid `compile = true` spends seconds in torch.compile (its check is a strict bool)
    "train": ("epochs", "batch_size", "seed", "device", "metrics", "clip_grad_norm", "early_stopping", "doctor",
              "precision", "max_steps", "accumulate", "ema", "val_every", "val_every_steps"),
    "checkpoint": ("enabled", "every_epochs", "every_steps", "every_seconds", "keep_last", "keep_best",
                   "monitor", "mode"),
    "log": ("tensorboard", "mlflow", "mlflow_experiment", "mlflow_tracking_uri"),
}  # fmt: skip
# strings that mean something somewhere in a config, so mutations reach past "unknown name"
WORDS = (
    "auto", "full", "none", "standard", "minmax", "mean", "sum", "cpu", "cuda", "cuda:1", "mps", "meta",
    "sgd", "adam", "rmsprop", "mse", "cross_entropy", "bce_with_logits", "huber", "step", "cosine",
    "plateau", "warmup_cosine", "balanced", "accuracy", "top3_accuracy", "r2", "loss", "val_loss", "epoch",
    "warn", "stop", "repair",
    "quiet", "off", "min", "max", "relu", "tanh", "linear", "mlp", "cnn", "logistic", "polynomial",
    "dynamic_net", "temperature", "sine", "random-regression", "mnist", "fashion-mnist", "data.csv",
    "x.npz", "trainwise.models:TwoLayerNet", "os:system", "builtins:eval", "nan", "NaN", "inf", "-inf",
    "1e999", "-1", "0", "", " ", "true", "regression", "classification", "../../etc/passwd", "<script>",
)  # fmt: skip
TRICKY_KEYS = ("options", "model_config", "model_extra", "model_fields", "__class__", "__dict__", "__init__",
               "name", "lr", "epochs", "", " ", "a.b", "ÿ", "in_features", "out_features", "optimizer", "params",
               "size_average", "reduce", "verbose")  # fmt: skip
SIZE_KEYS = {"n_samples", "n_features", "n_outputs", "hidden", "outputs", "channels", "image_size", "d_in",
             "d_out", "degree", "max_repeats", "in_channels", "total_steps", "T_max", "step_size"}  # fmt: skip
MAX_SIZE = 1000  # a valid config with a size option above this is validated, not trained

big_ints = st.sampled_from([2**31, 2**63 - 1, -(2**63), 2**64, 10**30, -(10**30)])
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-300, 1e308, -1e-3, 0.5, 1.0, 2.5]),
)
scalars = st.one_of(
    st.integers(-3, 100),
    st.integers(),
    big_ints,
    floats,
    st.booleans(),
    st.sampled_from(WORDS),
    st.text(max_size=12),
    st.datetimes(),
    st.dates(),
    st.times(),
)
keys = st.one_of(st.sampled_from(TRICKY_KEYS), st.text(min_size=1, max_size=10))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=3)),
    max_leaves=6,
)
# the edges of each type: where ranges and conversions (to float32, to a 64-bit seed) break
extremes = st.one_of(
    big_ints,
    st.sampled_from([0, -1, 1, 1e308, -1e308, 3.5e38, 5e-324, 1e-320, -0.0, 0.999999, 1e-9]),
    st.sampled_from(WORDS),
)
# values a user would plausibly write: most keep the config valid, so that fit runs
plausible = st.one_of(
    st.sampled_from(WORDS),
    st.integers(1, 8),
    st.floats(0.01, 0.9),
    st.booleans(),
    st.lists(st.integers(1, 8), max_size=3),
)


def _floats(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


# values a user would plausibly write for each key: most keep the config valid, so that fit runs
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "data.name": st.sampled_from(["temperature", "sine", "random-regression"]),
    "data.normalize": st.sampled_from(["none", "standard", "minmax", 0.1, 2.0]),
    "data.poly_features": st.integers(0, 3),
    "data.val_split": st.sampled_from([0.0, 0.2, 0.5]),
    "data.limit": st.integers(1, 64),
    "data.fallback": st.sampled_from(["sine", "temperature"]),
    "data.n_samples": st.integers(2, 64),
    "data.low": _floats(-3.0, 0.0),
    "data.high": _floats(0.1, 3.0),
    "data.n_features": st.integers(1, 8),
    "data.n_outputs": st.integers(1, 4),
    "model.name": st.sampled_from(["linear", "mlp", "polynomial", "logistic", "dynamic_net", "cnn"]),
    "model.outputs": st.integers(1, 4),
    "model.hidden": st.one_of(st.integers(1, 8), st.lists(st.integers(1, 8), max_size=2)),
    "model.activation": st.sampled_from(["relu", "tanh", "gelu"]),
    "model.dropout": _floats(0.0, 0.5),
    "model.degree": st.integers(1, 4),
    "model.max_repeats": st.integers(0, 3),
    "loss.name": st.sampled_from(["mse", "l1", "huber", "cross_entropy", "bce_with_logits"]),
    "loss.reduction": st.sampled_from(["mean", "sum"]),
    "loss.delta": _floats(0.1, 2.0),
    "optim.name": st.sampled_from(["sgd", "adam", "rmsprop", "adamw"]),
    "optim.lr": st.one_of(_floats(1e-5, 0.1), st.just("auto")),
    "optim.momentum": _floats(0.0, 0.99),
    "optim.weight_decay": _floats(0.0, 0.1),
    "scheduler.name": st.sampled_from(["step", "steplr", "cosine", "exponential", "plateau", "onecycle"]),
    "scheduler.interval": st.sampled_from(["epoch", "step"]),
    "scheduler.step_size": st.integers(1, 5),
    "scheduler.gamma": _floats(0.1, 0.9),
    "train.epochs": st.integers(1, 3),
    "train.batch_size": st.one_of(st.integers(1, 16), st.just("full")),
    "train.device": st.sampled_from(["auto", "cpu"]),
    "train.metrics": st.sampled_from([[], ["mae"], ["r2", "rmse"], ["accuracy"]]),
    "train.clip_grad_norm": _floats(0.1, 5.0),
    "train.early_stopping": st.fixed_dictionaries({"patience": st.integers(1, 3)}),
    "train.doctor": st.sampled_from(["warn", "stop", "repair", "quiet", "off"]),
    "train.precision": st.sampled_from(["32", "bf16", "fp16"]),
    "checkpoint.every_seconds": _floats(0.01, 5.0),
    "checkpoint.mode": st.sampled_from(["auto", "min", "max"]),
    "checkpoint.monitor": st.sampled_from(["loss", "val_loss"]),
    "log.mlflow_experiment": st.text(max_size=8),
}


FLAGS = ("one_hot", "stratify", "shuffle", "test", "bias", "batchnorm", "nesterov", "enabled", "keep_best")


def _plausible(key: str, current: Any) -> st.SearchStrategy[Any]:
    if key in PLAUSIBLE:
        return PLAUSIBLE[key]
    if isinstance(current, bool) or key.rpartition(".")[2] in FLAGS:
        return st.booleans()
    if isinstance(current, int) or key.rpartition(".")[2] in ("seed", "every_epochs", "every_steps", "keep_last"):
        return st.integers(0, 8)
    return plausible


@st.composite
def documents(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A recipe mutated 1-4 times, and the dotted keys the mutations touched."""
    doc: dict[str, Any] = copy.deepcopy(RECIPES[draw(st.sampled_from(BASES))])
    touched: list[str] = []
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 2, 3]))):
        tables = [k for k, v in doc.items() if isinstance(v, dict)]
        op = draw(st.sampled_from(["plausible"] * 6 + ["extreme"] * 2 + ["known", "replace", "add", "drop"]))
        if op == "drop":
            section = draw(st.sampled_from(["", *tables]))
            holder = doc if section == "" else doc[section]
            if holder:
                key = draw(st.sampled_from(sorted(holder)))
                del holder[key]
                touched.append(f"{section}.{toml_key(key)}".removeprefix("."))
        elif op == "add":
            section = draw(st.sampled_from(["", *tables]))
            key = draw(keys)
            (doc if section == "" else doc[section])[key] = draw(values)
            touched.append(f"{section}.{toml_key(key)}".removeprefix("."))
        elif op in ("known", "plausible", "extreme"):
            section = draw(st.sampled_from(list(KNOWN_KEYS)[1 if op == "plausible" else 0 :]))
            key = draw(st.sampled_from(KNOWN_KEYS[section]))
            new = {"name": "step", "step_size": 2} if section == "scheduler" and op == "plausible" else {}
            holder = doc if section == "" else doc.setdefault(section, new)
            if not isinstance(holder, dict):
                continue
            strategies = {"known": values, "extreme": extremes}
            strategy = strategies[op] if op in strategies else _plausible(f"{section}.{key}", holder.get(key))
            holder[key] = draw(strategy)
            touched.append(f"{section}.{toml_key(key)}".removeprefix("."))
        else:  # replace a value (or a whole section) where one is
            section = draw(st.sampled_from(["", *tables]))
            holder = doc if section == "" else doc[section]
            if holder:
                key = draw(st.sampled_from(sorted(holder)))
                holder[key] = draw(values)
                touched.append(f"{section}.{toml_key(key)}".removeprefix("."))
    return doc, touched


def _paths(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{toml_key(key)}" if prefix else toml_key(key)
            yield path
            yield from _paths(value, path)


@contextmanager
def _cheap_plots() -> Iterator[None]:
    """Figure.savefig writes a 1x1 PNG instead of drawing the figure."""
    from matplotlib.figure import Figure

    png = bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6300010000"
        "0500010d0a2db40000000049454e44ae426082"
    )

    def savefig(self: Figure, fname: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(fname, str | os.PathLike):
            Path(fname).write_bytes(png)
        else:
            fname.write(png)

    original = Figure.savefig
    Figure.savefig = savefig  # type: ignore[method-assign]
    try:
        yield
    finally:
        Figure.savefig = original  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder to run in: MLflow writes ./mlruns and a config may name relative files. No image datasets:
    TRAINWISE_DATA points at an empty folder and the system Fashion-MNIST folder is hidden."""
    folder = tmp_path_factory.mktemp("properties")
    (folder / "data").mkdir()
    saved = (os.getcwd(), os.environ.get("TRAINWISE_DATA"), datasets.FASHION_MNIST_SYSTEM_DIR)
    os.chdir(folder)
    os.environ["TRAINWISE_DATA"] = str(folder / "data")
    datasets.FASHION_MNIST_SYSTEM_DIR = folder / "no-fashion-mnist"
    try:
        with _cheap_plots():
            yield folder
    finally:
        os.chdir(saved[0])
        if saved[1] is None:
            os.environ.pop("TRAINWISE_DATA", None)
        else:
            os.environ["TRAINWISE_DATA"] = saved[1]
        datasets.FASHION_MNIST_SYSTEM_DIR = saved[2]


def _run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str]:
    """main(args) in-process; warnings go to stderr as they would in a terminal."""
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = _show_on_stderr
        code = main(args)
    return code, capsys.readouterr().err


def _show_on_stderr(
    message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    import sys

    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


# a Python warning as the terminal shows it: "FILE:LINE: CategoryWarning: message", then the source line
WARNING = re.compile(r"^\S+:\d+: \w*Warning: .*\n(  .*\n)?", re.MULTILINE)


def _one_error_line(err: str) -> str:
    """The one error line; a library's warnings (torch's "Initializing zero-element tensors is a no-op")
    may come before it."""
    assert "Traceback" not in err, err
    lines = WARNING.sub("", err).splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0].removeprefix("error: ")


def _names_a_key(line: str, doc: dict[str, Any], touched: list[str]) -> bool:
    """The line starts with a dotted key of the document or one a mutation touched (a section alone
    only if a mutation touched it, or it is missing)."""
    candidates = {*touched, *_paths(doc), *(s for s in SECTIONS if s not in doc)} - {s for s in SECTIONS if s in doc}
    candidates |= {toml_key(key) for key, value in doc.items() if not isinstance(value, dict)}  # top-level keys
    if any(re.match(re.escape(key) + r"($|[:.\[ ,])", line) for key in candidates if key):
        return True
    # a key the mutated section now needs ("scheduler.name: required key is missing")
    sections = {key.split(".")[0] for key in touched}
    return any(re.match(re.escape(section) + r"\.\w+: ", line) for section in sections)


def _too_big(doc: dict[str, Any]) -> bool:
    def big(value: Any) -> bool:
        if isinstance(value, list):
            return any(big(v) for v in value)
        return isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > MAX_SIZE

    return any(
        key in SIZE_KEYS and big(value)
        for section in ("data", "model", "scheduler")
        if isinstance(doc.get(section), dict)
        for key, value in doc[section].items()
    )


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(documents())
def test_any_config_trains_or_names_the_key(
    workdir: Path, capsys: pytest.CaptureFixture[str], case: tuple[dict[str, Any], list[str]]
) -> None:
    doc, touched = case
    folder = Path(tempfile.mkdtemp(dir=workdir))
    try:
        _fit_document(capsys, folder, doc, touched)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # 500 run records (checkpoints included) would add up


def _fit_document(capsys: pytest.CaptureFixture[str], folder: Path, doc: dict[str, Any], touched: list[str]) -> None:
    path = folder / "config.toml"
    path.write_text(tomli_w.dumps(doc))
    runs = ["--quiet", "--runs-dir", str(folder / "runs")]
    try:
        config = load_config(path)
    except ConfigError:
        code, err = _run(capsys, ["fit", str(path), *runs])
        event("invalid config: exit 2")
        assert code == 2, err
        line = _one_error_line(err)
        assert _names_a_key(line, doc, touched), (line, touched)
        return
    if _too_big(doc):
        event("valid, too large to train")
        return  # valid, but a model or dataset too large to train here
    small = [f"train.epochs={min(config.train.epochs, 2)}", f"data.limit={min(config.data.limit or 64, 64)}"]
    code, err = _run(capsys, ["fit", str(path), *runs, *(f"--set={item}" for item in small)])
    event(f"valid config: exit {code}")
    assert "Traceback" not in err, err
    if code == 0:
        return
    # a problem found after validation (the data, the model's shape, the device): one line, exit 2
    assert code == 2, err
    line = _one_error_line(err)
    assert _names_a_key(line, doc, [*touched, "data.name", "model.name", "loss.name"]), (line, touched)


# ----------------------------------------------------------------------------- text that is not a config

recipe_texts = st.sampled_from([recipe_text(name) for name in BASES])


@st.composite
def damaged_texts(draw: st.DrawFn) -> str:
    """A recipe's text with a slice cut out and random text put in its place."""
    text = draw(recipe_texts)
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, min(len(text), start + 40)))
    return text[:start] + draw(st.text(max_size=12)) + text[end:]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(max_size=200), damaged_texts()))
def test_text_that_is_not_toml_names_the_file(workdir: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        doc = None
    folder = Path(tempfile.mkdtemp(dir=workdir))
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8", newline="")
    if doc is not None:
        try:
            load_config(path)
        except ConfigError:
            pass
        else:
            return  # a damaged recipe that still validates (a cut in a comment or the description)
    code, err = _run(capsys, ["check" if doc is None else "fit", str(path), *(["--quiet"] if doc else [])])
    assert code == 2, err
    line = _one_error_line(err)
    if doc is None:
        assert line.startswith(f"{path}: not valid TOML ("), line
    else:  # a damaged recipe: the key the damage broke, or one it left missing
        assert _names_a_key(line, doc, list(SECTIONS)), line


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=64))
def test_bytes_that_are_not_utf8_name_the_file(workdir: Path, capsys: pytest.CaptureFixture[str], data: bytes) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        data = b"\xff" + data
    path = Path(tempfile.mkdtemp(dir=workdir)) / "config.toml"
    path.write_bytes(data)
    code, err = _run(capsys, ["fit", str(path), "--quiet"])
    assert code == 2
    assert _one_error_line(err) == f"{path}: not a TOML file (it is not UTF-8 text)"


# ----------------------------------------------------------------------------- found here, fixed in callbacks.py


def test_a_plateau_scheduler_watching_what_is_not_logged_names_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides = ["scheduler.name=plateau", "scheduler.monitor=val_loss", "train.epochs=2"]  # no validation data
    code, err = _run(capsys, ["fit", "w1-normalized", "--quiet", "--runs-dir", str(tmp_path),
                              *(f"--set={item}" for item in overrides)])  # fmt: skip
    assert code == 2 and _one_error_line(err).startswith("scheduler.monitor: 'val_loss' is not logged"), err


# ----------------------------------------------------------------------------- what the properties found

FOUND = [  # (recipe, overrides, the error line: exact, or its start when it ends with torch's own words)
    ("w1-normalized", ["train.seed=18446744073709551616"],
     "train.seed: must be less than 18446744073709551616 (got 18446744073709551616)"),
    ("w3-sequential-sgd", ["data.seed=18446744073709551616"],
     "data.seed: dataset 'random-regression': option seed=18446744073709551616 is invalid ("),
    # the message names the default low first; the key the config gave is high
    ("w4-sgd-sum", ["data.high=-10"],
     "data.high: dataset 'sine': option low=-3.141592653589793 must be less than high=-10.0; swap or fix them"),
    ("w1-normalized", ["optim.lr=1e308"], "optim.lr: must be at most 3.4e38 (float32's largest value) (got 1e+308)"),
    ("w1-normalized", ["optim.weight_decay=1e308"],
     "optim.weight_decay: 1e+308 is too large; torch's optimizers step in float32, whose largest value is 3.4e38"),
    ("w1-normalized", ["optim.weight_decay=18446744073709551616"], None),  # an int past 64 bits: given as a float
    ("w1-normalized", ["optim.nesterov=true"],
     "optim.nesterov: SGD rejected nesterov=True: Nesterov momentum requires a momentum and zero dampening"),
    ("w1-normalized", ["loss.name=cross_entropy", "loss.weight=auto"],
     "loss.weight: loss 'cross_entropy' rejected weight='auto' (TypeError: "),
    ("w1-normalized", ["train.device=meta"],
     "train.device: the meta device holds no values to train; use 'auto', 'cpu', 'cuda' or 'mps' (got 'meta')"),
    ("w1-normalized", ["data.val_split=0.999"],
     "data.val_split: 0.999 of 11 samples leaves an empty train or validation set"),
    ("w1-normalized", ["train.early_stopping.patience=1", "train.early_stopping.monitor=nope"],
     "train.early_stopping.monitor: 'nope' is not logged; "),
    ("w1-normalized", ["model.outputs=2"],
     "model.outputs: the model gives 2 outputs per sample but temperature has 1 target per sample, and loss 'mse' "
     "compares them one to one; remove model.outputs"),
    ("w3-custom-module", ["data.n_outputs=2"],
     "model.name: the model gives 10 outputs per sample but random-regression has 2 targets per sample, and loss "
     "'mse' compares them one to one; build it for that many outputs"),
    ("w3-custom-module", ["model.hidden=0"],
     "model.hidden: the model's parameter 'linear1.weight' has shape (0, 1000), no entries; every layer size must "
     "be at least 1"),
    ("w3-custom-module", ["model.d_in=1"],
     "model.name: trainwise.models:TwoLayerNet cannot take the data's samples of shape (1000,) (RuntimeError: "),
    # on torch 2.11 these two escaped as a 4-line TypeError and an exit-1 RuntimeError: the type is checked
    # against TwoLayerNet's signature, and any exception while building the model names the [model] keys
    ("w3-custom-module", ["model.d_out=auto"], "model.d_out: must be a valid integer (got 'auto')"),
    ("w3-custom-module", ["model.d_in=-1"],
     "model.d_in, model.hidden, model.d_out: trainwise.models:TwoLayerNet rejected its options ['d_in', 'd_out', "
     "'hidden'] (RuntimeError: "),
    ("w3-custom-module", ["model.d_in=1.5"], "model.d_in: must be a valid integer (got 1.5)"),
    ("w3-sequential-sgd", ["model.hidden=[-1]"], "model.hidden: mlp rejected its options ['hidden'] (RuntimeError: "),
    ("w1-quadratic", ["data.name=random-regression"],
     "model.name: model 'polynomial' fits one input to one output, but the data has 1000 inputs and 10 outputs; "),
    ("w1-normalized", ["scheduler.name=step", "scheduler.step_size=0"],
     "scheduler.step_size: scheduler 'step' fails with step_size=0 (ZeroDivisionError: integer modulo by zero)"),
    # gamma alone: without it (step_size is required) the schedule runs
    ("w1-normalized", ["scheduler.name=step", "scheduler.step_size=1", "scheduler.gamma=1e308"],
     "scheduler.gamma: scheduler 'step' fails with gamma=1e+308 (RuntimeError: "),
    ("w1-normalized", ["scheduler.name=plateau", "scheduler.factor=2.0"],
     "scheduler.factor: scheduler 'plateau' fails with factor=2.0 (ValueError: "),
]  # fmt: skip


@pytest.mark.parametrize(("recipe", "overrides", "line"), FOUND)
def test_what_the_properties_found_is_one_line_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], recipe: str, overrides: list[str], line: str | None
) -> None:
    small = ["train.epochs=2", "data.limit=64"]
    code, err = _run(capsys, ["fit", recipe, "--quiet", "--runs-dir", str(tmp_path),
                              *(f"--set={item}" for item in [*small, *overrides])])  # fmt: skip
    if line is None:
        assert (code, err) == (0, "")
        return
    assert code == 2, err
    error = _one_error_line(err)
    assert error == line if not line.endswith(("(", ": ", "; ")) else error.startswith(line), error


def test_a_key_that_print_would_break_is_quoted_and_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = {**RECIPES["w1-normalized"], "data": {"name": "temperature", "x\x85y": 1, "a.b": 2}}
    path = tmp_path / "config.toml"
    path.write_text(tomli_w.dumps(doc))
    code, err = _run(capsys, ["fit", str(path), "--quiet"])
    assert code == 2
    assert _one_error_line(err).startswith("data.\"x\\u0085y\": unknown key; dataset 'temperature' takes no options")


def test_a_lone_carriage_return_is_not_read_as_a_line_break(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(recipe_text("w1-normalized").replace('workload = "W1"\n\n', 'workload = "W1"\r\r').encode())
    code, err = _run(capsys, ["fit", str(path), "--quiet"])
    assert code == 2
    assert _one_error_line(err).startswith(f"{path}: not valid TOML (")
