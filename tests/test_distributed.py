"""Distributed data-parallel training on the CPU (gloo): 2 processes at batch b against 1 at batch 2b."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import needs_fashion_mnist
from trainwise.checkpoint import TrainingCheckpoint

WORKER = Path(__file__).with_name("ddp_worker.py")


def _fit(runs: Path, *args: str) -> Path:
    command = [sys.executable, "-m", "trainwise.cli", "fit", *args, "--quiet", "--runs-dir", str(runs)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = [path for path in runs.iterdir() if path.is_dir()]
    return run


def _curves(run: Path) -> dict[str, list[float]]:
    with open(run / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    return {key: [float(row[key]) for row in rows] for key in rows[0] if key not in ("epoch", "epoch_seconds")}


@pytest.mark.parametrize(
    ("recipe", "one", "two"),
    [
        # W3: the full batch of 64, split 32 + 32; a summed loss, so the gradients are summed, not averaged
        pytest.param("w3-sequential-sgd", ["--set", "train.epochs=40"], [], id="w3"),
        pytest.param(  # W5: Adam and cosine decay, 768 training samples, steps of 128 = 2 x 64
            "w5-tuned",
            [
                "--set",
                "data.limit=1024",
                "--set",
                "data.val_split=0.25",
                "--set",
                "train.epochs=2",
                "--set",
                "train.batch_size=128",
            ],
            ["--set", "train.batch_size=64"],
            id="w5-subset",
            marks=needs_fashion_mnist,
        ),
    ],
)
def test_two_processes_follow_one_with_twice_the_batch(tmp_path: Path, recipe: str, one: list, two: list) -> None:
    single = _curves(_fit(tmp_path / "one", recipe, *one))
    double = _curves(_fit(tmp_path / "two", recipe, *one, *two, "--nproc", "2"))
    assert single.keys() == double.keys()
    for key, values in single.items():
        assert len(double[key]) == len(values)
        tolerance = 2 / 256 if "accuracy" in key else 1e-4  # a prediction may flip on a rounding difference
        assert double[key] == pytest.approx(values, rel=tolerance, abs=tolerance), key


def test_a_dead_process_stops_the_run_with_one_line_and_it_resumes(tmp_path: Path) -> None:
    launch = "import sys; from trainwise.distributed import launch; launch(sys.argv[1:], nproc=2, module=False)"
    command = [sys.executable, "-c", launch, str(WORKER), str(tmp_path), "7", "0", "train.epochs=30"]
    died = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert died.returncode != 0
    lines = [line for line in died.stderr.splitlines() if "distributed run failed" in line]
    assert lines == [
        "trainwise.errors.TrainwiseError: distributed run failed: process 1 was killed by SIGKILL, and the others "
        "were stopped; the run's latest checkpoint resumes it (trainwise fit --resume latest --nproc N)"
    ], died.stderr[-3000:]
    (run,) = [path for path in tmp_path.iterdir() if path.is_dir()]
    # the periodic checkpoint of step 6, or, when process 0 finished step 7 (process 1 died after it) before
    # the launcher's SIGTERM reached it, the checkpoint that SIGTERM saves: never a step past the kill
    assert TrainingCheckpoint.read(run).description["step"] in (6, 7)
    command = [sys.executable, "-c", launch, str(WORKER), str(tmp_path), "0", "1", "train.epochs=30"]
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["status"], summary["epochs"]) == ("completed", 30)
