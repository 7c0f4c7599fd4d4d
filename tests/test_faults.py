"""Faults while training (docs/reliability.md): a full disk while writing a checkpoint or the run record, a
read-only runs folder, a run folder deleted mid-run, and SIGKILL at random points of checkpoint writes.
Each ends with one line naming the folder and the problem, and what was written before stays loadable."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import random
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch
from torch import nn

import trainwise
from tests.conftest import subprocess_env
from trainwise.callbacks import Callback
from trainwise.checkpoint import Checkpoint, TrainingCheckpoint, checkpoints_in
from trainwise.cli import main
from trainwise.errors import TrainwiseError
from trainwise.recipes import run_recipe
from trainwise.runs import RunIndex

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
NO_SPACE_FOR_THE_RECORD = (
    "cannot write the run record there (No space left on device); the files written before are intact"
)


# the CPU on any machine ("auto" would pick a GPU, and these tests compare with what the CPU writes)
CPU = ["--set", "train.device=cpu"]


def _only_run(root: Path) -> Path:
    (run,) = [path for path in root.iterdir() if path.is_dir()]
    return run


def _fit(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> tuple[int, str]:
    code = main(["fit", *CPU, *args, "--quiet", "--runs-dir", str(root)])
    return code, capsys.readouterr().err


# ----------------------------------------------------------------------------- a full disk


def test_a_full_disk_during_a_checkpoint_keeps_the_earlier_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    save_file = safetensors.torch.save_file
    written: list[str] = []

    def fills_up(tensors: Any, filename: str, *args: Any, **kwargs: Any) -> None:
        if len(written) == 3:  # the 4th checkpoint finds the disk full, half-way through its weights
            Path(filename).write_bytes(b"\0" * 100)
            raise ENOSPC
        written.append(filename)
        save_file(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "save_file", fills_up)
    folder = tmp_path / "python-checkpoints"  # in Python, with no run record: the checkpoint's own error
    with pytest.raises(TrainwiseError) as info:
        trainwise.fit(nn.Linear(3, 1), (torch.randn(8, 3), torch.randn(8, 1)), loss="mse", lr=0.1, epochs=8,
                      progress=False, device="cpu", callbacks=[Checkpoint(folder, every_epochs=1)])  # fmt: skip
    assert str(info.value) == f"{folder}: cannot write a checkpoint there (No space left on device)"
    assert [p.name for p in checkpoints_in(folder)] == ["step-000000002", "step-000000003"]

    written.clear()  # the CLI: the disk stays full, so the record's last write (the weights) fails too
    root = tmp_path / "runs"
    code, err = _fit(capsys, root, "w3-dynamic", "--set", "train.epochs=8", "--set", "checkpoint.every_epochs=1")
    run = _only_run(root)
    assert code == 2
    assert err == f"error: {run}: {NO_SPACE_FOR_THE_RECORD}\n"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000000002", "step-000000003"]  # no .tmp
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the newest checkpoint loads: nothing skipped
        assert TrainingCheckpoint.read(run).path.name == "step-000000003"
    assert RunIndex(root).get(run.name).status == "failed"

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)  # space again: resume
    code, err = _fit(capsys, root, "--resume", run.name)
    assert (code, err) == (0, "")
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["status"], summary["epochs"]) == ("completed", 8)


def test_a_full_disk_while_writing_the_record_keeps_the_previous_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _fit(capsys, tmp_path, "w1-normalized", "--set", "train.epochs=20") == (0, "")
    run = _only_run(tmp_path)
    before = {name: (run / name).read_bytes() for name in ("model.safetensors", "summary.json", "metrics.csv")}

    def no_space(*args: Any, **kwargs: Any) -> None:
        raise ENOSPC

    monkeypatch.setattr(safetensors.torch, "save_model", no_space)  # the run's weights, at the end of training
    code, err = _fit(capsys, tmp_path, "--resume", run.name, "--set", "train.epochs=30")
    assert code == 2
    assert err == f"error: {run}: {NO_SPACE_FOR_THE_RECORD}\n"
    assert (run / "model.safetensors").read_bytes() == before["model.safetensors"]
    assert (run / "summary.json").read_bytes() == before["summary.json"]
    assert json.loads(before["summary.json"])["epochs"] == 20
    assert not list(run.glob(".*.tmp"))  # the temporary file of the failed write is gone
    trainwise.load(run)  # the record still loads
    rows = (run / "metrics.csv").read_text().splitlines()  # metrics were appended before the failure
    assert rows[0] == before["metrics.csv"].decode().splitlines()[0] and len(rows) == 31


def test_a_full_disk_when_the_run_folder_is_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    mkdir = Path.mkdir

    def full(self: Path, *args: Any, **kwargs: Any) -> None:
        if self.parent == tmp_path / "runs":
            raise ENOSPC
        mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", full)
    code, err = _fit(capsys, tmp_path / "runs", "w1-normalized", "--set", "train.epochs=2")
    assert code == 2
    assert err == (
        f"error: {tmp_path / 'runs'}: cannot create a run folder there (No space left on device); "
        "pass --runs-dir (or set TRAINWISE_HOME) to a writable folder\n"
    )


# ----------------------------------------------------------------------------- a read-only runs folder
# These tests run as root, which chmod does not stop: a read-only file system is simulated where the
# OS would report it (mkdir, sqlite); the real chmod test runs where the tests run as another user.


def test_a_read_only_runs_folder_is_one_line_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "runs"
    root.mkdir()
    mkdir = Path.mkdir

    def read_only(self: Path, *args: Any, **kwargs: Any) -> None:
        if root in self.parents:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    started = []
    monkeypatch.setattr(trainwise.loop, "_train_epoch", lambda *a: started.append(a))  # must not be reached
    code, err = _fit(capsys, root, "w1-normalized", "--set", "train.epochs=2")
    assert code == 2
    assert err == (
        f"error: {root}: cannot create a run folder there (Read-only file system); "
        "pass --runs-dir (or set TRAINWISE_HOME) to a writable folder\n"
    )
    assert not started and list(root.iterdir()) == []


def test_a_read_only_runs_index_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    connect = sqlite3.connect

    class ReadOnly(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
            if not sql.lstrip().upper().startswith("SELECT"):
                raise sqlite3.OperationalError("attempt to write a readonly database")
            return super().execute(sql, *args)

    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: connect(*a, **k, factory=ReadOnly))
    code, err = _fit(capsys, tmp_path, "w1-normalized", "--set", "train.epochs=2")
    assert code == 2
    index = tmp_path / "index.sqlite"
    assert err == f"error: {index}: cannot use the runs index (attempt to write a readonly database)\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits; the simulated test covers this")
def test_a_read_only_runs_folder_for_real(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "runs"
    root.mkdir()
    root.chmod(0o555)
    try:
        code, err = _fit(capsys, root, "w1-normalized", "--set", "train.epochs=2")
    finally:
        root.chmod(0o755)
    assert code == 2 and err.startswith(f"error: {root}: cannot ") and err.count("\n") == 1


READ_ONLY_COMMANDS = """
import contextlib, io, json, sys
from trainwise.cli import main
results = []
for args in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        results.append((main(args), err.getvalue()))
print(json.dumps(results))
"""


def test_a_runs_folder_on_a_read_only_mount(tmp_path: Path) -> None:
    """A real read-only file system (a read-only bind mount in a private mount namespace, where the test may
    make one): training, resuming, reporting and exporting each end with one line; listing and evaluating
    still work."""
    import shlex
    import subprocess
    import sys

    root = tmp_path / "runs"
    assert main(["fit", "w1-normalized", *CPU, "--quiet", "--runs-dir", str(root), "--set", "train.epochs=20"]) == 0
    run = _only_run(root)
    commands = [
        ["fit", "w1-normalized", *CPU, "--set", "train.epochs=2"],
        ["fit", "--resume", "latest", *CPU, "--set", "train.epochs=30"],
        ["report", "latest"],
        ["export", "latest"],
        ["runs"],
        ["evaluate", "latest"],
    ]
    folder, python = shlex.quote(str(root)), shlex.quote(sys.executable)
    mount = f"mount --bind {folder} {folder} && mount -o remount,ro,bind {folder} {folder}"
    script = f'{mount} && exec {python} -c "$0" "$1"'
    quiet = {"fit": ["--quiet"]}
    arguments = json.dumps([[*command, *quiet.get(command[0], []), "--runs-dir", str(root)] for command in commands])
    try:  # can this machine make one? (root in a container may not, and other users need a user namespace)
        probe = subprocess.run(["unshare", "-m", "sh", "-c", mount], capture_output=True)
    except FileNotFoundError:
        pytest.skip("no unshare(1) here")
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only mount here: {probe.stderr.decode(errors='replace').strip()[:200]}")
    done = subprocess.run(["unshare", "-m", "sh", "-c", script, READ_ONLY_COMMANDS, arguments],
                          capture_output=True, text=True, timeout=120, env=subprocess_env())  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.splitlines()[-1])
    erofs = os.strerror(errno.EROFS)
    assert results[0] == [2, f"error: {root}: cannot create a run folder there ({erofs}); pass --runs-dir (or set "
                             "TRAINWISE_HOME) to a writable folder\n"]  # fmt: skip
    assert results[1] == [2, f"error: {root / 'index.sqlite'}: cannot use the runs index (attempt to write a "
                             "readonly database)\n"]  # fmt: skip
    assert results[2] == [2, f"error: {run / 'report.html'}: cannot write the report ({erofs})\n"]
    assert results[3] == [2, f"error: {run / 'export-safetensors'}: cannot save the model there ({erofs})\n"]
    assert results[4] == [0, ""] and results[5] == [0, ""]  # reading still works
    assert json.loads((run / "summary.json").read_text())["epochs"] == 20  # the record is as it was


# ----------------------------------------------------------------------------- a run folder deleted mid-run


class DeleteRunFolder(Callback):
    """Deletes the run's folder at the end of an epoch, or after a step (the user's `rm -r runs/...`)."""

    def __init__(self, *, epoch: int | None = None, step: int | None = None) -> None:
        self.epoch, self.step = epoch, step

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if epoch == self.epoch:
            shutil.rmtree(self.state.run)

    def on_batch_end(self, batch: int, logs: dict) -> None:
        if self.state.step == self.step:
            shutil.rmtree(self.state.run)


@pytest.mark.parametrize("when", [{"epoch": 1}, {"step": 5}], ids=["at-epoch-2", "mid-epoch"])
def test_a_run_folder_deleted_mid_run_stops_training_with_one_line(tmp_path: Path, when: dict[str, int]) -> None:
    # 4 steps an epoch
    overrides = ["train.epochs=5", "train.batch_size=16", "checkpoint.every_steps=1", "train.device=cpu"]
    with pytest.raises(TrainwiseError) as info:
        run_recipe("w3-dynamic", overrides, progress=False, run_root=tmp_path, callbacks=[DeleteRunFolder(**when)])
    (row,) = RunIndex(tmp_path).list()
    assert str(info.value) == (
        f"{row.path}: the run folder was deleted while training, and its records and checkpoints with it; "
        "training stopped (train again to get a new run)"
    )
    assert not row.path.exists()  # not re-created, half empty, by a later write
    assert row.status == "failed"


# ----------------------------------------------------------------------------- SIGKILL during checkpoint writes

KILLS = 20


def _kill_setup() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """A model whose checkpoint (weights and Adam's moments, ~3.5 MB) takes longer to write than a step."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 8))
    generator = torch.Generator().manual_seed(1)
    return model, (torch.randn(256, 64, generator=generator), torch.randn(256, 8, generator=generator))


def _train(root: Path, epochs: int, resume: Path | None = None) -> trainwise.FitResult:
    model, data = _kill_setup()
    return trainwise.fit(model, data, loss="mse", optimizer="adam", lr=1e-3, epochs=epochs, batch_size=32,
                         run_dir=root, run_name="killed", config={"test": "sigkill"}, progress=False, doctor="off",
                         device="cpu", callbacks=[Checkpoint(every_steps=1)], resume=resume)  # fmt: skip


def _train_until_killed(root: str) -> None:
    """The child process: trains with a checkpoint after every step until the parent kills it."""
    torch.set_num_threads(1)
    _train(Path(root), epochs=1_000_000)


@pytest.fixture(scope="module")
def forkserver() -> Any:
    """Children forked from a server that has imported torch and trainwise: 0.1 s each, not 3 s (the optimizers'
    first step imports torch._dynamo, most of a second by itself)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        [
            "torch",
            "torch._dynamo",
            "trainwise",
            "trainwise.runs",
            "trainwise.recorder",
            "safetensors.torch",
            "tests.test_faults",
        ]
    )
    return context


def test_sigkill_at_random_points_of_checkpoint_writes_never_loses_the_latest(tmp_path: Path, forkserver: Any) -> None:
    seed = random.SystemRandom().randrange(2**32)
    draw = random.Random(seed)
    mid_write = 0
    for kill in range(KILLS):
        root = tmp_path / f"kill-{kill}"
        child = forkserver.Process(target=_train_until_killed, args=(str(root),))
        child.start()
        deadline = time.monotonic() + 60
        while not list(root.glob("*/checkpoints/step-*/state.json")):
            assert time.monotonic() < deadline and child.is_alive(), f"no checkpoint (seed {seed}, kill {kill})"
            time.sleep(0.002)
        time.sleep(draw.uniform(0.0, 0.25))
        child.kill()
        child.join()
        assert child.exitcode == -9
        run = _only_run(root)
        mid_write += bool(list((run / "checkpoints").glob(".step-*.tmp")))  # killed inside save_training_state
        latest = checkpoints_in(run / "checkpoints")[-1]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the newest complete checkpoint loads: none is skipped as damaged
            loaded = TrainingCheckpoint.read(run)
        assert loaded.path == latest, (seed, kill)
        epochs = loaded.description["epoch"] + 1
        resumed = _train(root, epochs, resume=run)
        assert (resumed.status, resumed.epochs, resumed.run) == ("completed", epochs, run), (seed, kill)
    assert mid_write >= 2, f"only {mid_write} of {KILLS} kills landed in a checkpoint write (seed {seed})"
