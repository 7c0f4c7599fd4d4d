"""Tests for the command line: as a subprocess (`python -m trainwise`) and in-process (`cli.main`).

One W1 fit, made once for the module, serves evaluate, predict, runs and the error cases that need a run.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import RECIPE_NAMES, subprocess_env
from trainwise import cli
from trainwise.checkpoint import load as trainwise_load

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# W1: the thermometer readings of "Deep Learning with PyTorch", chapter 5
T_U = [35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4]
T_C = [0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0]
W1_LOSS = 2.927647  # the book's loss after 5000 epochs at lr 1e-2 on inputs scaled by 0.1
RECIPES = RECIPE_NAMES


def _no_nan(constant: str) -> Any:
    raise AssertionError(f"JSON output holds {constant}, which is not JSON")


def strict_json(text: str) -> Any:
    """json.loads that, unlike the default, rejects NaN and Infinity."""
    return json.loads(text, parse_constant=_no_nan)


# commands that train (or sweep) a config: on the CPU, on any machine ("auto" would pick a GPU, and the tests
# compare with the CPU's numbers); a --set of the test's own that comes later still wins
TRAINING_COMMANDS = ("fit", "lr-find", "compare")


def on_cpu(args: Sequence[str]) -> list[str]:
    if args and args[0] in TRAINING_COMMANDS:
        return [args[0], "--set", "train.device=cpu", *args[1:]]
    return list(args)


def trainwise(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m trainwise ARGS` with TRAINWISE_HOME=home (this checkout's src first on PYTHONPATH, a wide
    console), stdout and stderr captured."""
    env = subprocess_env(TRAINWISE_HOME=str(home), COLUMNS="200")
    env.pop("TRAINWISE_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "trainwise", *on_cpu(args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """cli.main in-process: (exit code, stdout, stderr)."""
    code = cli.main(on_cpu(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-home")


@pytest.fixture(scope="module")
def w1(home: Path) -> dict[str, Any]:
    """`trainwise fit w1-normalized --json`, run once: its summary."""
    result = trainwise(home, "fit", "w1-normalized", "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return dict(strict_json(result.stdout))


@pytest.fixture
def in_home(home: Path, w1: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Path:
    """In-process commands see the module's runs folder, holding the W1 run."""
    monkeypatch.setenv("TRAINWISE_HOME", str(home))
    return home


def trained_line(run: Path) -> tuple[float, float]:
    """(w, b) of a recorded W1 linear model."""
    weights = load_file(str(run / "model.safetensors"))
    return float(weights["weight"].reshape(())), float(weights["bias"].reshape(()))


# --- recipes ---------------------------------------------------------------------------------------


def test_recipes_lists_all(tmp_path: Path) -> None:
    result = trainwise(tmp_path, "recipes")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    listed = re.findall(r"^\S\s+(w\d-[\w.-]+)\s", result.stdout, flags=re.MULTILINE)
    assert listed == RECIPES
    assert "Linear fit on inputs scaled by 0.1, lr 1e-2, 5000 epochs" in result.stdout


# --- fit -------------------------------------------------------------------------------------------


def test_fit_json_summary_and_record(w1: dict[str, Any]) -> None:
    assert w1["recipe"] == "w1-normalized"
    assert w1["status"] == "completed"
    assert w1["epochs"] == 5000
    assert w1["final"]["loss"] == pytest.approx(W1_LOSS, abs=1e-4)
    assert w1["final"]["lr"] == 0.01
    assert w1["best"]["loss"] <= w1["final"]["loss"]
    assert "test" not in w1  # W1 has no test split
    run = Path(w1["run"])
    assert run.is_dir()
    for name in (
        "config.toml",
        "metrics.csv",
        "model.safetensors",
        "model.json",
        "loss-curve.png",
        "fit.png",
        "summary.json",
        "transform.json",
    ):
        assert (run / name).is_file(), name
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 5001
    assert rows[0].split(",")[:2] == ["epoch", "loss"]
    assert rows[-1].split(",")[0] == "5000"
    assert float(rows[-1].split(",")[1]) == pytest.approx(w1["final"]["loss"], rel=1e-12)
    description = json.loads((run / "model.json").read_text())  # as trainwise.save writes it, plus the input
    assert description["build"] == {
        "kind": "spec",
        "spec": {"name": "linear", "in_features": 1, "out_features": 1, "options": {}},
    }
    assert description["input"] == {"shape": [1], "dtype": "float32"}  # one sample: what `trainwise export` traces
    assert json.loads((run / "transform.json").read_text())["scale"] == [pytest.approx(0.1)]
    w, b = trained_line(run)
    assert (w, b) == (pytest.approx(5.3671, abs=1e-3), pytest.approx(-17.3012, abs=1e-3))


def test_fit_run_appears_in_runs_json(home: Path, w1: dict[str, Any]) -> None:
    result = trainwise(home, "runs", "--json")
    assert result.returncode == 0, result.stderr
    rows = strict_json(result.stdout)
    row = next(r for r in rows if r["path"] == w1["run"])
    assert (row["recipe"], row["status"], row["id"]) == ("w1-normalized", "completed", Path(w1["run"]).name)
    assert row["metrics"]["loss"] == pytest.approx(W1_LOSS, abs=1e-4)


def test_runs_table(
    in_home: Path, w1: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # a terminal's own COLUMNS (80) would cut the run's id short
    code, out, err = run_main(capsys, "runs")
    assert (code, err) == (0, "")
    assert Path(w1["run"]).name in out  # not cut short, although stdout is not a terminal
    assert "w1-normalized" in out and "completed" in out and "2.928" in out


def test_fit_quiet_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "fit", "w1-normalized", "--quiet", "--runs-dir", str(tmp_path))
    assert (code, out, err) == (0, "", "")
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len((run / "metrics.csv").read_text().splitlines()) == 5001


def test_fit_plain_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "fit", "w1-normalized", "--runs-dir", str(tmp_path))
    assert code == 0
    # not a terminal: plain lines every tenth of the run on stderr, the summary on stdout
    epochs = [int(n) for n in re.findall(r"^epoch (\d+)/5000  loss [\d.]+", err, flags=re.MULTILINE)]
    assert epochs == [1, *range(500, 5001, 500)]
    assert re.search(r"^epoch 5000/5000  loss 2\.928 ", err, flags=re.MULTILINE)
    assert "records:" not in err
    assert "w1-normalized: completed, 5000 epochs" in out
    assert re.search(r"loss\s*│\s*2\.92765\s*│", out)
    # the model's summary comes first: the w1 recipe's nn.Linear(1, 1), two parameters
    assert out.index("(shapes for a batch of one)") < out.index("w1-normalized: completed")
    assert "2 parameters (2 trainable, 0 frozen)" in out
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert f"records: {run}" in out


def test_fit_validates_every_n_steps_from_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "steps.toml"
    config.write_text(
        '[data]\nname = "sine"\nn_samples = 200\nval_split = 0.25\n[model]\nname = "mlp"\nhidden = [8]\n'
        '[optim]\nname = "adam"\nlr = 0.01\n[train]\nepochs = 2\nbatch_size = 20\nval_every_steps = 3\n'
    )
    code, _, err = run_main(capsys, "fit", str(config), "--runs-dir", str(tmp_path / "runs"))
    assert code == 0
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    rows = (run / "validations.csv").read_text().splitlines()
    assert rows[0].startswith("step,epoch,loss,val_loss")
    # 8 batches an epoch: within it at steps 3 and 6, then the epoch's end (8); 9, 12, 15, then 16
    assert [float(row.split(",")[0]) for row in rows[1:]] == [3, 6, 8, 9, 12, 15, 16]
    assert re.search(r"^step 3 \(epoch 0\.38\): loss [\d.]+  val_loss [\d.]+$", err, flags=re.MULTILINE)


def test_fit_diverging_run_is_valid_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "fit", "w1-raw-lr1e-2", "--json", "--runs-dir", str(tmp_path))
    assert code == 0  # training finished: a diverged loss is a result, not a crash
    assert "Traceback" not in err
    summary = strict_json(out)  # NaN is written as null
    assert (summary["status"], summary["epochs"]) == ("completed", 100)
    assert summary["final"]["loss"] is None
    assert summary["best"]["epoch"] >= 1 and math.isfinite(summary["best"]["loss"])
    run = Path(summary["run"])
    last = (run / "metrics.csv").read_text().splitlines()[-1].split(",")
    assert last[0] == "100" and not math.isfinite(float(last[1]))
    code, out, _ = run_main(capsys, "runs", "--json", "--runs-dir", str(tmp_path))
    (row,) = strict_json(out)
    assert (row["status"], row["metrics"]["loss"]) == ("completed", None)


@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="needs /usr/share/datasets/fashion-mnist")
def test_fit_w5_reports_test_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(
        capsys,
        "fit",
        "w5-corrected",
        "--set",
        "data.limit=512",
        "--set",
        "train.epochs=1",
        "--json",
        "--runs-dir",
        str(tmp_path),
    )
    assert code == 0, err
    summary = strict_json(out)
    assert (summary["status"], summary["epochs"]) == ("completed", 1)
    test = summary["test"]
    assert set(test) == {"loss", "accuracy"}
    assert 0.0 <= test["accuracy"] <= 1.0
    assert test["accuracy"] * 512 == pytest.approx(round(test["accuracy"] * 512))  # correct / 512 test images
    assert 0.0 < test["loss"] < 10.0
    assert 0.0 <= summary["final"]["accuracy"] <= 1.0
    recorded = json.loads((Path(summary["run"]) / "summary.json").read_text())
    assert recorded["final"]["test_accuracy"] == test["accuracy"]
    # and evaluate on the recorded run measures the same test split
    code, out, err = run_main(capsys, "evaluate", summary["run"], "--json", "--runs-dir", str(tmp_path))
    assert code == 0, err
    evaluated = strict_json(out)
    assert (evaluated["split"], evaluated["samples"]) == ("test", 512)
    assert evaluated["accuracy"] == test["accuracy"]
    assert evaluated["loss"] == pytest.approx(test["loss"], abs=1e-6)


# --- evaluate and predict --------------------------------------------------------------------------


def test_evaluate_matches_the_trained_model(
    in_home: Path, w1: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(capsys, "evaluate", "latest", "--json")
    assert (code, err) == (0, "")
    result = strict_json(out)
    assert (result["run"], result["split"], result["samples"]) == (Path(w1["run"]).name, "train", 11)
    # the loss of the recorded weights, computed here from scratch on the stored normalization (x 0.1)
    w, b = trained_line(Path(w1["run"]))
    expected = float(np.mean([(w * 0.1 * t_u + b - t_c) ** 2 for t_u, t_c in zip(T_U, T_C, strict=True)]))
    assert result["loss"] == pytest.approx(expected, abs=1e-5)
    # the fit's last epoch loss was measured before its last step: close, not equal
    assert result["loss"] == pytest.approx(w1["final"]["loss"], abs=1e-3)
    code, out, _ = run_main(capsys, "evaluate", Path(w1["run"]).name[:15], "--split", "train")
    assert code == 0
    assert out.strip() == f"{Path(w1['run']).name} on train (11 samples): loss {result['loss']:.6g}"


def test_evaluate_missing_split(in_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "evaluate", "latest", "--split", "test")
    assert (code, out) == (2, "")
    assert one_error_line(err) == "error: --split test: temperature has no test split; use --split train"


def test_evaluate_redraws_the_validation_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(
        capsys, "fit", "w1-val-split", "--set", "train.epochs=500", "--json", "--runs-dir", str(tmp_path)
    )
    assert code == 0
    summary = strict_json(out)
    code, out, _ = run_main(capsys, "evaluate", "latest", "--json", "--runs-dir", str(tmp_path))
    assert code == 0
    result = strict_json(out)
    # the last epoch's val_loss is measured after its last step, on the split drawn with the run's seed
    assert (result["split"], result["samples"]) == ("val", 2)
    assert result["loss"] == pytest.approx(summary["final"]["val_loss"], rel=1e-6)
    code, out, _ = run_main(capsys, "evaluate", "latest", "--json", "--split", "train", "--runs-dir", str(tmp_path))
    assert strict_json(out)["samples"] == 9


def test_predict_applies_the_stored_normalization(
    in_home: Path, w1: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = [35.7, 55.9, 81.9, 100.0, -10.0]
    (tmp_path / "x.csv").write_text("\n".join(str(v) for v in raw) + "\n")
    code, out, err = run_main(capsys, "predict", "latest", "--input", str(tmp_path / "x.csv"))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "y0"
    w, b = trained_line(Path(w1["run"]))
    assert [float(v) for v in lines[1:]] == [pytest.approx(w * 0.1 * t_u + b, abs=1e-4) for t_u in raw]
    # a header row is skipped; .npy input and --output give the same numbers
    (tmp_path / "h.csv").write_text("t_u\n" + "\n".join(str(v) for v in raw) + "\n")
    np.save(tmp_path / "x.npy", np.array(raw))
    for source in ("h.csv", "x.npy"):
        destination = tmp_path / f"{source}.out.csv"
        code, out, err = run_main(
            capsys, "predict", "latest", "--input", str(tmp_path / source), "--output", str(destination)
        )
        assert (code, out, err) == (0, "", "")
        assert destination.read_text().splitlines() == lines


def test_predict_image_rows_with_per_channel_scaling(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Images (N, 2, 3, 3) scaled per channel; predict takes them as flat CSV rows or as an image .npy."""
    from trainwise import load
    from trainwise.data import AffineTransform

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2, 3, 3)).astype(np.float32) * np.array([1.0, 50.0], dtype=np.float32)[:, None, None]
    y = rng.integers(0, 3, size=40)
    np.savez(tmp_path / "images.npz", X=X, y=y)
    (tmp_path / "images.toml").write_text(
        f'[data]\nname = "{tmp_path / "images.npz"}"\nnormalize = "standard"\n'
        '[model]\nname = "mlp"\nhidden = [8]\n[loss]\nname = "cross_entropy"\n'
        '[optim]\nname = "adam"\nlr = 0.05\n[train]\nepochs = 20\n'
    )
    runs = str(tmp_path / "runs")
    code, _, err = run_main(capsys, "fit", str(tmp_path / "images.toml"), "--quiet", "--runs-dir", runs)
    assert code == 0, err
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    transform = AffineTransform.from_dict(json.loads((run / "transform.json").read_text()))
    assert tuple(transform.scale.shape) == (2, 1, 1)
    model = load(run)
    model.eval()
    with torch.no_grad():
        expected = model(transform(torch.from_numpy(X))).argmax(dim=1).tolist()
    np.savetxt(tmp_path / "rows.csv", X.reshape(40, -1), delimiter=",")
    np.save(tmp_path / "images.npy", X)
    for source in ("rows.csv", "images.npy"):
        code, out, err = run_main(capsys, "predict", "latest", "--input", str(tmp_path / source), "--runs-dir", runs)
        assert (code, err) == (0, "")
        lines = out.splitlines()
        assert lines[0] == "class"
        assert [int(v) for v in lines[1:]] == expected


# --- mistakes: one line, exit code 2 ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["fit", "no-such-recipe"],
            "error: no-such-recipe: no such recipe or file; `trainwise recipes` lists the recipes, "
            "or pass a .toml path",
        ),
        (
            ["fit", "w1-normalized", "--set", "train.epochz=3"],
            "error: train.epochz: unknown key (did you mean epochs?); [train] takes epochs, batch_size, seed, "
            "device, metrics, clip_grad_norm, max_steps, accumulate, val_every, val_every_steps, ema, early_stopping, "
            "doctor, compile, precision",
        ),
        (
            ["fit", "w1-normalized", "--set", "train.epochs=zero"],
            "error: train.epochs: must be a valid integer (got 'zero')",
        ),
        (
            ["fit", "w1-normalized", "--set", "epochs"],
            "error: --set 'epochs': expected section.key=value, e.g. --set optim.lr=0.001",
        ),
        (["evaluate", "nosuchrun"], "error: no run 'nosuchrun' in {home}/runs; `trainwise runs` lists them"),
        (["fit"], "error: fit: name a recipe or a .toml file to train, or --resume RUN to continue a run"),
    ],
)
def test_mistake_in_subprocess(tmp_path: Path, args: list[str], message: str) -> None:
    result = trainwise(tmp_path, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert one_error_line(result.stderr) == message.format(home=tmp_path)


def test_invalid_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[data]\nname = "temperature\n')
    result = trainwise(tmp_path, "fit", str(path))
    assert (result.returncode, result.stdout) == (2, "")
    assert one_error_line(result.stderr).startswith(f"error: {path}: not valid TOML (")


def test_missing_dataset_file(tmp_path: Path) -> None:
    result = trainwise(tmp_path, "fit", "w1-normalized", "--set", "data.name=/nope.csv")
    assert (result.returncode, result.stdout) == (2, "")
    assert one_error_line(result.stderr).startswith("error: /nope.csv: no such file; check the path")
    assert not (tmp_path / "runs").exists() or not any(p.is_dir() for p in (tmp_path / "runs").iterdir())


def test_predict_missing_input(home: Path, w1: dict[str, Any], tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    result = trainwise(home, "predict", "latest", "--input", str(missing))
    assert (result.returncode, result.stdout) == (2, "")
    assert one_error_line(result.stderr) == (
        f"error: {missing}: no such file; --input takes a .csv or .npy file of input rows"
    )


def test_predict_wrong_width(home: Path, w1: dict[str, Any], tmp_path: Path) -> None:
    wide = tmp_path / "wide.csv"
    wide.write_text("1,2\n3,4\n")
    result = trainwise(home, "predict", "latest", "--input", str(wide))
    assert (result.returncode, result.stdout) == (2, "")
    assert one_error_line(result.stderr) == f"error: {wide}: rows have 2 values but the model takes 1"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "{file}: has no input rows; write one sample per row"),
        ("1\nabc\n", "{file}: cannot read numbers from it ("),
        ("1\n2,3\n", "{file}: cannot read numbers from it ("),
    ],
)
def test_predict_unreadable_input(
    in_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    file = tmp_path / "x.csv"
    file.write_text(content)
    code, out, err = run_main(capsys, "predict", "latest", "--input", str(file))
    assert (code, out) == (2, "")
    assert one_error_line(err).startswith("error: " + message.format(file=file))


def test_predict_other_input_mistakes(in_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.txt").write_text("1\n")
    (tmp_path / "x.csv").write_text("1\n")
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    cases = {
        ("--input", str(tmp_path / "x.txt")): f"error: {tmp_path / 'x.txt'}: unsupported input format '.txt'; "
        "use .csv or .npy",
        ("--input", str(tmp_path)): f"error: {tmp_path}: is a directory; --input takes a .csv or .npy file of "
        "input rows",
        ("--input", str(tmp_path / "s.npy")): f"error: {tmp_path / 's.npy'}: holds <U1 values; save the input rows "
        "as numbers",
        ("--input", str(tmp_path / "x.csv"), "--output", str(tmp_path / "no" / "out.csv")): "error: --output "
        f"{tmp_path / 'no' / 'out.csv'}: cannot write it (No such file or directory)",
    }
    for args, message in cases.items():
        code, out, err = run_main(capsys, "predict", "latest", *args)
        assert (code, out) == (2, "")
        assert one_error_line(err) == message


def test_usage_mistakes_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "bogus")
    assert (code, out) == (2, "")
    assert one_error_line(err) == (
        "error: trainwise: argument COMMAND: invalid choice: 'bogus' (choose from 'fit', 'check', 'doctor', "
        "'gradcheck', 'recipes', 'lr-find', 'evaluate', 'predict', 'export', 'report', 'compare', 'runs'); "
        "see `trainwise --help`"
    )
    code, out, err = run_main(capsys, "evaluate", "latest", "--split", "dev")
    assert code == 2
    assert one_error_line(err).startswith("error: trainwise evaluate: argument --split: invalid choice: 'dev'")
    code, out, err = run_main(capsys, "--help")
    assert (code, err) == (0, "")
    assert out.startswith("usage: trainwise")


def test_unexpected_error_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def broken(args: Any) -> int:
        raise IndexError("Target 9 is out of bounds.\nmore detail")

    monkeypatch.setattr(cli, "cmd_runs", broken)
    code, out, err = run_main(capsys, "runs")
    assert (code, out) == (1, "")
    assert one_error_line(err) == (
        "error: IndexError: Target 9 is out of bounds. (set TRAINWISE_DEBUG=1 to see the traceback)"
    )
    monkeypatch.setenv("TRAINWISE_DEBUG", "1")
    with pytest.raises(IndexError):
        cli.main(["runs"])


# --- runs ------------------------------------------------------------------------------------------


def test_runs_when_there_are_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "runs", "--runs-dir", str(tmp_path / "runs"))
    assert (code, err) == (0, "")
    assert out.strip() == f"no runs in {tmp_path / 'runs'} yet; `trainwise fit RECIPE` makes one"
    code, out, _ = run_main(capsys, "runs", "--json", "--runs-dir", str(tmp_path / "runs"))
    assert (code, strict_json(out)) == (0, [])
    assert not (tmp_path / "runs").exists()  # listing creates nothing


# --- report ----------------------------------------------------------------------------------------

REPORT_SECTIONS = ("config", "summary", "curves", "fit", "findings", "environment", "timings")


def _report_sections(page: Path) -> list[str]:
    return re.findall(r'<section id="([\w-]+)">', page.read_text())


def test_fit_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fit = ("fit", "w1-normalized", "--set", "train.epochs=20")
    code, out, err = run_main(capsys, *fit, "--json", "--runs-dir", str(tmp_path / "json"))
    summary = strict_json(out)  # stdout stays pure JSON: the report line goes to stderr
    page = Path(summary["run"]) / "report.html"
    assert code == 0 and f"report: {page}\n" in err
    assert _report_sections(page) == list(REPORT_SECTIONS)

    code, out, _ = run_main(capsys, *fit, "--runs-dir", str(tmp_path / "plain"))
    (run,) = (tmp_path / "plain").glob("2*")
    assert code == 0 and out.endswith(f"records: {run}\nreport: {run / 'report.html'}\n")

    code, out, err = run_main(capsys, *fit, "--quiet", "--runs-dir", str(tmp_path / "quiet"))
    assert (code, out, err) == (0, "", "")
    (run,) = (tmp_path / "quiet").glob("2*")
    assert (run / "report.html").is_file()  # written, not announced


def test_fit_keeps_the_run_when_the_report_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    def broken(run: Path, **_: Any) -> Path:
        raise RuntimeError("no space left")

    # importlib: `trainwise.run_report` the attribute is the report() function, the module is in sys.modules
    monkeypatch.setattr(importlib.import_module("trainwise.run_report"), "write_report", broken)
    code, out, err = run_main(capsys, "fit", "w1-normalized", "--set", "train.epochs=5", "--runs-dir", str(tmp_path))
    (run,) = tmp_path.glob("2*")
    assert code == 0 and f"records: {run}" in out and "report:" not in out
    assert err.splitlines()[-1] == f"warning: no report for {run.name}: RuntimeError: no space left"
    assert (run / "summary.json").is_file() and not (run / "report.html").exists()


def test_report_command(in_home: Path, w1: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run = Path(w1["run"])
    for ref in ("latest", run.name[:15], str(run)):
        code, out, err = run_main(capsys, "report", ref)
        assert (code, out, err) == (0, f"{run / 'report.html'}\n", ""), ref
    assert _report_sections(run / "report.html") == list(REPORT_SECTIONS)
    assert f"{w1['final']['loss']:.6g}" in (run / "report.html").read_text()  # 2.92765, the book's loss
    code, out, _ = run_main(capsys, "report", "latest", "--output", str(tmp_path / "w1.html"))
    assert (code, out) == (0, f"{tmp_path / 'w1.html'}\n")
    assert (tmp_path / "w1.html").read_text() == (run / "report.html").read_text()


def test_report_of_a_python_fit_outside_the_runs_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trainwise.loop import fit

    data = (torch.tensor(T_U).unsqueeze(1), torch.tensor(T_C).unsqueeze(1))
    quiet = {"progress": False, "doctor": "off", "device": "cpu"}
    result = fit(torch.nn.Linear(1, 1), data, loss="mse", lr=1e-4, epochs=3, run_dir=tmp_path / "mine", **quiet)
    code, out, err = run_main(capsys, "report", str(result.run), "--runs-dir", str(tmp_path / "runs"))
    assert (code, out, err) == (0, f"{result.run / 'report.html'}\n", "")
    assert "No config recorded" in (result.run / "report.html").read_text()


def test_report_unknown_run_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "report", "nosuchrun", "--runs-dir", str(tmp_path))
    assert (code, out) == (2, "")
    assert one_error_line(err) == f"error: no run 'nosuchrun' in {tmp_path}; `trainwise runs` lists them"
    result = trainwise(tmp_path, "report", str(tmp_path / "not-a-run"))
    assert (result.returncode, result.stdout) == (2, "")
    assert one_error_line(result.stderr) == f"error: no run '{tmp_path / 'not-a-run'}' in {tmp_path}/runs; " + (
        "`trainwise runs` lists them"
    )


def test_weights_from_a_pickled_model_need_trust_pickle(
    in_home: Path, w1: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = trainwise_load(w1["run"])
    with torch.no_grad():
        model.weight.fill_(2.0)  # type: ignore[operator]
        model.bias.fill_(-1.0)  # type: ignore[operator]
    pickled, state = tmp_path / "whole.pth", tmp_path / "state.pth"
    torch.save(model, pickled)  # as the W5 write-up saves its model
    torch.save(model.state_dict(), state)
    code, _, err = run_main(capsys, "evaluate", "latest", "--weights", str(pickled))
    assert code == 2 and "holds a pickled Python object" in err and "--trust-pickle" in err
    expected = float(np.mean([(2.0 * 0.1 * t_u - 1.0 - t_c) ** 2 for t_u, t_c in zip(T_U, T_C, strict=True)]))
    for extra in (["--weights", str(pickled), "--trust-pickle"], ["--weights", str(state)]):
        code, out, _ = run_main(capsys, "evaluate", "latest", "--json", *extra)
        assert code == 0 and strict_json(out)["loss"] == pytest.approx(expected, rel=1e-5)


def test_lr_find_names_its_plot_after_the_config_inside_the_runs_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config's name is data: `name = "x/../../../escape"` must not put the default plot outside the runs folder
    (it used to land in tmp_path/a/escape.png)."""
    recipe = (Path(cli.__file__).parent / "recipes" / "w1-normalized.toml").read_text()
    config = tmp_path / "evil.toml"
    config.write_text(f'name = "x/../../../escape"\n{recipe}')
    runs = tmp_path / "a" / "b" / "runs"
    code, out, _ = run_main(
        capsys, "lr-find", str(config), "--steps", "10", "--trial-steps", "0", "--runs-dir", str(runs)
    )
    assert code == 0
    plot = runs / "lr-find-x-..-..-..-escape.png"
    assert plot.is_file() and plot.name in out
    assert [path for path in tmp_path.rglob("*") if path.is_file() and path != config] == [plot]


# --- version and resuming a finished run -------------------------------------------------------------


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    import trainwise as package

    code, out, _ = run_main(capsys, "--version")
    assert (code, out.strip()) == (0, f"trainwise {package.__version__}")


def test_resume_of_a_complete_run_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRAINWISE_HOME", str(tmp_path))
    code, out, err = run_main(capsys, "fit", "w1-normalized", "--set", "train.epochs=20", "--json")
    assert code == 0, err
    run = Path(json.loads(out)["run"])
    before = (run / "metrics.csv").read_text()
    code, out, err = run_main(capsys, "fit", "--resume", "latest")
    assert code == 0, err
    assert out.strip() == (
        f"{run.name} is already complete (20 of 20 epochs trained); nothing to resume. To train it further, "
        "add --set train.epochs=N with N above 20; to train anew, run `trainwise fit` on its recipe"
    )
    assert (run / "metrics.csv").read_text() == before  # nothing retrained or rewritten
    code, out, err = run_main(capsys, "fit", "--resume", "latest", "--set", "train.epochs=25", "--json")
    assert code == 0, err
    assert (json.loads(out)["status"], json.loads(out)["epochs"]) == ("completed", 25)
