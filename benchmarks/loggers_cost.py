"""The loggers' cost: W1 (w1-normalized, 5000 full-batch epochs) with each logger against a plain fit, alternated.

    python benchmarks/loggers_cost.py [--repeats 5] [--epochs 5000] [--json out.json]

Goal: each logger at most 1.2x the plain fit's wall time. W1 is the worst case for a logger: an epoch
takes about 0.3 ms, so anything a logger does per epoch weighs as much as the training. Every fit
records its run (run folder, plots, report), so the only difference is the logger; the time is the
whole run_recipe call, train end included (where MLflow sends its last metrics and the artifacts).
The MLflow store (<runs folder>/mlflow/mlflow.db) is created in the warm-up: making its tables is a
once-per-folder cost of seconds, not a per-fit one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from trainwise.callbacks import Callback
from trainwise.loggers import MLflowLogger, TensorBoardLogger, missing_package
from trainwise.recipes import run_recipe

GOAL = 1.2


def loggers() -> dict[str, Callable[[], list[Callback]]]:
    found: dict[str, Callable[[], list[Callback]]] = {"plain": list}
    if missing_package("tensorboard") is None:
        found["TensorBoardLogger()"] = lambda: [TensorBoardLogger()]
    if missing_package("mlflow") is None:
        found["MLflowLogger()"] = lambda: [MLflowLogger(run_name="bench")]
    return found


def seconds(make: Callable[[], list[Callback]], root: Path, epochs: int) -> float:
    start = time.perf_counter()
    run_recipe(
        "w1-normalized",
        [f"train.epochs={epochs}", "train.device=cpu"],
        run_root=root,
        progress=False,
        callbacks=make(),
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    json_path = args.json.resolve() if args.json else None
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # the logger's own store, in the runs folder
    makers = loggers()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "runs"
        os.chdir(folder)  # whatever a logger writes outside the runs folder lands here, not in the repo
        for make in makers.values():  # warm-up: imports, the MLflow store's tables, allocator
            seconds(make, root, args.epochs)
        times: dict[str, list[float]] = {name: [] for name in makers}
        for _ in range(args.repeats):  # alternated, so drifting machine load hits all alike
            for name, make in makers.items():
                times[name].append(seconds(make, root, args.epochs))
        stray = sorted(p.name for p in Path(folder).iterdir() if p.name != "runs")
    plain = statistics.median(times["plain"])
    rows = []
    print(f"W1 (w1-normalized, {args.epochs} epochs), median of {args.repeats}, wall time of run_recipe:")
    for name, values in times.items():
        median = statistics.median(values)
        rows.append({"logger": name, "seconds": median, "ratio": median / plain, "goal": GOAL})
        goal = "" if name == "plain" else f"  (goal <= {GOAL:.1f}x)"
        print(f"  {name:22s} {median:7.3f}s  ratio {median / plain:5.2f}x{goal}")
    print(f"files written outside the runs folder: {', '.join(stray) or 'none'}")
    machine = (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print(f"machine: {machine}")
    if json_path is not None:
        json_path.write_text(json.dumps({"machine": machine, "time": time.ctime(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
