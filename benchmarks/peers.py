"""trainwise side by side with a hand-written loop, the tutorial's DataLoader loop, Lightning and Keras.

    python benchmarks/peers.py [--repeats 5] [--quick] [--json PATH] [--no-peers] [--extras]
    make bench

Every variant trains the same model from the same initial weights on the same (already loaded) data
with the recipe's hyperparameters, and only training is timed. The variants run alternately
(A B C A B C ...) in one process after a warm-up round, and the table shows medians and ratios to the
hand-written loop. Workloads (the seed recipes):

    W1  w1-normalized       5000 full-batch epochs of a 2-parameter linear fit (per-step overhead)
    W3  w3-sequential-sgd   500 full-batch steps of a 1000-100-10 ReLU net, summed loss
    W4  w4-sgd-sum          2000 full-batch steps of a cubic fit to 2000 points, summed loss
    W5  w5-corrected        one epoch of Fashion-MNIST at batch 64, MLP 784-512-512-10, SGD
    W5/512                  the same at batch 512, against the FLOP floor (forward + backward FLOPs
                            divided by the float32 GEMM rate torch.mm reaches in this run)

The peak RSS of training on W5 is measured per variant in a fresh subprocess (the process's high-water
mark is reset after the data is loaded, so it is the peak while training). Lightning and Keras (torch
backend) run when installed (`pip install -e '.[bench]'`); a missing one is skipped with a note.
--extras also times trainwise with compile=True and precision="bf16" on W5 (the compile time is the
warm-up round's, in the JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import gc
import io
import json
import logging
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwise import datasets, recipes
from trainwise.config import Config, load_config
from trainwise.loop import fit

HERE = Path(__file__).resolve().parent
HAND = "hand-written"
TUTORIAL = "tutorial DataLoader"
TW_OFF = "trainwise (doctor off)"
TW = "trainwise"
TW_COMPILE = "trainwise compile=True"
TW_BF16 = "trainwise precision=bf16"
LIGHTNING = "Lightning"
KERAS = "Keras (torch)"


# ----------------------------------------------------------------------------- workloads


@dataclass
class Workload:
    key: str
    recipe: str
    overrides: list[str]
    label: str
    config: Config = field(init=False)
    X: torch.Tensor = field(init=False)  # as the recipe loads it (trainwise scales it itself)
    Xn: torch.Tensor = field(init=False)  # scaled as the recipe says, for the other loops
    y: torch.Tensor = field(init=False)
    model: nn.Module = field(init=False)  # the initial weights every variant starts from
    dataset: datasets.Dataset = field(init=False)

    def load(self) -> Workload:
        self.config = load_config(self.recipe, self.overrides)
        prepared = recipes.build(self.config)  # seeded: the recipe's data and initial model
        self.X, self.y, self.model = prepared.dataset.X, prepared.dataset.y, prepared.model
        self.dataset = prepared.dataset
        normalize = self.config.data.normalize
        if isinstance(normalize, float):
            self.Xn = self.X * normalize
        elif normalize == "none":
            self.Xn = self.X
        else:
            raise SystemExit(f"{self.recipe}: normalize {normalize!r} is not set up in this benchmark")
        return self

    @property
    def epochs(self) -> int:
        return self.config.train.epochs

    @property
    def batch_size(self) -> int | None:
        return recipes.batch_size(self.config)

    @property
    def lr(self) -> float:
        return float(self.config.optim.lr)

    @property
    def seed(self) -> int:
        return self.config.train.seed

    def loss_fn(self) -> nn.Module:
        return recipes.config_loss(self.config, self.dataset)  # type: ignore[return-value]

    def fresh_model(self) -> nn.Module:
        return copy.deepcopy(self.model)

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        assert self.config.optim.name == "sgd" and not self.config.optim.options, "the loops below write plain SGD"
        return torch.optim.SGD(model.parameters(), lr=self.lr)


def workloads(quick: bool) -> dict[str, Workload]:
    if quick:  # a smoke run: the same code paths, a tenth of the work
        return {
            "W1": Workload("W1", "w1-normalized", ["train.epochs=500"], "W1 (500 full-batch epochs)"),
            "W3": Workload("W3", "w3-sequential-sgd", ["train.epochs=50"], "W3 (50 full-batch steps)"),
            "W4": Workload("W4", "w4-sgd-sum", ["train.epochs=200"], "W4 (200 full-batch steps)"),
            "W5": Workload("W5", "w5-corrected", ["train.epochs=1", "data.limit=6400"], "W5 (6400 samples, b64)"),
            "W5/512": Workload(
                "W5/512",
                "w5-corrected",
                ["train.epochs=1", "train.batch_size=512", "data.limit=12800"],
                "W5 (12800 samples, b512)",
            ),
        }
    return {
        "W1": Workload("W1", "w1-normalized", [], "W1 (5000 full-batch epochs)"),
        "W3": Workload("W3", "w3-sequential-sgd", [], "W3 (500 full-batch steps)"),
        "W4": Workload("W4", "w4-sgd-sum", [], "W4 (2000 full-batch steps)"),
        "W5": Workload("W5", "w5-corrected", ["train.epochs=1"], "W5 (1 epoch, batch 64)"),
        "W5/512": Workload("W5/512", "w5-corrected", ["train.epochs=1", "train.batch_size=512"], "W5 (1 epoch, b512)"),
    }


# ----------------------------------------------------------------------------- the variants
# Each takes a workload and returns the final epoch's training loss (to show they all compute the
# same thing); the caller times the call.


def hand_written(w: Workload) -> float:
    """What a competent PyTorch user writes: full batch, or a randperm per epoch sliced into batches."""
    model, loss_fn = w.fresh_model(), w.loss_fn()
    optimizer = w.optimizer(model)
    X, y = w.Xn, w.y
    torch.manual_seed(w.seed)
    model.train()
    if w.batch_size is None:
        for _ in range(w.epochs):
            loss = loss_fn(model(X), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return loss.item()
    n, size = X.shape[0], w.batch_size
    for _ in range(w.epochs):
        total = torch.zeros(())
        for idx in torch.randperm(n).split(size):
            xb, yb = X[idx], y[idx]
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.detach() * xb.shape[0]
    return total.item() / n


def tutorial(w: Workload) -> float:
    """The PyTorch quickstart's train loop: a DataLoader over a TensorDataset, shuffle=True, and the
    loss printed every 100 batches (here read and kept)."""
    model, loss_fn = w.fresh_model(), w.loss_fn()
    optimizer = w.optimizer(model)
    torch.manual_seed(w.seed)
    loader = DataLoader(TensorDataset(w.Xn, w.y), batch_size=w.batch_size or len(w.y), shuffle=True)
    shown = []
    model.train()
    for _ in range(w.epochs):
        for batch, (xb, yb) in enumerate(loader):
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if batch % 100 == 0:
                shown.append(loss.item())
    return loss.item()


def trainwise_fit(doctor: str, **extra: Any) -> Callable[[Workload], float]:
    """fit() as recipes.run_config calls it for the recipe, without run records or a progress display."""

    def run(w: Workload) -> float:
        options = {**recipes.training_options(w.config), "doctor": doctor, **extra}
        result = fit(w.fresh_model(), (w.X, w.y), loss=w.loss_fn(), progress=False, **options)
        if result.status == "interrupted":  # fit stops at a SIGINT/SIGTERM, without an error
            raise Interrupted(f"{w.key}: trainwise fit {extra or ''} stopped by a signal after {result.epochs} epochs")
        return result.history["loss"][-1]

    return run


class FullBatch:
    """An iterable of one batch: the whole data set, as it is."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor) -> None:
        self.batch = (X, y)

    def __iter__(self) -> Any:
        return iter([self.batch])

    def __len__(self) -> int:
        return 1


def lightning_fit(w: Workload) -> float:
    """Lightning at its leanest: no logger, checkpointing, progress bar, model summary or sanity check.
    Full batch: the batch as a one-element list (no per-sample collation); minibatches: the usual
    DataLoader over a TensorDataset with shuffle=True."""
    import lightning as L

    class Module(L.LightningModule):
        def __init__(self, model: nn.Module, loss_fn: nn.Module, lr: float) -> None:
            super().__init__()
            self.model, self.loss_fn, self.lr = model, loss_fn, lr
            self.last: torch.Tensor | None = None

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            xb, yb = batch
            loss = self.loss_fn(self.model(xb), yb)
            self.last = loss.detach()
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=self.lr)

    torch.manual_seed(w.seed)
    module = Module(w.fresh_model(), w.loss_fn(), w.lr)
    if w.batch_size is None:
        data: Any = FullBatch(w.Xn, w.y)
    else:
        data = DataLoader(TensorDataset(w.Xn, w.y), batch_size=w.batch_size, shuffle=True)
    trainer = L.Trainer(
        max_epochs=w.epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, train_dataloaders=data)
    assert module.last is not None
    return module.last.item()


def keras_model(w: Workload) -> Any:
    """The workload's torch model as a Keras model with the same initial weights."""
    import keras
    from keras import layers, ops

    source = w.model
    if w.key == "W4":  # y = b + w1 x + w2 x^2 + w3 x^3

        class Polynomial(layers.Layer):
            def __init__(self, degree: int) -> None:
                super().__init__()
                self.powers = list(range(1, degree + 1))
                self.w = self.add_weight(shape=(degree,), initializer="zeros")
                self.b = self.add_weight(shape=(), initializer="zeros")

            def call(self, x: Any) -> Any:
                features = ops.power(ops.reshape(x, (-1, 1)), ops.convert_to_tensor(self.powers, dtype=x.dtype))
                return ops.expand_dims(ops.matmul(features, self.w) + self.b, 1)

        poly = Polynomial(int(source.degree))  # type: ignore[arg-type]
        model = keras.Sequential([keras.Input(tuple(w.X.shape[1:])), poly])
        poly.set_weights([source.weight.detach().numpy(), source.bias.detach().numpy()])  # type: ignore[operator]
        return model
    linears = [m for m in source.modules() if isinstance(m, nn.Linear)]
    stack: list[Any] = [keras.Input(tuple(w.X.shape[1:])), layers.Flatten()]
    for i, linear in enumerate(linears):
        last = i == len(linears) - 1
        stack.append(layers.Dense(linear.out_features, activation=None if last else "relu"))
    model = keras.Sequential(stack)
    dense = [layer for layer in model.layers if isinstance(layer, layers.Dense)]
    for layer, linear in zip(dense, linears, strict=True):
        layer.set_weights([linear.weight.detach().T.numpy(), linear.bias.detach().numpy()])
    return model


def keras_fit(w: Workload) -> float:
    """Keras 3 on the torch backend: compile and fit with the recipe's loss, optimizer and metrics."""
    import keras
    from keras import ops

    keras.utils.set_random_seed(w.seed)
    model = keras_model(w)
    name, reduction = w.config.loss.name, w.config.loss.reduction
    if name == "cross_entropy":
        loss: Any = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    elif name == "mse" and reduction == "mean":
        loss = keras.losses.MeanSquaredError()
    elif name == "mse":  # the summed squared error over samples and outputs

        class SquaredError(keras.losses.Loss):
            def call(self, y_true: Any, y_pred: Any) -> Any:
                return ops.sum(ops.square(y_true - y_pred), axis=-1)

        loss = SquaredError(reduction="sum")
    else:
        raise SystemExit(f"{w.recipe}: no Keras loss for {name}")
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=w.lr), loss=loss, metrics=w.config.train.metrics)
    X, y = w.Xn.numpy(), w.y.numpy()
    history = model.fit(X, y, batch_size=w.batch_size or len(y), epochs=w.epochs, shuffle=True, verbose=0)
    return float(history.history["loss"][-1])


def installed(package: str) -> str | None:
    """None when `package` imports, else why not."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            __import__(package)
    except Exception as exc:  # ImportError, or a broken install
        return f"{package} is not installed ({type(exc).__name__}: {exc}); pip install -e '.[bench]'"
    return None


def variants_for(key: str, peers: bool, extras: bool, notes: list[str]) -> dict[str, Callable[[Workload], float]]:
    chosen: dict[str, Callable[[Workload], float]] = {HAND: hand_written}
    if key == "W5":
        chosen[TUTORIAL] = tutorial
    chosen[TW_OFF] = trainwise_fit("off")
    chosen[TW] = trainwise_fit("warn")
    if extras and key in ("W5", "W5/512"):
        chosen[TW_COMPILE] = trainwise_fit("warn", compile=True)
        chosen[TW_BF16] = trainwise_fit("warn", precision="bf16")
    if peers and key != "W5/512":
        for name, package, run in ((LIGHTNING, "lightning", lightning_fit), (KERAS, "keras", keras_fit)):
            problem = installed(package)
            if problem is None:
                chosen[name] = run
            elif problem not in notes:
                notes.append(problem)
    return chosen


# ----------------------------------------------------------------------------- measuring


def quiet_peers() -> None:
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", module="pytorch_lightning")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*to_numpy.*")
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)


class Interrupted(Exception):
    """A run that a signal cut short: it is run again."""


SIGNALS: list[str] = []  # stray SIGINT/SIGTERM this run received (and ignored), for the record


def note_signals() -> None:
    """A stray SIGINT or SIGTERM (this shared machine has sent them) is noted and the run it cut short
    is repeated; two within a second (Ctrl-C twice) stop the benchmark."""

    def note(signum: int, frame: Any) -> None:
        now = time.monotonic()
        if SIGNALS and now - float(SIGNALS[-1].rpartition(" ")[2]) < 1.0:
            raise KeyboardInterrupt
        SIGNALS.append(f"{signal.Signals(signum).name} at {now}")
        print(f"note: {signal.Signals(signum).name} received; the run it cut short is repeated", file=sys.__stderr__)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, note)


def timed(run: Callable[[Workload], float], w: Workload) -> tuple[float, float]:
    for attempt in range(3):
        gc.collect()
        # Keras and Lightning talk; the doctor prints its findings (the same every round)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            start = time.perf_counter()
            try:
                loss = run(w)
            except Interrupted:
                if attempt == 2:
                    raise
                continue
            seconds = time.perf_counter() - start
        return seconds, loss
    raise AssertionError("unreachable")


def gemm_rate(n: int = 2048, repeats: int = 7) -> float:
    """Peak float32 GEMM rate (FLOP/s): the median of `repeats` torch.mm of two n x n matrices."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times)


def mlp_flops(w: Workload) -> float:
    """Forward plus backward FLOPs of one epoch of the MLP: 2 per multiply-add forward, twice that back."""
    linears = [m for m in w.model.modules() if isinstance(m, nn.Linear)]
    forward = sum(2 * m.in_features * m.out_features for m in linears)
    return 3 * forward * w.X.shape[0] * w.epochs


def rss_child(key: str, variant: str, quick: bool) -> None:
    """In a fresh process: load the workload, reset the RSS high-water mark, train, print the peak."""
    quiet_peers()
    w = workloads(quick)[key].load()
    run = variants_for(key, peers=True, extras=False, notes=[])[variant]
    gc.collect()
    before = _status_kb("VmRSS")
    reset = _reset_peak()
    with contextlib.redirect_stdout(io.StringIO()):
        run(w)
    peak = _status_kb("VmHWM") if reset else None
    whole = _maxrss_kb()
    print(json.dumps({"before_mb": before / 1024, "train_peak_mb": peak / 1024 if peak else None,
                      "process_peak_mb": whole / 1024}))  # fmt: skip


def _status_kb(field_name: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    """Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _maxrss_kb() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def measure_rss(key: str, variants: list[str], repeats: int, quick: bool) -> dict[str, dict[str, Any]]:
    """Peak RSS while training, per variant, each in fresh subprocesses (alternating, median of repeats)."""
    samples: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for _ in range(repeats):
        for variant in variants:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--rss-child", key, variant]
            cmd += ["--quick"] if quick else []
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if out.returncode != 0:
                print(f"  rss {variant}: failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                continue
            samples[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
    result = {}
    for variant, runs in samples.items():
        if not runs:
            continue
        peak_key = "train_peak_mb" if runs[0]["train_peak_mb"] is not None else "process_peak_mb"
        result[variant] = {
            "peak_mb": statistics.median(r[peak_key] for r in runs),
            "before_mb": statistics.median(r["before_mb"] for r in runs),
            "measure": "peak RSS while training" if peak_key == "train_peak_mb" else "peak RSS of the process",
            "runs": runs,
        }
    return result


# ----------------------------------------------------------------------------- goals and output


def goal_rows(results: dict[str, dict[str, Any]], floor: dict[str, Any] | None, rss: dict[str, Any]) -> list[dict]:
    """Each goal of the performance issue with its measured value and whether it is met."""
    goals = []

    def median(key: str, variant: str) -> float | None:
        entry = results.get(key, {}).get(variant)
        return entry["median_s"] if entry else None

    for key in ("W1", "W3", "W4", "W5"):
        hand, tw = median(key, HAND), median(key, TW)
        if hand and tw:
            goals.append({"goal": f"{key}: trainwise (doctor on) <= 1.10x hand-written", "value": tw / hand,
                          "shown": f"{tw / hand:.3f}x", "met": tw / hand <= 1.10})  # fmt: skip
    tut, tw5 = median("W5", TUTORIAL), median("W5", TW)
    if tut and tw5:
        goals.append({"goal": "W5: trainwise < tutorial DataLoader loop", "value": tw5 / tut,
                      "shown": f"{tw5 / tut:.3f}x", "met": tw5 < tut})  # fmt: skip
    for key, least in (("W1", None), ("W4", None), ("W5", 1.0)):
        tw = median(key, TW)
        for peer, factor in ((LIGHTNING, 4.0), (KERAS, 10.0)):
            other = median(key, peer)
            if tw is None or other is None:
                continue
            need = least or factor
            text = f"{key}: {peer} / trainwise >= {need:g}" + (" (not slower)" if least else "")
            goals.append({"goal": text, "value": other / tw, "shown": f"{other / tw:.2f}x", "met": other / tw >= need})
    if floor is not None:
        goals.append({"goal": "W5/512: trainwise <= 1.3x the FLOP floor", "value": floor["ratio"],
                      "shown": f"{floor['ratio']:.3f}x", "met": floor["ratio"] <= 1.3})  # fmt: skip
    if HAND in rss and TW in rss:
        ratio = rss[TW]["peak_mb"] / rss[HAND]["peak_mb"]
        goals.append({"goal": "W5: peak RSS of trainwise <= 1.2x hand-written", "value": ratio,
                      "shown": f"{ratio:.3f}x", "met": ratio <= 1.2})  # fmt: skip
    return goals


def row_goal(key: str, variant: str) -> str:
    if variant == TW and key in ("W1", "W3", "W4", "W5"):
        return "<= 1.10" + (", < tutorial" if key == "W5" else "")
    if variant == LIGHTNING and key in ("W1", "W4"):
        return ">= 4x trainwise"
    if variant == KERAS and key in ("W1", "W4"):
        return ">= 10x trainwise"
    if variant in (LIGHTNING, KERAS) and key == "W5":
        return ">= trainwise"
    if variant == TW and key == "W5/512":
        return "<= 1.3x floor"
    return ""


def row_met(key: str, variant: str, results: dict[str, dict[str, Any]], floor: dict[str, Any] | None) -> str:
    runs = results[key]
    tw, hand = runs.get(TW, {}).get("median_s"), runs.get(HAND, {}).get("median_s")
    mine = runs[variant]["median_s"]
    if variant == TW and key == "W5/512" and floor is not None:
        return "yes" if floor["ratio"] <= 1.3 else "no"
    if variant == TW and hand:
        ok = mine / hand <= 1.10
        if key == "W5" and TUTORIAL in runs:
            ok = ok and mine < runs[TUTORIAL]["median_s"]
        return "yes" if ok else "no"
    if variant in (LIGHTNING, KERAS) and tw and key in ("W1", "W4", "W5"):
        need = 1.0 if key == "W5" else 4.0 if variant == LIGHTNING else 10.0
        return "yes" if mine / tw >= need else "no"
    return ""


def markdown_table(results: dict[str, dict[str, Any]], labels: dict[str, str], floor: dict[str, Any] | None) -> str:
    lines = [
        "| workload | variant | median s | ms per step | ratio to hand-written | final loss | goal | met? |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for key, runs in results.items():
        hand = runs.get(HAND, {}).get("median_s")
        for variant, entry in runs.items():
            ratio = f"{entry['median_s'] / hand:.3f}" if hand else ""
            lines.append(
                f"| {labels[key]} | {variant} | {entry['median_s']:.3f} | {1000 * entry['per_step_s']:.3f} | {ratio} "
                f"| {entry['final_loss']:.6g} | {row_goal(key, variant)} | {row_met(key, variant, results, floor)} |"
            )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for package in ("lightning", "keras"):
        with contextlib.suppress(Exception):
            versions[package] = __import__(package).__version__
    return {
        "cpu": cpu,
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "versions": versions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds after one warm-up round")
    parser.add_argument("--quick", action="store_true", help="a smoke run: a tenth of the work, 1 round")
    parser.add_argument("--json", type=Path, help="default: benchmarks/results/peers-<date>.json")
    parser.add_argument("--workloads", default="W1,W3,W4,W5,W5/512")
    parser.add_argument("--no-peers", action="store_true", help="skip Lightning and Keras")
    parser.add_argument("--extras", action="store_true", help="also trainwise compile=True and precision=bf16 (W5)")
    parser.add_argument("--rss-repeats", type=int, default=3, help="fresh processes per variant (0: skip)")
    parser.add_argument("--rss-child", nargs=2, metavar=("WORKLOAD", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        key, variant = args.rss_child
        rss_child(key, variant, quick=args.quick)
        return
    quiet_peers()
    note_signals()
    repeats = 1 if args.quick else args.repeats
    notes: list[str] = []
    load_before = os.getloadavg()
    started = datetime.datetime.now()
    chosen = workloads(args.quick)
    keys = [k.strip() for k in args.workloads.split(",") if k.strip()]
    unknown = [k for k in keys if k not in chosen]
    if unknown:
        parser.error(f"--workloads: unknown {', '.join(unknown)}; choose from {', '.join(chosen)}")
    results: dict[str, dict[str, Any]] = {}
    labels: dict[str, str] = {}
    load_by_round: dict[str, list[float]] = {}
    floor = None
    for key in keys:
        w = chosen[key].load()
        labels[key] = w.label
        variants = variants_for(key, not args.no_peers, args.extras, notes)
        times: dict[str, list[float]] = {name: [] for name in variants}
        losses: dict[str, float] = {}
        rate_samples, loads, warmup = [], [], {}
        print(f"{w.label}: {', '.join(variants)}", file=sys.stderr, flush=True)
        for round_ in range(repeats + 1):  # round 0 warms up (imports, allocator, first-call costs)
            loads.append(os.getloadavg()[0])
            if key == "W5/512":
                rate_samples.append(gemm_rate())
            for name, run in variants.items():
                seconds, loss = timed(run, w)
                losses[name] = loss
                if round_:
                    times[name].append(seconds)
                else:
                    warmup[name] = seconds  # with compile=True: the compilation
        steps = w.epochs * (1 if w.batch_size is None else math.ceil(w.X.shape[0] / w.batch_size))
        results[key] = {
            name: {
                "median_s": statistics.median(ts),
                "times_s": ts,
                "per_step_s": statistics.median(ts) / steps,
                "final_loss": losses[name],
                "warmup_s": warmup[name],
            }
            for name, ts in times.items()
        }
        load_by_round[key] = loads
        for name, entry in results[key].items():
            print(f"  {name:28s} {entry['median_s']:8.3f} s  loss {entry['final_loss']:.6g}", file=sys.stderr)
        if key == "W5/512" and TW in results[key]:
            rate = statistics.median(rate_samples)
            flops = mlp_flops(w)
            seconds = results[key][TW]["median_s"]
            floor = {"gemm_gflops": rate / 1e9, "flops": flops, "floor_s": flops / rate, "trainwise_s": seconds,
                     "ratio": seconds / (flops / rate),
                     "hand_ratio": results[key][HAND]["median_s"] / (flops / rate)}  # fmt: skip
    rss: dict[str, Any] = {}
    if "W5" in keys and args.rss_repeats > 0:
        print("W5 peak RSS (fresh processes)", file=sys.stderr, flush=True)
        rss_variants = [v for v in results["W5"] if v not in (TW_COMPILE, TW_BF16)]
        rss = measure_rss("W5", rss_variants, 1 if args.quick else args.rss_repeats, args.quick)
    load_after = os.getloadavg()
    goals = goal_rows(results, floor, rss)
    table = markdown_table(results, labels, floor)
    info = machine()
    print()
    print(f"{started:%Y-%m-%d %H:%M}, {info['cpu']} ({info['arch']}), {info['cores']} cores, "
          f"torch {torch.__version__} ({info['torch_threads']} threads); medians of {repeats} alternating rounds; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")  # fmt: skip
    print()
    print(table)
    if floor is not None:
        print()
        print(f"W5/512 FLOP floor: {floor['flops'] / 1e9:.1f} GFLOP at {floor['gemm_gflops']:.1f} GFLOP/s "
              f"(torch.mm 2048x2048) = {floor['floor_s']:.3f} s; trainwise {floor['trainwise_s']:.3f} s = "
              f"{floor['ratio']:.3f}x the floor (hand-written {floor['hand_ratio']:.3f}x)")  # fmt: skip
    if rss:
        print()
        print("| W5 variant | peak RSS while training (MB) | before training (MB) | ratio to hand-written |")
        print("|---|---:|---:|---:|")
        hand_peak = rss.get(HAND, {}).get("peak_mb")
        for variant, entry in rss.items():
            ratio = f"{entry['peak_mb'] / hand_peak:.3f}" if hand_peak else ""
            print(f"| {variant} | {entry['peak_mb']:.0f} | {entry['before_mb']:.0f} | {ratio} |")
    print()
    if args.quick:
        print("(--quick: a smoke run on a tenth of the work, where fixed costs weigh more; the goals are for the")
        print("full workloads)")
    print("| goal | measured | met? |")
    print("|---|---:|---|")
    for goal in goals:
        print(f"| {goal['goal']} | {goal['shown']} | {'yes' if goal['met'] else 'no'} |")
    for note in notes:
        print(f"note: {note}")
    for received in SIGNALS:
        print(f"note: {received} (monotonic clock) arrived from outside; the run it cut short was repeated")
    path = args.json or HERE / "results" / f"peers-{started:%Y%m%d-%H%M%S}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "date": started.isoformat(timespec="seconds"),
                "machine": info,
                "quick": args.quick,
                "repeats": repeats,
                "load_average": {"before": load_before, "after": load_after, "rounds": load_by_round},
                "results": results,
                "flop_floor": floor,
                "rss": rss,
                "goals": goals,
                "notes": notes,
                "signals": SIGNALS,
            },
            indent=1,
        )
    )
    print(f"\njson: {path}")


if __name__ == "__main__":
    main()
