"""trainwise on a GPU against the loops a user writes by hand and the floor the GPU allows.

    python benchmarks/gpu.py [--repeats 3] [--json PATH] [--smoke]

W5 (Fashion-MNIST MLP 784-512-512-10, SGD lr 1e-3, one epoch of 60,000 images) at batch 64 and 512:

    tutorial loop       a DataLoader over CPU tensors, .to(device) per batch, loss.item() every 100 batches
    hand-written fast   the data on the GPU, a randperm per epoch, index batches, the loss summed on the device
    CUDA graph (floor)  the hand-written step (gather, forward, loss, backward, SGD step, loss sum) captured
                        whole in one CUDA graph after warm-up steps on a side stream, replayed per full batch
    trainwise           fit() with doctor off, on (its default), compile=True, precision="bf16", and
                        cuda_graph=True where this trainwise has it
    Lightning           accelerator="gpu" over the tutorial's DataLoader, when lightning is installed

Every variant starts from the same initial weights; only training is timed (the device synchronised
before and after); the variants alternate, after a warm-up round, and the table shows medians and ratios
to the floor and to the hand-written fast loop. Then: host synchronisations over 400 steps of W5 at batch
64 (torch.cuda.set_sync_debug_mode("warn") counts them) with the doctor off and on; and w5-tuned (Adam
2e-3, cosine, batch 128, 10 epochs) trained until the test accuracy reaches 88%, by the hand-written
loop and by fit (the time to get there, the test evaluations after each epoch not counted).

Goals (issue: on a GPU): trainwise with the doctor on at most 1.3x the floor at batch 64 and 512; zero
host synchronisations per unsampled step, at most 1 per 50 steps over an epoch; compile and bf16 never
slower than float32 eager at batch 512; w5-tuned to 88% in under 2 s.

--smoke runs the same code on a few hundred images on whatever device there is (the CPU, where the
CUDA-only parts are left out with a note), once, without compile: a check of this script before a GPU's
minutes go on it (tests/test_benchmarks.py runs it).
It needs torch and the project (`pip install -e . --no-deps` and its small dependencies), and
Fashion-MNIST's IDX files (TRAINWISE_DATA or /usr/share/datasets/fashion-mnist).
"""

from __future__ import annotations

import argparse
import copy
import inspect
import json
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwise import Callback, fit
from trainwise.datasets import load_dataset
from trainwise.models import build_model

TARGET_ACCURACY = 0.88
SYNC_STEPS = 400


@dataclass
class Workload:
    """W5's data on the device (and on the CPU, for the tutorial loop) and its initial model."""

    label: str
    batch_size: int
    X_cpu: torch.Tensor
    y_cpu: torch.Tensor
    X: torch.Tensor
    y: torch.Tensor
    model: nn.Module
    device: torch.device
    lr: float = 1e-3

    def fresh_model(self) -> nn.Module:
        return copy.deepcopy(self.model).to(self.device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def initial_model(outputs: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return build_model("mlp", 784, outputs, hidden=[512, 512])


# ----------------------------------------------------------------------------- the variants
# Each takes the workload and returns the epoch's mean training loss (they all compute the same thing).


def tutorial(w: Workload) -> float:
    model, loss_fn = w.fresh_model(), nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=w.lr)
    loader = DataLoader(TensorDataset(w.X_cpu, w.y_cpu), batch_size=w.batch_size, shuffle=True)
    shown = []
    for batch, (xb, yb) in enumerate(loader):
        xb, yb = xb.to(w.device), yb.to(w.device)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if batch % 100 == 0:
            shown.append(loss.item())
    return statistics.mean(shown)  # the losses it printed


def eager_step(
    model: nn.Module, loss_fn: nn.Module, optimizer: torch.optim.Optimizer, w: Workload, idx: torch.Tensor
) -> torch.Tensor:
    """The hand-written step on the batch of rows `idx` of the device-resident data; the batch's summed loss."""
    loss = loss_fn(model(w.X[idx]), w.y[idx])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach() * len(idx)


def hand_written(w: Workload) -> float:
    model, loss_fn = w.fresh_model(), nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=w.lr)
    total = torch.zeros((), device=w.device)
    for idx in torch.randperm(len(w.y), device=w.device).split(w.batch_size):
        total += eager_step(model, loss_fn, optimizer, w, idx)
    return total.item() / len(w.y)


def cuda_graph_floor(w: Workload) -> float:
    """The hand-written step captured whole: the batch gathered from the device-resident data by a static
    index buffer, forward, loss, backward, SGD step and the loss sum, one graph replay per full batch (the
    last partial batch runs eagerly). The three warm-up steps are real steps on the first batches."""
    model, loss_fn = w.fresh_model(), nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=w.lr)
    order = torch.randperm(len(w.y), device=w.device)
    full = len(w.y) // w.batch_size
    static_index = order[: w.batch_size].clone()
    total = torch.zeros((), device=w.device)

    def step() -> None:
        xb, yb = w.X.index_select(0, static_index), w.y.index_select(0, static_index)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        total.add_(loss.detach() * w.batch_size)

    side = torch.cuda.Stream(w.device)
    side.wait_stream(torch.cuda.current_stream(w.device))
    warmup = 3
    with torch.cuda.stream(side):
        for batch in range(warmup):
            static_index.copy_(order[batch * w.batch_size : (batch + 1) * w.batch_size])
            optimizer.zero_grad(set_to_none=True)
            step()
    torch.cuda.current_stream(w.device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    # no .grad before the capture: backward then assigns fresh gradients (from the graph's memory pool) at
    # every replay instead of adding to old ones, so the step needs no zero_grad (torch's recipe for
    # whole-network capture)
    optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        step()
    # capturing recorded the kernels without running them: the captured batch is the next one, replayed
    for batch in range(warmup, full):
        static_index.copy_(order[batch * w.batch_size : (batch + 1) * w.batch_size])
        graph.replay()
    rest = order[full * w.batch_size :]
    if len(rest):
        total += eager_step(model, loss_fn, optimizer, w, rest)
    return total.item() / len(w.y)


def trainwise_fit(**options: Any) -> Callable[[Workload], float]:
    def run(w: Workload) -> float:
        result = fit(
            w.fresh_model(), (w.X, w.y), loss="cross_entropy", optimizer="sgd", lr=w.lr, epochs=1,
            batch_size=w.batch_size, device=str(w.device), progress=False, **options,
        )  # fmt: skip
        return float(result.history["loss"][-1])

    return run


def lightning_fit(w: Workload) -> float:
    import lightning as L

    class Module(L.LightningModule):
        def __init__(self, model: nn.Module) -> None:
            super().__init__()
            self.model, self.loss_fn = model, nn.CrossEntropyLoss()
            self.last = torch.zeros(())

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            loss = self.loss_fn(self.model(batch[0]), batch[1])
            self.last = loss.detach()
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=w.lr)

    module = Module(copy.deepcopy(w.model))
    loader = DataLoader(TensorDataset(w.X_cpu, w.y_cpu), batch_size=w.batch_size, shuffle=True)
    trainer = L.Trainer(
        max_epochs=1, accelerator="gpu" if w.device.type == "cuda" else "cpu", devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=loader)
    return float(module.last)


def variants(device: torch.device, notes: list[str], smoke: bool) -> dict[str, Callable[[Workload], float]]:
    chosen: dict[str, Callable[[Workload], float]] = {
        "tutorial loop": tutorial,
        "hand-written fast loop": hand_written,
    }
    if device.type == "cuda":
        chosen["CUDA graph by hand (floor)"] = cuda_graph_floor
    else:
        notes.append("CUDA graph floor: needs CUDA (left out)")
    chosen["trainwise, doctor off"] = trainwise_fit(doctor="off")
    chosen["trainwise, doctor on"] = trainwise_fit()
    if smoke:  # compiling takes longer than the rest of a smoke run
        notes.append("trainwise, compile=True: left out of --smoke")
    else:
        chosen["trainwise, compile=True"] = trainwise_fit(compile=True)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        notes.append("precision=bf16: this GPU has no bf16 (left out)")
    else:
        chosen["trainwise, precision=bf16"] = trainwise_fit(precision="bf16")
    if "cuda_graph" in inspect.signature(fit).parameters:
        chosen["trainwise, cuda_graph=True"] = trainwise_fit(cuda_graph=True)
    else:
        notes.append("trainwise, cuda_graph=True: fit has no cuda_graph option in this version (left out)")
    try:
        import lightning  # noqa: F401

        chosen["Lightning"] = lightning_fit
    except ImportError:
        notes.append("Lightning: not installed (left out)")
    return chosen


def timed(run: Callable[[Workload], float], w: Workload) -> tuple[float, float]:
    synchronize(w.device)
    start = time.perf_counter()
    loss = run(w)
    synchronize(w.device)
    return time.perf_counter() - start, loss


def speed_table(workloads: list[Workload], chosen: dict[str, Callable[[Workload], float]], repeats: int) -> dict:
    results: dict[str, dict[str, Any]] = {}
    for w in workloads:
        times: dict[str, list[float]] = {name: [] for name in chosen}
        losses: dict[str, float] = {}
        for round_ in range(repeats + 1):  # round 0 warms up (kernels, allocator, compile)
            for name, run in chosen.items():
                seconds, losses[name] = timed(run, w)
                if round_:
                    times[name].append(seconds)
        medians = {name: statistics.median(values) for name, values in times.items()}
        floor = medians.get("CUDA graph by hand (floor)")
        hand = medians["hand-written fast loop"]
        results[w.label] = {
            name: {
                "seconds": medians[name],
                "x_floor": medians[name] / floor if floor else None,
                "x_hand": medians[name] / hand,
                "loss": losses[name],
            }
            for name in chosen
        }
    return results


# ----------------------------------------------------------------------------- host synchronisations


def count_syncs(w: Workload, doctor: str) -> int | None:
    """Host synchronisations over SYNC_STEPS steps of fit at batch 64 (None off CUDA, where there are none
    to count)."""
    if w.device.type != "cuda":
        return None
    samples = min(SYNC_STEPS * w.batch_size, len(w.y))
    first_steps = replace(w, X=w.X[:samples], y=w.y[:samples])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            trainwise_fit(doctor=doctor)(first_steps)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum("synchroniz" in str(warning.message) for warning in caught)


# ----------------------------------------------------------------------------- w5-tuned to 88%


def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    was_training = model.training
    model.eval()
    with torch.no_grad():
        correct = int((model(X).argmax(1) == y).sum())
    model.train(was_training)
    return correct / len(y)


def hand_to_target(w: Workload, X_test: torch.Tensor, y_test: torch.Tensor, epochs: int) -> dict[str, Any]:
    """w5-tuned by hand: Adam 2e-3, cosine over the epochs, batch 128; timed until the target accuracy."""
    model, loss_fn = w.fresh_model(), nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    seconds, reached = 0.0, None
    for epoch in range(epochs):
        synchronize(w.device)
        start = time.perf_counter()
        for idx in torch.randperm(len(w.y), device=w.device).split(128):
            eager_step(model, loss_fn, optimizer, w, idx)
        schedule.step()
        synchronize(w.device)
        seconds += time.perf_counter() - start
        if accuracy(model, X_test, y_test) >= TARGET_ACCURACY:
            reached = epoch + 1
            break
    return {"seconds": seconds, "epochs": reached}


class StopAtAccuracy(Callback):
    """Stops fit once the test accuracy reaches the target; the time of its own evaluations is kept apart."""

    def __init__(self, X_test: torch.Tensor, y_test: torch.Tensor, device: torch.device) -> None:
        self.X_test, self.y_test, self.device = X_test, y_test, device
        self.evaluating = 0.0
        self.reached: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        synchronize(self.device)
        start = time.perf_counter()
        if accuracy(self.state.model, self.X_test, self.y_test) >= TARGET_ACCURACY:
            self.reached = epoch + 1
            self.state.stop_training = True
        self.evaluating += time.perf_counter() - start


def trainwise_to_target(w: Workload, X_test: torch.Tensor, y_test: torch.Tensor, epochs: int) -> dict[str, Any]:
    stopper = StopAtAccuracy(X_test, y_test, w.device)
    synchronize(w.device)
    start = time.perf_counter()
    fit(
        w.fresh_model(), (w.X, w.y), loss="cross_entropy", optimizer="adam", lr=2e-3, epochs=epochs,
        batch_size=128, scheduler="cosine", device=str(w.device), progress=False, callbacks=[stopper],
    )  # fmt: skip
    synchronize(w.device)
    return {"seconds": time.perf_counter() - start - stopper.evaluating, "epochs": stopper.reached}


# ----------------------------------------------------------------------------- main


def load(device: torch.device, limit: int | None) -> tuple[torch.Tensor, ...]:
    """The training images flattened, on the CPU; the test split on the device."""
    data = load_dataset("fashion-mnist", limit=limit)
    assert data.X_test is not None and data.y_test is not None
    return data.X.flatten(1), data.y, data.X_test.flatten(1).to(device), data.y_test.to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--smoke", action="store_true", help="a few hundred images, once, on any device")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    limit, repeats, epochs = (640, 1, 1) if args.smoke else (None, args.repeats, 10)
    notes: list[str] = []
    X_cpu, y_cpu, X_test, y_test = load(device, limit)
    model = initial_model()
    workloads = [
        Workload(f"W5, batch {size}", size, X_cpu, y_cpu, X_cpu.to(device), y_cpu.to(device), model, device)
        for size in (64, 512)
    ]
    chosen = variants(device, notes, args.smoke)
    table = speed_table(workloads, chosen, repeats)
    for label, rows in table.items():
        print(f"\n{label} ({len(y_cpu)} images, medians of {repeats})")
        for name, row in rows.items():
            floor = f"{row['x_floor']:6.2f}x floor" if row["x_floor"] else " " * 13
            print(f"  {name:32s} {row['seconds']:8.3f} s  {floor}  {row['x_hand']:6.2f}x hand  loss {row['loss']:.4f}")
    syncs = {doctor: count_syncs(workloads[0], doctor) for doctor in ("off", "warn")}
    if syncs["off"] is None:
        notes.append("host synchronisations: counted on CUDA only (left out)")
    else:
        steps = min(SYNC_STEPS, len(y_cpu) // 64)
        print(f"\nhost synchronisations over {steps} steps: doctor off {syncs['off']}, doctor on {syncs['warn']}")
    tuned = workloads[0]
    to_target = {
        "hand-written fast loop": hand_to_target(tuned, X_test, y_test, epochs),
        "trainwise": trainwise_to_target(tuned, X_test, y_test, epochs),
    }
    print(f"\nw5-tuned to {TARGET_ACCURACY:.0%} test accuracy (goal: trainwise under 2 s)")
    for name, row in to_target.items():
        reached = f"after {row['epochs']} epochs" if row["epochs"] else f"not reached in {epochs} epochs"
        print(f"  {name:32s} {row['seconds']:8.3f} s  {reached}")
    for note in notes:
        print(f"note: {note}")
    if args.json:
        machine = {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "smoke": args.smoke,
        }
        report = {"machine": machine, "speed": table, "syncs": syncs, "to_target": to_target, "notes": notes}
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
