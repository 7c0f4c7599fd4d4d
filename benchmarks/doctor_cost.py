"""The doctor's cost: fit with doctor="warn" against doctor="off" on W1 and W5, and the plain scripts of
examples/ run unmodified under trainwise.autowatch() against the same scripts alone; alternated.

    python benchmarks/doctor_cost.py [--repeats 5] [--json out.json] [--quick | --scripts-only | --instructions]

Goals (issue: the training doctor): at most 15% slower on W1 (5000 full-batch epochs, overhead
bound) and at most 5% on W5 (10 epochs of Fashion-MNIST at batch 64, SGD); a script watched by
autowatch (`trainwise doctor script.py`) at most 1.15x the script's own time. --quick runs W5 for one
epoch only, where the doctor's fixed costs (whole-dataset checks) weigh ten times more.

--instructions counts, instead of timing, the instructions each script executes alone and under autowatch
(valgrind's callgrind, one thread; W1 and W4 in a few minutes, W5 over half an hour): the same on a busy
machine as on a quiet one, where timings of these second-long scripts move by 5 to 10% from run to run.
Needs valgrind.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import re
import runpy
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from trainwise import autowatch
from trainwise.recipes import run_recipe

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = {
    "W1 script (w1_temperature.py --fixed, 5000 epochs)": ("w1_temperature.py", ["--fixed"]),
    "W4 script (w4_polynomial_sin.py --lr 1e-3, 2000 steps)": ("w4_polynomial_sin.py", ["--lr", "1e-3"]),
    "W5 script (w5_fashion_mlp.py --outputs 10, 1 epoch)": ("w5_fashion_mlp.py", ["--epochs", "1", "--outputs", "10"]),
}

WORKLOADS: dict[str, tuple[str, list[str], float]] = {
    "W1 (w1-normalized, 5000 epochs)": ("w1-normalized", [], 0.15),
    "W5 (w5-corrected, 10 epochs, batch 64)": ("w5-corrected", [], 0.05),
}


def seconds(recipe: str, overrides: list[str], doctor: str) -> float:
    result = run_recipe(recipe, [*overrides, f"train.doctor={doctor}"], progress=False)
    return result.fit.seconds


def script_seconds(script: str, args: list[str], watched: bool) -> float:
    """One run of an example script in this process, as `python script args` (or `trainwise doctor`) runs it."""
    sys.argv = [script, *args]
    sys.path.insert(0, str(EXAMPLES))
    session = autowatch(mode="quiet") if watched else contextlib.nullcontext()
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), session:
        runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    elapsed = time.perf_counter() - start
    sys.path.remove(str(EXAMPLES))
    return elapsed


def count_instructions(script: str, args: list[str], watched: bool) -> subprocess.Popen[str]:
    """Start counting one run of a script (after a warm-up run in the same process) under callgrind."""
    out = Path(tempfile.mkdtemp()) / "callgrind.out"
    command = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
        sys.executable, __file__, "--counted-run", str(int(watched)), script, *args,
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip


def counted(process: subprocess.Popen[str]) -> int:
    output, _ = process.communicate()
    match = re.search(r"Collected : (\d+)", output)
    if match is None:
        raise SystemExit(f"callgrind printed no count:\n{output[-2000:]}")
    return int(match.group(1))


def counted_run(watched: bool, script: str, args: list[str]) -> None:
    """Inside callgrind: a warm-up run, then one run with instrumentation on (callgrind_control)."""
    script_seconds(script, args, watched)
    pid = str(os.getpid())
    subprocess.run(["callgrind_control", "-i", "on", pid], capture_output=True, check=True)
    script_seconds(script, args, watched)
    subprocess.run(["callgrind_control", "-i", "off", pid], capture_output=True, check=True)


def instruction_rows() -> list[dict[str, object]]:
    rows = []
    for name, (script, script_args) in SCRIPTS.items():
        alone, watched = (count_instructions(script, script_args, w) for w in (False, True))  # side by side
        alone_count, watched_count = counted(alone), counted(watched)
        ratio = watched_count / alone_count
        rows.append({"workload": name, "alone_instructions": alone_count, "watched_instructions": watched_count,
                     "ratio": ratio, "goal": 1.15})  # fmt: skip
        print(f"{name:55s} alone {alone_count / 1e9:6.3f} G instructions  autowatch {watched_count / 1e9:6.3f} G  "
              f"ratio {ratio:5.3f}  (goal <= 1.15)")  # fmt: skip
    return rows


def main() -> None:
    if sys.argv[1:2] == ["--counted-run"]:
        counted_run(sys.argv[2] == "1", sys.argv[3], sys.argv[4:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true", help="W5 for one epoch")
    parser.add_argument("--scripts-only", action="store_true", help="only the example scripts under autowatch")
    parser.add_argument("--instructions", action="store_true", help="count the scripts' instructions (valgrind)")
    args = parser.parse_args()
    if args.instructions:
        rows = instruction_rows()
        if args.json:
            args.json.write_text(json.dumps({"time": time.ctime(), "rows": rows}, indent=1))
        return
    if args.scripts_only:
        WORKLOADS.clear()
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
    for name, (script, script_args) in SCRIPTS.items():
        script_seconds(script, script_args, True)  # warm-up
        runs: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeats):
            for watched in (False, True):
                runs[watched].append(script_seconds(script, script_args, watched))
        alone, watched_s = statistics.median(runs[False]), statistics.median(runs[True])
        # load from elsewhere only adds time: the fastest runs are the steadiest figure, and the ratios of
        # alternated pairs share their moment's load
        fastest = min(runs[True]) / min(runs[False])
        paired = statistics.median(w / a for a, w in zip(runs[False], runs[True], strict=True))
        rows.append({"workload": name, "off_s": alone, "warn_s": watched_s, "ratio": watched_s / alone,
                     "fastest_ratio": fastest, "paired_ratio": paired, "goal": 1.15,
                     "alone_runs": runs[False], "watched_runs": runs[True]})  # fmt: skip
        print(
            f"{name:55s} alone {alone:8.3f}s  autowatch {watched_s:8.3f}s  ratio {watched_s / alone:5.3f}  "
            f"fastest {fastest:5.3f}  paired {paired:5.3f}  (goal <= 1.15)"
        )
    machine = (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print(f"machine: {machine}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "time": time.ctime(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
