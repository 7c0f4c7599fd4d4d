"""The doctor's cost: fit with doctor="warn" against doctor="off" on W1 and W5, alternated.

    python benchmarks/doctor_cost.py [--repeats 5] [--json out.json]

Goals (issue: the training doctor): at most 15% slower on W1 (5000 full-batch epochs, overhead
bound) and at most 5% on W5 (10 epochs of Fashion-MNIST at batch 64, SGD). --quick runs W5 for one
epoch only, where the doctor's fixed costs (whole-dataset checks) weigh ten times more.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from trainwise.recipes import run_recipe

WORKLOADS = {
    "W1 (w1-normalized, 5000 epochs)": ("w1-normalized", [], 0.15),
    "W5 (w5-corrected, 10 epochs, batch 64)": ("w5-corrected", [], 0.05),
}


def seconds(recipe: str, overrides: list[str], doctor: str) -> float:
    result = run_recipe(recipe, [*overrides, f"train.doctor={doctor}"], progress=False)
    return result.fit.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true", help="W5 for one epoch")
    args = parser.parse_args()
    if args.quick:
        WORKLOADS["W5 (w5-corrected, 1 epoch, batch 64)"] = ("w5-corrected", ["train.epochs=1"], 0.05)
        del WORKLOADS["W5 (w5-corrected, 10 epochs, batch 64)"]
    rows = []
    for name, (recipe, overrides, goal) in WORKLOADS.items():
        seconds(recipe, overrides, "warn")  # warm-up: imports, data loading, allocator
        times: dict[str, list[float]] = {"off": [], "warn": []}
        for _ in range(args.repeats):  # alternate, so drifting machine load hits both alike
            for mode in ("off", "warn"):
                times[mode].append(seconds(recipe, overrides, mode))
        off, on = statistics.median(times["off"]), statistics.median(times["warn"])
        rows.append({"workload": name, "off_s": off, "warn_s": on, "ratio": on / off, "goal": 1 + goal})
        print(f"{name:40s} off {off:8.3f}s  warn {on:8.3f}s  ratio {on / off:5.3f}  (goal <= {1 + goal:.2f})")
    machine = (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print(f"machine: {machine}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "time": time.ctime(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
