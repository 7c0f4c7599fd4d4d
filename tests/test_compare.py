"""Tests for trainwise.comparison: grids of W1/W3 trainings and recorded runs, ranked and plotted.

The numbers come from the seed workloads (../shared/seed-workloads.md): W1 on inputs scaled by 0.1 for
200 epochs ends at loss 16.6081 with SGD lr 1e-2 and 28.0820 with lr 1e-3; on raw inputs lr 1e-2 turns
non-finite at epoch 11 and lr 1e-4 reaches the book's 29.022667 at epoch 100.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

import trainwise
from tests.test_cli import one_error_line, run_main
from trainwise.comparison import CompareRow, Comparison, compare_runs, parse_vary, rank
from trainwise.config import load_config
from trainwise.errors import ConfigError, TrainwiseError
from trainwise.recipes import run_config, run_recipe

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# every training here runs on the CPU, on any machine: the expected losses are the CPU's ("auto" would pick a GPU)
CPU = "train.device=cpu"
SHORT = ["train.epochs=200", CPU]
QUIET = ["train.doctor=quiet"]  # the doctor still runs and counts findings, it just prints nothing


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's tables at one width, whatever COLUMNS the terminal running the tests exports."""
    monkeypatch.setenv("COLUMNS", "200")


def run_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def rendered(renderable: Any) -> str:
    console = Console(width=250, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


@pytest.fixture(scope="module")
def w1_lr() -> Comparison:
    """W1 normalized, 200 epochs, SGD at lr 1e-3 and 1e-2 (not recorded)."""
    return trainwise.compare("w1-normalized", {"optim.lr": ["1e-3", "1e-2"]}, overrides=SHORT)


@pytest.fixture(scope="module")
def w1_raw() -> Comparison:
    """W1 on raw inputs, 30 epochs: lr 1e-2 diverges, lr 1e-4 does not."""
    return trainwise.compare(
        "w1-raw-lr1e-2", {"optim.lr": ["1e-2", "1e-4"]}, overrides=["train.epochs=30", *QUIET, CPU]
    )


@pytest.fixture(scope="module")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-class TOML config on 2-D blobs with val and test splits, trained on the CPU. Its bias starts at
    (5, -5), so every sample is called class 0 (accuracy 0.5) until training moves the bias: a tiny lr never gets
    there."""
    folder = tmp_path_factory.mktemp("blobs")
    rng = np.random.default_rng(0)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % 2
        X = rng.normal(size=(n, 2)) + np.where(y[:, None] == 1, 2.0, -2.0)
        return X.astype(np.float32), y.astype(np.int64)

    (X, y), (X_val, y_val), (X_test, y_test) = split(200), split(100), split(100)
    np.savez(folder / "blobs.npz", X=X, y=y, X_val=X_val, y_val=y_val, X_test=X_test, y_test=y_test)
    config = folder / "blobs.toml"
    config.write_text(
        f'[data]\nname = "{folder / "blobs.npz"}"\n\n'
        '[model]\nname = "linear"\ninit = { weight = 0.0, bias = [5.0, -5.0] }\n\n'
        '[loss]\nname = "cross_entropy"\n\n[optim]\nname = "sgd"\nlr = 1e-3\n\n'
        '[train]\nepochs = 20\nmetrics = ["accuracy"]\ndoctor = "quiet"\ndevice = "cpu"\n'
    )
    return config


# --- training a grid ------------------------------------------------------------------------------


def test_w1_lr_1e2_ranks_above_1e3_with_the_losses_of_a_direct_run(w1_lr: Comparison) -> None:
    assert [row.values for row in w1_lr.rows] == [{"optim.lr": "1e-2"}, {"optim.lr": "1e-3"}]
    assert [row.rank for row in w1_lr.rows] == [1, 2]
    assert w1_lr.best is w1_lr.rows[0]
    assert w1_lr.keys == ["optim.lr"]
    for row in w1_lr.rows:
        direct = run_recipe("w1-normalized", [*SHORT, f"optim.lr={row.values['optim.lr']}"], progress=False)
        assert row.final_loss == direct.fit.history["loss"][-1]  # the same run, bit for bit
        assert row.loss == direct.fit.history["loss"]
    assert w1_lr.rows[0].final_loss == pytest.approx(16.6081, abs=1e-3)
    assert w1_lr.rows[1].final_loss == pytest.approx(28.0820, abs=1e-3)
    # the loss still falls at epoch 200, so the best epoch is the last; a healthy run has no findings
    assert [(row.best_epoch, row.best_loss) for row in w1_lr.rows] == [(200, row.final_loss) for row in w1_lr.rows]
    assert all(row.findings == {} and row.status == "completed" and row.run is None for row in w1_lr.rows)
    assert all(0.0 < row.seconds < 10.0 for row in w1_lr.rows)


def test_grid_over_two_keys_trains_every_combination() -> None:
    comparison = trainwise.compare("w1-normalized", {"optim.name": ["sgd", "adam"], "optim.lr": [1e-3, 1e-2]},
                                   overrides=SHORT)  # fmt: skip
    # Python floats are written as config text (repr), so 1e-2 shows as 0.01
    assert [(row.values["optim.name"], row.values["optim.lr"]) for row in comparison.rows] == [
        ("sgd", "0.01"),
        ("sgd", "0.001"),
        ("adam", "0.01"),
        ("adam", "0.001"),
    ]
    losses = [row.final_loss for row in comparison.rows]
    assert losses == sorted(losses)
    assert losses == pytest.approx([16.6081, 28.0820, 31.0992, 64.9739], abs=1e-3)
    assert comparison.rows[2].label == "optim.name=adam, optim.lr=0.01"


def test_a_diverged_run_ranks_last_and_shows_diverged(w1_raw: Comparison) -> None:
    stable, diverged = w1_raw.rows
    assert stable.values == {"optim.lr": "1e-4"} and not stable.diverged
    assert stable.final_loss == pytest.approx(29.0867, abs=1e-3)
    assert diverged.values == {"optim.lr": "1e-2"}
    assert diverged.diverged and math.isnan(diverged.final_loss)
    assert diverged.diverged_at == 11  # float32 overflows at epoch 11, as the seed workload says
    assert (diverged.best_epoch, diverged.best_loss) == (1, pytest.approx(1763.8848, abs=1e-3))
    assert diverged.findings == {"error": 1, "warning": 2}  # nonfinite-loss; unscaled-inputs, lr-too-high
    assert stable.findings == {"warning": 1}  # unscaled-inputs
    text = rendered(w1_raw.table())
    assert "diverged (epoch 11)" in text and "1 error, 2 warnings" in text
    assert w1_raw.to_dicts()[1]["diverged"] is True and w1_raw.to_dicts()[1]["diverged_at"] == 11


def test_a_run_the_doctor_stops_ranks_last_and_the_grid_goes_on() -> None:
    comparison = trainwise.compare(
        "w1-raw-lr1e-2", {"optim.lr": ["1e-2", "1e-4"]}, overrides=["train.epochs=30", "train.doctor=stop", CPU]
    )
    stopped = comparison.rows[1]
    assert (stopped.values, stopped.status, stopped.findings["error"]) == ({"optim.lr": "1e-2"}, "failed", 1)
    # stopped at the end of epoch 11, whose full-batch loss was the first non-finite one
    assert len(stopped.loss) == 11 and all(map(math.isfinite, stopped.loss[:10])) and stopped.loss[10] == math.inf
    assert comparison.rows[0].status == "completed"
    assert comparison.rows[0].final_loss == pytest.approx(29.0867, abs=1e-3)


def test_grid_over_a_list_valued_key_on_w3() -> None:
    assert parse_vary(["model.hidden=[100],[50, 50]"]) == {"model.hidden": ["[100]", "[50, 50]"]}
    comparison = trainwise.compare(
        "w3-sequential-sgd", {"model.hidden": ["[100]", "[50, 50]"]}, overrides=["train.epochs=20", *QUIET, CPU]
    )
    assert {row.values["model.hidden"] for row in comparison.rows} == {"[100]", "[50, 50]"}
    direct = run_recipe("w3-sequential-sgd", ["train.epochs=20", *QUIET, CPU, "model.hidden=[50, 50]"], progress=False)
    (deep,) = [row for row in comparison.rows if row.values["model.hidden"] == "[50, 50]"]
    assert deep.final_loss == direct.fit.history["loss"][-1]
    assert deep.findings == {"info": 1}  # W3 sums its squared errors: sum-reduction


def test_a_config_object_can_be_compared() -> None:
    config = load_config("w1-normalized", ["train.epochs=50", CPU])
    comparison = trainwise.compare(config, {"optim.lr": ["1e-2"]})
    assert comparison.rows[0].final_loss == run_config(config, progress=False).fit.history["loss"][-1]


# --- ranking --------------------------------------------------------------------------------------


def test_rank_by_accuracy_is_descending_and_by_loss_ascending(blobs: Path) -> None:
    by_accuracy = trainwise.compare(blobs, {"optim.lr": ["1e-3", "1.0", "0.1"]}, rank_by="val_accuracy")
    assert [row.values["optim.lr"] for row in by_accuracy.rows] == ["1.0", "0.1", "1e-3"]
    accuracies = [row.metric("val_accuracy") for row in by_accuracy.rows]
    assert accuracies == pytest.approx([0.97, 0.85, 0.5])
    assert by_accuracy.rows[2].metric("test_accuracy") == 0.5  # the (5, -5) bias still calls everything class 0
    assert "ranked by val_accuracy, highest first" in rendered(by_accuracy)
    assert by_accuracy.metric_names() == ["accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy"]

    by_val_loss = rank(by_accuracy.rows, keys=by_accuracy.keys, rank_by="val_loss")
    val_losses = [row.metric("val_loss") for row in by_val_loss.rows]
    assert val_losses == sorted(val_losses) and val_losses[-1] == pytest.approx(4.9135, abs=1e-3)


def _row(label: str, loss: list[float], **final: float) -> CompareRow:
    return CompareRow(label, {"x": label}, loss, {"loss": loss[-1], **final}, 0.1)


def test_rank_puts_diverged_and_metricless_runs_last() -> None:
    rows = [
        _row("a", [1.0, 0.5], test_accuracy=0.7),
        _row("nan", [1.0, math.nan], test_accuracy=0.99),  # diverged: last, whatever its accuracy
        _row("none", [1.0, 0.2]),  # never measured the metric: after the ones that did
        _row("b", [1.0, 0.4], test_accuracy=0.9),
    ]
    ranked = rank(rows, keys=["x"], rank_by="test_accuracy")
    assert [row.label for row in ranked.rows] == ["b", "a", "none", "nan"]
    assert [row.rank for row in ranked.rows] == [1, 2, 3, 4]
    assert [row.label for row in rank(rows, keys=["x"]).rows] == ["none", "b", "a", "nan"]
    with pytest.raises(TrainwiseError, match=r"^rank by 'val_r2': no run logged it; these runs logged loss, "):
        rank(rows, keys=["x"], rank_by="val_r2")


def test_table_and_html_show_the_same_cells(w1_lr: Comparison) -> None:
    text = rendered(w1_lr)  # __rich__
    first = next(line for line in text.splitlines() if "1e-2" in line)
    assert "16.6081" in first and "16.6081 (200)" in first and "none" in first
    assert "ranked by loss, lowest first; diverged runs last" in text
    page = w1_lr._repr_html_()
    assert page.count("<tr") == 3 and page.count("<table>") == 1  # the header and one row per run
    assert "<th>final loss</th>" in page
    assert "<td>1e-2</td><td>16.6081</td><td>16.6081 (200)</td>" in page


def test_print_table_prints_the_text_table_the_cli_shows(w1_lr: Comparison, capsys: pytest.CaptureFixture[str]) -> None:
    print(w1_lr.table())
    printed = capsys.readouterr().out
    assert "rich.table.Table object" not in printed and "\x1b[" not in printed
    lines = printed.splitlines()
    assert lines[0].strip() == "w1-normalized"
    first = next(line for line in lines if "1e-2" in line)
    cells = [cell.strip() for cell in first.split("│")[1:-1]]
    assert cells[:4] == ["1", "1e-2", "16.6081", "16.6081 (200)"] and cells[-1] == "none"
    assert "ranked by loss, lowest first; diverged runs last" in printed
    # the same table as a rich Console (the CLI's) renders from the Comparison itself
    assert [line.rstrip() for line in rendered(w1_lr).splitlines()] == [line.rstrip() for line in lines]


def test_reprs_are_short_and_summarize_the_loss_curves(w1_lr: Comparison) -> None:
    best = repr(w1_lr.best)
    assert best.startswith("CompareRow(rank=1, label='optim.lr=1e-2', final_loss=16.61, best_epoch=200, ")
    assert "loss=[200 values]" in best and len(best) < 200
    assert repr(w1_lr) == "Comparison(title='w1-normalized', rank_by='loss', runs=2, best='optim.lr=1e-2')"


# --- the plot -------------------------------------------------------------------------------------


def test_plot_overlays_one_curve_per_run_and_writes_a_png(w1_lr: Comparison, tmp_path: Path) -> None:
    path = tmp_path / "sub" / "compare.png"
    fig = w1_lr.plot(path)
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    (ax,) = fig.axes
    assert len(ax.lines) == 2
    assert [line.get_label() for line in ax.lines] == ["optim.lr=1e-2", "optim.lr=1e-3"]
    assert list(ax.lines[0].get_ydata()) == w1_lr.rows[0].loss
    assert ax.get_yscale() == "linear"  # 80.4 down to 16.6: less than a factor of 100


def test_plot_keeps_a_diverged_run_from_squashing_the_others(w1_raw: Comparison, tmp_path: Path) -> None:
    fig = w1_raw.plot(tmp_path / "raw.png")
    (ax,) = fig.axes
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["optim.lr=1e-4", "optim.lr=1e-2 (non-finite from epoch 11)"]
    # the diverged run's last finite loss is 9.1e34; the axis ends near the runs' start at 1764
    assert max(w1_raw.rows[1].loss[:10]) > 1e34
    assert 1763.88 < ax.get_ylim()[1] < 3000.0


# --- recorded runs --------------------------------------------------------------------------------


def test_runs_compare_reproduces_recorded_losses_and_differing_keys(tmp_path: Path) -> None:
    grid = trainwise.compare("w1-normalized", {"optim.lr": ["1e-3", "1e-2"]}, overrides=SHORT, run_root=tmp_path)
    ids = [row.run for row in grid.rows]
    assert all(ids) and len(run_folders(tmp_path)) == 2
    recorded = compare_runs([str(ids[1]), str(ids[0])], runs_dir=tmp_path)
    assert recorded.keys == ["run", "optim.lr"]
    assert [(row.run, row.values["optim.lr"]) for row in recorded.rows] == [(ids[0], "0.01"), (ids[1], "0.001")]
    assert [row.final_loss for row in recorded.rows] == [row.final_loss for row in grid.rows]
    assert [row.loss for row in recorded.rows] == [row.loss for row in grid.rows]
    for row in recorded.rows:
        summary = json.loads((tmp_path / str(row.run) / "summary.json").read_text())
        assert row.final_loss == summary["final"]["loss"]
        assert row.seconds == summary["seconds"]


def test_runs_compare_lists_only_the_keys_that_differ(tmp_path: Path) -> None:
    for recipe in ("w1-raw-lr1e-4", "w1-normalized"):
        run_config(load_config(recipe, ["train.epochs=100", *QUIET, CPU]), run_root=tmp_path, progress=False)
    raw, normalized = sorted(run_folders(tmp_path), key=lambda p: "normalized" in p.name)
    comparison = compare_runs([str(raw), str(normalized)], runs_dir=tmp_path)
    assert comparison.keys == ["run", "name", "data.normalize", "optim.lr"]
    assert comparison.title == "runs"
    by_name = {row.values["name"]: row for row in comparison.rows}
    assert by_name["w1-raw-lr1e-4"].values["data.normalize"] == "none"
    assert by_name["w1-raw-lr1e-4"].final_loss == pytest.approx(29.022667, abs=1e-4)  # the book's epoch 100
    assert by_name["w1-normalized"].values["optim.lr"] == "0.01"
    assert by_name["w1-raw-lr1e-4"].findings == {"warning": 1}  # unscaled-inputs, read from findings.json


def test_cli_runs_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = trainwise.compare("w1-normalized", {"optim.lr": ["1e-3", "1e-2"]}, overrides=SHORT, run_root=tmp_path)
    ids = [str(row.run) for row in grid.rows]
    code, out, err = run_main(capsys, "runs", "compare", *ids, "--runs-dir", str(tmp_path), "--json")
    assert code == 0
    rows = json.loads(out)
    assert [(r["run"], r["final_loss"]) for r in rows] == [(row.run, row.final_loss) for row in grid.rows]
    assert err.strip() == f"plot: {tmp_path / 'compare-runs.png'}"
    assert (tmp_path / "compare-runs.png").read_bytes().startswith(PNG_SIGNATURE)
    # options before the action are kept; `runs` alone still lists
    code, out, _ = run_main(capsys, "runs", "--json", "--runs-dir", str(tmp_path), "compare", ids[1], "latest")
    assert code == 0 and len(json.loads(out)) == 2
    code, out, _ = run_main(capsys, "runs", "--json", "--runs-dir", str(tmp_path))
    assert code == 0 and sorted(r["id"] for r in json.loads(out)) == sorted(ids)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda run: (run / "metrics.csv").unlink(), "metrics.csv is missing from {run}; the run did not finish "),
        (lambda run: (run / "summary.json").write_text("{"), "summary.json in {run} is not valid JSON ("),
        (lambda run: (run / "metrics.csv").write_text("epoch,lr\n1,0.1\n"), "metrics.csv in {run} has no loss column"),
    ],
)
def test_runs_compare_names_the_run_and_the_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: Any, message: str
) -> None:
    for _ in range(2):
        run_config(load_config("w1-normalized", ["train.epochs=5", CPU]), run_root=tmp_path, progress=False)
    first, second = run_folders(tmp_path)
    damage(second)
    code, out, err = run_main(capsys, "runs", "compare", first.name, second.name, "--runs-dir", str(tmp_path))
    assert (code, out) == (2, "")
    assert one_error_line(err).startswith(f"error: run {second.name}: " + message.format(run=second))


def test_runs_compare_refuses_a_run_listed_twice(tmp_path: Path) -> None:
    run_config(load_config("w1-normalized", ["train.epochs=5", CPU]), run_root=tmp_path, progress=False)
    (run,) = run_folders(tmp_path)
    with pytest.raises(TrainwiseError, match=rf"^run {run.name} is listed twice \(as 'latest'\); list each run once$"):
        compare_runs([run.name, "latest"], runs_dir=tmp_path)


# --- the compare command --------------------------------------------------------------------------


def test_cli_compare_prints_the_ranked_table_and_writes_the_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    args = ["compare", "w1-normalized", "--vary", "optim.lr=1e-3,1e-2", "--set", "train.epochs=200"]
    code, out, err = run_main(capsys, *args, "--runs-dir", str(runs))
    assert code == 0
    assert err.splitlines() == ["[1/2] optim.lr=1e-3", "[2/2] optim.lr=1e-2"]
    table = [line for line in out.splitlines() if "1e-" in line]
    assert "1e-2" in table[0] and "16.6081" in table[0] and "1e-3" in table[1] and "28.082" in table[1]
    plot = runs / "compare-w1-normalized.png"
    assert out.splitlines()[-2:] == ["best: optim.lr=1e-2", f"plot: {plot}"]
    assert plot.read_bytes().startswith(PNG_SIGNATURE)
    assert len(run_folders(runs)) == 2  # each combination recorded like `trainwise fit`

    code, out, err = run_main(capsys, *args, "--json", "--rank-by", "loss", "--plot", str(tmp_path / "c.png"))
    rows = json.loads(out)
    assert code == 0 and [r["values"]["optim.lr"] for r in rows] == ["1e-2", "1e-3"]
    assert [r["final_loss"] for r in rows] == pytest.approx([16.6081, 28.0820], abs=1e-3)
    assert rows[0]["findings"] == {"error": 0, "warning": 0, "info": 0} and rows[0]["epochs"] == 200
    assert err.strip() == f"plot: {tmp_path / 'c.png'}"


def test_cli_compare_json_has_no_nan_for_a_diverged_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--set", "train.epochs=20", "--set", "train.doctor=quiet", "--json", "--runs-dir", str(tmp_path)]
    code, out, _ = run_main(capsys, "compare", "w1-raw-lr1e-2", "--vary", "optim.lr=1e-2,1e-4", *args)
    rows = json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert code == 0
    assert [(r["values"]["optim.lr"], r["diverged"], r["final_loss"]) for r in rows][1] == ("1e-2", True, None)


def test_cli_compare_rank_by_test_accuracy(blobs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "compare", str(blobs), "--vary", "optim.lr=1e-3,1.0", "--rank-by",
                            "test_accuracy", "--json", "--runs-dir", str(tmp_path))  # fmt: skip
    rows = json.loads(out)
    assert code == 0
    assert [(r["values"]["optim.lr"], r["metrics"]["test_accuracy"]) for r in rows] == [("1.0", 0.98), ("1e-3", 0.5)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--vary", "optim.lr"], "--vary 'optim.lr': expected section.key=value1,value2,..., e.g. --vary "
         "optim.lr=1e-3,1e-2"),
        (["--vary", "optim.lr="], "--vary 'optim.lr=': no values after '='; e.g. --vary optim.lr=1e-3,1e-2"),
        (["--vary", "optim.lr=1e-3", "--vary", "optim.lr=1e-2"], "--vary optim.lr: the key is given twice; list all "
         "its values in one --vary optim.lr=a,b,c"),
        (["--vary", "optim.lr=1e-3,,1e-2"], "--vary optim.lr: an empty value in '1e-3,,1e-2'; remove the extra comma"),
        (["--vary", "optim.lr=1e-3,1e-3"], "--vary optim.lr: the value 1e-3 is listed twice; list each value once"),
        (["--vary", "optim.lrr=1e-3,1e-2"], "combination optim.lrr=1e-3: optim.lrr: unknown key (did you mean lr?); "),
        # a typo in the third value fails before the first two train
        (["--vary", "optim.lr=1e-3,1e-2,abc"], "combination optim.lr=abc: optim.lr: must be a valid number"),
        (["--vary", "optim.lr=1,2,3,4,5,6,7,8,9", "--vary", "train.seed=1,2,3,4,5,6,7,8"], "--vary: 9 x 8 = 72 "
         "combinations is more than 64; vary fewer keys or values, or raise the limit with --max-runs"),
        (["--vary", "optim.lr=1e-3,1e-2", "--max-runs", "1"], "--vary: 2 combinations is more than 1; "),
        (["--vary", "optim.lr=1e-3", "--rank-by", "test_acuracy"], "rank by 'test_acuracy': not a metric these "
         "runs log; choose from loss, val_loss, test_loss"),
        (["--vary", "optim.lr=1e-3", "--rank-by", "val_loss"], "rank by 'val_loss': temperature has no validation "
         "data in these runs; set data.val_split, e.g. --set data.val_split=0.2"),
        ([], "trainwise compare: the following arguments are required: --vary; "),
    ],
)  # fmt: skip
def test_cli_compare_mistakes_are_one_line_and_train_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run_main(capsys, "compare", "w1-normalized", *args, "--runs-dir", str(tmp_path / "runs"))
    assert (code, out) == (2, "")
    assert one_error_line(err).startswith(f"error: {message}")
    assert run_folders(tmp_path / "runs") == []


def test_python_api_mistakes() -> None:
    with pytest.raises(ConfigError, match=r"^vary\['optim.name'\]: give a list of values"):
        trainwise.compare("w1-normalized", {"optim.name": "sgd,adam"})
    with pytest.raises(ConfigError, match=r"^nothing to vary"):
        trainwise.compare("w1-normalized", {})
    with pytest.raises(ConfigError, match=r"^--vary optim.lr: the value 0.01 is listed twice"):
        trainwise.compare("w1-normalized", {"optim.lr": [0.01, 1e-2]})
    with pytest.raises(ConfigError, match=r"^no-such: no such recipe or file"):
        trainwise.compare("no-such", {"optim.lr": [0.01]})
