"""The GPU benchmark is prepared here and run where a GPU is lent, minutes at a time: its smoke run must work
before it gets there."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainwise.datasets import FASHION_MNIST_SYSTEM_DIR

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not FASHION_MNIST_SYSTEM_DIR.exists(), reason="needs the dataset-fashion-mnist package")
def test_the_gpu_benchmark_runs_its_smoke_run_and_reports_every_variant(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--smoke", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["speed"]) == {"W5, batch 64", "W5, batch 512"}
    for rows in report["speed"].values():
        assert {"tutorial loop", "hand-written fast loop", "trainwise, doctor off", "trainwise, doctor on"} <= set(rows)
        assert rows["hand-written fast loop"]["x_hand"] == 1.0
        # every variant trained the same untrained 10-class model on the same images: about ln 10
        assert all(abs(row["loss"] - math.log(10)) < 0.1 for row in rows.values())
        # the same initial weights, data and shuffle seed: trainwise's loss does not depend on its doctor
        assert rows["trainwise, doctor on"]["loss"] == rows["trainwise, doctor off"]["loss"]
    if not torch.cuda.is_available():
        assert "CUDA graph floor: needs CUDA (left out)" in report["notes"]
        assert report["syncs"] == {"off": None, "warn": None}
    for row in report["to_target"].values():
        assert row["seconds"] > 0 and row["epochs"] in (None, 1)
