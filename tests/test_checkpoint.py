import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import trainwise
from tests.conftest import needs_fashion_mnist, subprocess_env
from trainwise import checkpoint as trainwise_checkpoint
from trainwise.callbacks import Callback
from trainwise.checkpoint import Checkpoint, TrainingCheckpoint, atomic_path, atomic_write_text, checkpoints_in
from trainwise.cli import main
from trainwise.config import load_config
from trainwise.errors import TrainwiseError
from trainwise.models import build_model
from trainwise.recipes import RecipeResult, run_config, run_recipe

# every training here runs on the CPU, on any machine ("auto" would pick a GPU): the tests compare its weights
# and outputs with CPU tensors. CLI: `--set train.device=cpu` right after the subcommand.
CPU = "train.device=cpu"
CPU_ARGS = ["--set", CPU]


def test_a_built_model_round_trips_bit_for_bit(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("mlp", 784, 10, hidden=[32, 16])
    x = torch.randn(5, 784)
    folder = trainwise.save(model, tmp_path / "mlp", config={"note": "test"})
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.safetensors"]
    description = json.loads((folder / "model.json").read_text())
    assert description["build"] == {"kind": "spec", "spec": {"name": "mlp", "in_features": 784, "out_features": 10,
                                                             "options": {"hidden": [32, 16]}}}  # fmt: skip
    assert description["config"] == {"note": "test"} and description["version"] == 2
    loaded = trainwise.load(folder)
    assert loaded is not model
    assert torch.equal(loaded(x), model(x))


def test_an_import_path_model_is_rebuilt_from_its_path(tmp_path: Path) -> None:
    model = build_model("trainwise.models:TwoLayerNet", 1000, 10, d_in=20, hidden=7, d_out=3)
    trainwise.save(model, tmp_path / "net")
    loaded = trainwise.load(tmp_path / "net")
    assert type(loaded).__name__ == "TwoLayerNet"
    pairs = zip(model.state_dict().values(), loaded.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_a_run_folder_loads_like_a_saved_model(tmp_path: Path) -> None:
    result = run_recipe("w1-normalized", ["train.epochs=50", CPU], progress=False, run_root=tmp_path)
    assert result.fit.run is not None
    loaded = trainwise.load(result.fit.run)
    assert torch.equal(loaded.weight, result.fit.model.weight) and torch.equal(loaded.bias, result.fit.model.bias)


def test_a_user_model_needs_an_instance_to_load_into(tmp_path: Path) -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(3, 2)

    model = Net()
    trainwise.save(model, tmp_path / "net")
    with pytest.raises(TrainwiseError, match=r"Net is defined inside a function.*pass model=Net\(\.\.\.\)"):
        trainwise.load(tmp_path / "net")
    other = trainwise.load(tmp_path / "net", model=Net())
    assert torch.equal(other.layer.weight, model.layer.weight)


def test_another_architecture_or_a_damaged_file_is_a_clear_error(tmp_path: Path) -> None:
    trainwise.save(build_model("mlp", 4, 2, hidden=[8]), tmp_path / "a")
    with pytest.raises(TrainwiseError, match=r"does not fit the model.*another architecture"):
        trainwise.load(tmp_path / "a", model=build_model("mlp", 4, 2, hidden=[9]))
    weights = tmp_path / "a" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    with pytest.raises(TrainwiseError, match=r"not a readable safetensors file.*truncated"):
        trainwise.load(tmp_path / "a")
    description = json.loads((tmp_path / "a" / "model.json").read_text())
    (tmp_path / "a" / "model.json").write_text(json.dumps({**description, "version": 99}))
    with pytest.raises(TrainwiseError, match="format version 99; this trainwise reads versions 1 to 2"):
        trainwise.load(tmp_path / "a")
    with pytest.raises(TrainwiseError, match="no such file or folder"):
        trainwise.load(tmp_path / "missing")


class Pickled(nn.Module):  # module level, so torch.save(model) can pickle it
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 1)


def test_legacy_torch_files_never_unpickle_code_unless_trusted(tmp_path: Path) -> None:
    model = Pickled()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    filled = trainwise.load(tmp_path / "weights.pt", model=Pickled())
    assert torch.equal(filled.layer.weight, model.layer.weight)
    with pytest.raises(TrainwiseError, match=r"a state_dict .*pass model="):
        trainwise.load(tmp_path / "weights.pt")
    torch.save(model, tmp_path / "whole.pth")  # the W5 write-up's way
    with pytest.raises(TrainwiseError, match=r"pickled Python object.*trust_pickle=True"):
        trainwise.load(tmp_path / "whole.pth")
    trusted = trainwise.load(tmp_path / "whole.pth", trust_pickle=True)
    assert isinstance(trusted, Pickled) and torch.equal(trusted.layer.weight, model.layer.weight)


def test_atomic_writes_keep_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    atomic_write_text(target, "old")
    with pytest.raises(OSError), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise OSError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary file left behind
    atomic_write_text(target, "new")
    assert target.read_text() == "new"


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_export_torchscript_and_safetensors_predict_like_the_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("mlp", 6, 3, hidden=[8], dropout=0.5)
    model.train()
    x = torch.randn(4, 6)
    traced = trainwise.checkpoint.export(model, tmp_path / "m.pt", format="torchscript", example=x[:1])
    assert model.training  # left as it was
    model.eval()
    assert torch.allclose(torch.jit.load(str(traced))(x), model(x))  # traced in eval mode: dropout off
    folder = trainwise.checkpoint.export(model, tmp_path / "m", format="safetensors", example=x[:1])
    assert torch.equal(trainwise.load(folder).eval()(x), model(x))


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_cli_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trainwise.cli import main

    runs = str(tmp_path / "runs")
    assert main(["fit", *CPU_ARGS, "w1-normalized", "--set", "train.epochs=20", "--quiet", "--runs-dir", runs]) == 0
    output = tmp_path / "w1.pt"
    assert main(["export", "latest", "--format", "torchscript", "--output", str(output), "--runs-dir", runs]) == 0
    scripted = torch.jit.load(str(output))
    inputs = torch.tensor([[3.57], [5.59]])  # t_u already scaled by 0.1, as the model was trained
    assert torch.equal(
        scripted(inputs), trainwise.load(next(p for p in (tmp_path / "runs").iterdir() if p.is_dir()))(inputs)
    )
    assert main(["export", "latest", "--format", "pickle", "--runs-dir", runs]) == 2
    assert "invalid choice: 'pickle'" in capsys.readouterr().err


def _image_run(tmp_path: Path) -> tuple[Path, Path]:
    """`trainwise fit` of an MLP on 4x4 one-channel images in an .npz file, standardized: (run folder, data file)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 1, 4, 4)).astype(np.float32)
    data = tmp_path / "images.npz"
    np.savez(data, X=X, y=(X.mean(axis=(1, 2, 3)) > 0).astype(np.int64))
    config = tmp_path / "images.toml"
    config.write_text(
        f'[data]\nname = "{data}"\nnormalize = "standard"\n\n[model]\nname = "mlp"\nhidden = [8]\n\n'
        '[loss]\nname = "cross_entropy"\n\n[optim]\nname = "sgd"\nlr = 0.1\n\n[train]\nepochs = 3\ndoctor = "quiet"\n'
    )
    assert main(["fit", *CPU_ARGS, str(config), "--quiet", "--runs-dir", str(tmp_path / "runs")]) == 0
    return _only_run(tmp_path / "runs"), data


def _export(run: Path, output: Path, format: str = "torchscript") -> int:
    return main(["export", "latest", "--format", format, "--output", str(output), "--runs-dir", str(run.parent)])


def _assert_exported_like_the_run(output: Path, run: Path) -> None:
    scripted = torch.jit.load(str(output))
    inputs = torch.randn(5, 1, 4, 4)  # another batch size than the traced example's
    assert torch.allclose(scripted(inputs), trainwise.load(run).eval()(inputs), atol=1e-6)


def test_a_run_records_its_input_shape_and_dtype(tmp_path: Path) -> None:
    run, _ = _image_run(tmp_path)
    description = json.loads((run / "model.json").read_text())
    assert description["input"] == {"shape": [1, 4, 4], "dtype": "float32"}  # one sample, no batch dimension
    assert (description["format"], description["build"]["kind"]) == ("trainwise-model", "spec")  # as save writes
    assert description["build"]["spec"]["in_features"] == 16


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_export_of_a_new_run_does_not_read_its_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run, data = _image_run(tmp_path)
    data.unlink()  # the data set is gone, and loading any data fails loudly

    def no_data(*args: object, **kwargs: object) -> None:
        raise AssertionError("export loaded the data")

    monkeypatch.setattr("trainwise.recipes.load_data", no_data)
    monkeypatch.setattr("trainwise.datasets.load_dataset", no_data)
    assert _export(run, tmp_path / "images.pt") == 0
    _assert_exported_like_the_run(tmp_path / "images.pt", run)
    assert _export(run, tmp_path / "images-folder", "safetensors") == 0
    assert sorted(p.name for p in (tmp_path / "images-folder").iterdir()) == ["model.json", "model.safetensors"]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_export_of_an_older_run_without_the_input_shape_reads_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from trainwise import recipes

    run, data = _image_run(tmp_path)
    description = json.loads((run / "model.json").read_text())
    del description["input"]  # as trainwise wrote model.json before it recorded the input
    (run / "model.json").write_text(json.dumps(description))
    loads: list[object] = []
    load_data = recipes.load_data
    monkeypatch.setattr(recipes, "load_data", lambda config: loads.append(config) or load_data(config))
    capsys.readouterr()
    assert _export(run, tmp_path / "images.pt") == 0
    assert len(loads) == 1
    _assert_exported_like_the_run(tmp_path / "images.pt", run)
    data.unlink()  # now it has nothing to trace with: one line, exit 2
    capsys.readouterr()
    assert _export(run, tmp_path / "again.pt") == 2
    assert capsys.readouterr().err == f"error: {data}: no such file; check the path (built-in datasets: " + (
        ", ".join(trainwise.datasets.BUILTIN) + ")\n"
    )


@pytest.mark.parametrize(
    "recorded",
    [{"shape": [1, 0, 4], "dtype": "float32"}, {"shape": [1, 4, 4], "dtype": "tensor"}, {"shape": 16}, "1x4x4"],
)
def test_a_damaged_input_record_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], recorded: object
) -> None:
    run, _ = _image_run(tmp_path)
    description = json.loads((run / "model.json").read_text())
    (run / "model.json").write_text(json.dumps({**description, "input": recorded}))
    capsys.readouterr()
    assert _export(run, tmp_path / "images.pt") == 2
    err = capsys.readouterr().err
    assert err.startswith(f'error: {run / "model.json"}: its "input" should be {{"shape": ') and err.count("\n") == 1


# ----------------------------------------------------------------------------- training checkpoints and resume

WORKER = Path(__file__).with_name("resume_worker.py")
RESUMABLE = [
    pytest.param("w3-dynamic", ["train.epochs=60"], id="w3-dynamic"),  # momentum, a model-owned random.Random
    pytest.param(  # Adam, cosine decay per epoch, minibatches, a validation split: mid-epoch state matters
        "w5-tuned",
        ["data.limit=600", "train.epochs=3", "data.val_split=0.2", "train.batch_size=64"],
        id="w5-subset",
        marks=needs_fashion_mnist,
    ),
]


class RaiseAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_batch_end(self, batch: int, logs: dict) -> None:
        if self.state.step == self.step:
            raise RuntimeError("stop here")


def _only_run(root: Path) -> Path:
    (run,) = [path for path in root.iterdir() if path.is_dir()]
    return run


def _assert_same_training(full: RecipeResult, resumed: RecipeResult) -> None:
    pairs = zip(full.fit.model.state_dict().items(), resumed.fit.model.state_dict().items(), strict=True)
    assert all(name_a == name_b and torch.equal(a, b) for (name_a, a), (name_b, b) in pairs)
    for key, values in full.fit.history.items():
        if key != "epoch_seconds":
            assert resumed.fit.history[key] == values, key
    assert resumed.test == full.test


@pytest.mark.parametrize(("recipe", "overrides"), RESUMABLE)
def test_a_run_stopped_by_an_error_resumes_bit_for_bit(tmp_path: Path, recipe: str, overrides: list[str]) -> None:
    overrides = [*overrides, "checkpoint.every_steps=4", CPU]
    full = run_recipe(recipe, overrides, progress=False, run_root=tmp_path / "full")
    with pytest.raises(RuntimeError, match="stop here"):
        run_recipe(recipe, overrides, progress=False, run_root=tmp_path / "cut", callbacks=[RaiseAt(11)])
    run = _only_run(tmp_path / "cut")
    assert [path.name for path in checkpoints_in(run / "checkpoints")] == ["step-000000004", "step-000000008"]
    resumed = run_config(load_config(run / "config.toml"), run_root=tmp_path / "cut", progress=False, resume=run)
    _assert_same_training(full, resumed)
    assert resumed.fit.run == run and json.loads((run / "summary.json").read_text())["status"] == "completed"
    rows = (run / "metrics.csv").read_text().splitlines()  # the epochs before the error, once each
    assert [row.split(",")[0] for row in rows] == ["epoch", *(str(e + 1) for e in range(full.fit.epochs))]


@pytest.mark.parametrize(("recipe", "overrides"), RESUMABLE)
def test_a_run_killed_at_a_random_step_resumes_bit_for_bit(tmp_path: Path, recipe: str, overrides: list[str]) -> None:
    overrides = [*overrides, "checkpoint.every_steps=3", CPU]
    full = run_recipe(recipe, overrides, progress=False, run_root=tmp_path / "full")
    assert full.fit.run is not None
    total_steps = json.loads((checkpoints_in(full.fit.run / "checkpoints")[-1] / "state.json").read_text())["step"]
    kill_step = random.randrange(4, total_steps)  # any step: the result must not depend on where the kill lands
    worker = [sys.executable, str(WORKER), recipe, str(tmp_path / "killed"), str(kill_step), *overrides]
    done = subprocess.run(worker, capture_output=True, text=True, timeout=300, env=subprocess_env())
    assert done.returncode == -signal.SIGKILL, (kill_step, done.stderr[-2000:])
    run = _only_run(tmp_path / "killed")
    last = checkpoints_in(run / "checkpoints")[-1]
    assert int(last.name.removeprefix("step-")) == (kill_step - 1) // 3 * 3, kill_step
    resumed = run_config(load_config(run / "config.toml"), run_root=tmp_path / "killed", progress=False, resume=run)
    _assert_same_training(full, resumed)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_saves_a_checkpoint_and_says_how_to_resume(tmp_path: Path, sig: signal.Signals) -> None:
    command = [sys.executable, "-m", "trainwise.cli", "fit", *CPU_ARGS, "w3-dynamic", "--quiet", "--runs-dir",
               str(tmp_path), "--set", "train.epochs=1000000", "--set", "checkpoint.every_steps=200"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("*/checkpoints/step-*/state.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(sig)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    run = _only_run(tmp_path)
    assert f"resume with `trainwise fit --resume {run.name}`" in err
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"
    last = checkpoints_in(run / "checkpoints")[-1]
    state = json.loads((last / "state.json").read_text())
    assert state["step"] % 200 != 0 or state["step"] == int(err.split("step ")[1].split(";")[0])  # saved on the signal
    done = state["epoch"] + (1 if state["batch"] else 0)
    code = main(
        [
            "fit",
            *CPU_ARGS,
            "--resume",
            run.name,
            "--quiet",
            "--runs-dir",
            str(tmp_path),
            "--set",
            f"train.epochs={done + 3}",
        ]
    )
    assert code == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == done + 3


def _checkpointed_w3(tmp_path: Path, *overrides: str) -> Path:
    run_recipe(
        "w3-dynamic",
        ["train.epochs=6", "checkpoint.every_epochs=2", CPU, *overrides],
        progress=False,
        run_root=tmp_path,
    )
    return _only_run(tmp_path)


def test_checkpoints_keep_the_last_k_and_the_best(tmp_path: Path) -> None:
    run = _checkpointed_w3(tmp_path, "checkpoint.keep_last=1", "train.epochs=8")
    names = [path.name for path in checkpoints_in(run / "checkpoints")]
    losses = json.loads((checkpoints_in(run / "checkpoints")[-1] / "state.json").read_text())["history"]["loss"]
    best_epoch = min(range(1, 8, 2), key=lambda e: losses[e])  # checkpoints at epochs 2, 4, 6, 8 (index 1, 3, ...)
    assert names[-1] == "step-000000008" and f"step-{best_epoch + 1:09d}" in names
    assert len(names) == (1 if best_epoch == 7 else 2)
    assert (
        trainwise_checkpoint.best_checkpoint(run / "checkpoints") == run / "checkpoints" / f"step-{best_epoch + 1:09d}"
    )


def test_a_truncated_checkpoint_is_named_and_the_one_before_is_used(tmp_path: Path) -> None:
    run = _checkpointed_w3(tmp_path)
    older, latest = checkpoints_in(run / "checkpoints")
    weights = latest / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(TrainwiseError, match=r"truncated checkpoint, weights\.safetensors has 100 bytes of"):
        TrainingCheckpoint.read(latest)
    with pytest.warns(UserWarning, match="skipped a damaged checkpoint"):
        assert TrainingCheckpoint.read(run).path == older


def test_a_checkpoint_of_another_version_or_architecture_is_refused(tmp_path: Path) -> None:
    run = _checkpointed_w3(tmp_path)
    latest = checkpoints_in(run / "checkpoints")[-1]
    with pytest.raises(TrainwiseError, match=r"does not fit the model \(.*size mismatch"):
        run_recipe("w3-dynamic", ["train.epochs=6", "model.hidden=7", CPU], progress=False, resume=latest)
    with pytest.raises(
        TrainwiseError, match="training on 64 samples in 1 batches per epoch; this run has 32 samples in 1"
    ):
        run_recipe("w3-dynamic", ["train.epochs=6", "data.n_samples=32", CPU], progress=False, resume=latest)
    state = json.loads((latest / "state.json").read_text())
    (latest / "state.json").write_text(json.dumps({**state, "version": 99}))
    with pytest.raises(TrainwiseError, match="checkpoint format version 99; this trainwise reads version 1"):
        TrainingCheckpoint.read(latest)


def test_a_cli_resume_of_a_run_without_checkpoints_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_recipe("w1-normalized", ["train.epochs=5", "checkpoint.enabled=false", CPU], progress=False, run_root=tmp_path)
    assert main(["fit", *CPU_ARGS, "--resume", "latest", "--runs-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: resume: no checkpoint in ")


def test_a_dataset_run_resumes_mid_epoch_bit_for_bit(tmp_path: Path) -> None:
    """A torch Dataset (streamed through a shuffling DataLoader) with dropout: the sampler's order and the
    dropout masks after the resume are those of the uninterrupted run."""
    generator = torch.Generator().manual_seed(3)
    X, y = torch.randn(200, 5, generator=generator), torch.randint(0, 3, (200,), generator=generator)
    dataset = torch.utils.data.TensorDataset(X, y)

    def train(root: Path, *callbacks: Callback, resume: Path | None = None) -> trainwise.FitResult:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
        return trainwise.fit(model, dataset, loss="cross_entropy", optimizer="adam", lr=1e-2, epochs=3, device="cpu",
                             batch_size=16, metrics=["accuracy"], progress=False, doctor="off", run_dir=root,
                             callbacks=[Checkpoint(every_steps=5), *callbacks], resume=resume)  # fmt: skip

    full = train(tmp_path / "full")
    with pytest.raises(RuntimeError, match="stop here"):
        train(tmp_path / "cut", RaiseAt(20))  # 13 batches an epoch: step 20 is inside the second epoch
    resumed = train(tmp_path / "cut", resume=_only_run(tmp_path / "cut"))
    assert all(torch.equal(a, b) for a, b in zip(full.model.parameters(), resumed.model.parameters(), strict=True))
    assert resumed.history["loss"] == full.history["loss"]
    assert resumed.history["accuracy"] == full.history["accuracy"]


def test_accumulation_and_ema_resume_bit_for_bit(tmp_path: Path) -> None:
    """Checkpoints come at optimizer steps (never between accumulated batches) and keep the weights' average
    and the trained weights apart: the resumed run ends as the uninterrupted one."""
    generator = torch.Generator().manual_seed(3)
    X, y = torch.randn(90, 5, generator=generator), torch.randint(0, 3, (90,), generator=generator)

    def train(root: Path, *callbacks: Callback, resume: Path | None = None) -> trainwise.FitResult:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))
        return trainwise.fit(model, (X, y), loss="cross_entropy", optimizer="adam", lr=1e-2, epochs=3, device="cpu",
                             batch_size=10, accumulate=2, ema=0.9, val_split=0.2, progress=False, doctor="off",
                             val_every_steps=3, run_dir=root, callbacks=[Checkpoint(every_steps=3), *callbacks],
                             resume=resume)  # fmt: skip

    full = train(tmp_path / "full")
    with pytest.raises(RuntimeError, match="stop here"):
        train(tmp_path / "cut", RaiseAt(7))  # 8 batches, 4 steps an epoch: step 7 ends in the second epoch
    run = _only_run(tmp_path / "cut")
    assert [path.name for path in checkpoints_in(run / "checkpoints")][-1] == "step-000000006"
    resumed = train(tmp_path / "cut", resume=run)
    assert all(torch.equal(a, b) for a, b in zip(full.model.parameters(), resumed.model.parameters(), strict=True))
    assert resumed.history["loss"] == full.history["loss"] and resumed.history["val_loss"] == full.history["val_loss"]
    # the validations within epochs too (step 6's came before the checkpoint at step 6)
    assert resumed.validations == full.validations and full.validations["step"] == [3, 4, 6, 8, 9, 12]
