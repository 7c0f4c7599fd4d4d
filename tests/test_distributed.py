"""Distributed data-parallel training on the CPU (gloo): 2 processes at batch b against 1 at batch 2b."""

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import needs_fashion_mnist, subprocess_env
from trainwise import distributed
from trainwise.checkpoint import TrainingCheckpoint
from trainwise.cli import main

WORKER = Path(__file__).with_name("ddp_worker.py")
# gloo on the CPU, on any machine: on one GPU, two NCCL processes would share it (refused: check_gpus)
CPU = ["--set", "train.device=cpu"]


def _fit(runs: Path, *args: str) -> Path:
    command = [sys.executable, "-m", "trainwise.cli", "fit", *args, *CPU, "--quiet", "--runs-dir", str(runs)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=subprocess_env())
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = [path for path in runs.iterdir() if path.is_dir()]
    return run


def _curves(run: Path) -> dict[str, list[float]]:
    curves = {}
    for name in ("metrics.csv", "validations.csv"):
        if (run / name).is_file():
            with open(run / name) as handle:
                rows = list(csv.DictReader(handle))
            curves.update({f"{name}:{key}": [float(row[key]) for row in rows] for key in rows[0]
                           if key not in ("epoch", "epoch_seconds")})  # fmt: skip
    return curves


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
                "--set",
                "train.val_every_steps=2",  # within the epochs too: their losses and metrics are over all processes
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
    if "train.val_every_steps=2" in one:  # 6 steps an epoch
        assert single["validations.csv:step"] == [2, 4, 6, 8, 10, 12]
    for key, values in single.items():
        assert len(double[key]) == len(values)
        tolerance = 2 / 256 if "accuracy" in key else 1e-4  # a prediction may flip on a rounding difference
        assert double[key] == pytest.approx(values, rel=tolerance, abs=tolerance), key


def test_a_dead_process_stops_the_run_with_one_line_and_it_resumes(tmp_path: Path) -> None:
    launch = "import sys; from trainwise.distributed import launch; launch(sys.argv[1:], nproc=2, module=False)"
    pinned = ["train.epochs=30", "train.device=cpu"]
    command = [sys.executable, "-c", launch, str(WORKER), str(tmp_path), "7", "0", *pinned]
    died = subprocess.run(command, capture_output=True, text=True, timeout=240, env=subprocess_env())
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
    command = [sys.executable, "-c", launch, str(WORKER), str(tmp_path), "0", "1", *pinned]
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=240, env=subprocess_env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["status"], summary["epochs"]) == ("completed", 30)


# ----------------------------------------------------------------------------- more processes than GPUs


@pytest.fixture
def one_gpu(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """A machine that says it has one CUDA GPU; launch() records what it was asked instead of starting anything."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    launched: list[Any] = []
    monkeypatch.setattr(distributed, "launch", lambda argv, **kwargs: launched.append((list(argv), kwargs)))
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    return launched


def test_more_processes_than_gpus_is_one_line_naming_both_counts(
    one_gpu: list[Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["fit", "w1-normalized", "--nproc", "2", "--quiet", "--runs-dir", str(tmp_path)])
    assert code == 2
    assert capsys.readouterr().err == (
        "error: --nproc 2: 2 processes but this machine has 1 CUDA GPU, and NCCL needs one GPU per process; "
        "use --nproc 1 or fewer, or --set train.device=cpu to run the 2 processes on the CPU (gloo)\n"
    )
    assert one_gpu == []  # refused before any process started


def test_every_process_on_one_named_gpu_is_refused_too(
    one_gpu: list[Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["fit", "w1-normalized", "--nproc", "2", "--set", "train.device=cuda:0", "--runs-dir", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --nproc 2: train.device = 'cuda:0' puts every process on that one GPU") and (
        err.endswith("or --set train.device=cpu to run the 2 processes on the CPU (gloo)\n")
    )
    assert one_gpu == []


def test_the_fix_the_error_names_launches(one_gpu: list[Any], tmp_path: Path) -> None:
    args = ["fit", "w1-normalized", "--nproc", "2", "--set", "train.device=cpu", "--runs-dir", str(tmp_path)]
    assert main(args) == 0
    assert [kwargs["nproc"] for _, kwargs in one_gpu] == [2]
    assert main(["fit", "w1-normalized", "--nproc", "1", "--nnodes", "2", "--runs-dir", str(tmp_path)]) == 0
    assert len(one_gpu) == 2  # one process per node on its one GPU: allowed


def test_check_gpus_counts_the_gpus_of_this_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    distributed.check_gpus(4, "auto")  # one process per GPU
    distributed.check_gpus(8, "cpu")  # gloo: any number
    with pytest.raises(distributed.TrainwiseError, match=r"^--nproc 5: 5 processes but this machine has 4 CUDA GPUs"):
        distributed.check_gpus(5, "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    distributed.check_gpus(5, "auto")  # no CUDA: auto is the CPU (or MPS), no NCCL
