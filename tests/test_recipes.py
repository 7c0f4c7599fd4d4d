"""The built-in recipes reproduce the seed workloads' published figures (../shared/seed-workloads.md)."""

import json
import math
from pathlib import Path

import pytest
import torch

from tests.conftest import FASHION_MNIST, RECIPE_NAMES, needs_fashion_mnist
from trainwise.config import load_config, recipe_names
from trainwise.recipes import RecipeResult, build, run_config, run_recipe
from trainwise.runs import RunIndex

# on the CPU, on any machine: the published figures are the CPU's ("auto" would pick a GPU)
CPU = "train.device=cpu"


def run(name: str, *overrides: str) -> RecipeResult:
    return run_recipe(name, [CPU, *overrides], progress=False)


def test_every_seed_variant_has_a_recipe() -> None:
    assert recipe_names() == RECIPE_NAMES


def test_w1_normalized_5000_epochs_matches_the_book() -> None:
    result = run("w1-normalized")
    model = result.fit.model
    assert result.fit.history["loss"][-1] == pytest.approx(2.927647, abs=1e-4)
    assert model.weight.item() == pytest.approx(5.3671, abs=1e-3)
    assert model.bias.item() == pytest.approx(-17.3012, abs=1e-2)
    assert result.fit.history["loss"][0] == pytest.approx(80.3643, abs=1e-3)  # 0.1 * t_u, w=1, b=0


def test_w1_normalized_3000_epochs() -> None:
    result = run("w1-normalized-3000")
    assert result.fit.history["loss"][-1] == pytest.approx(2.928648, abs=1e-4)
    assert result.fit.model.weight.item() == pytest.approx(5.3489, abs=1e-3)
    assert result.fit.model.bias.item() == pytest.approx(-17.1980, abs=1e-2)


def test_w1_raw_lr_1e_2_diverges() -> None:
    losses = run("w1-raw-lr1e-2").fit.history["loss"]
    assert losses[0] == pytest.approx(1763.8848, abs=1e-3)
    assert losses[1] == pytest.approx(5.8025e6, rel=1e-3)
    assert losses[2] == pytest.approx(1.9408e10, rel=1e-3)
    first_nonfinite = next(i for i, v in enumerate(losses) if not math.isfinite(v))
    assert first_nonfinite < 99


def test_w1_raw_lr_1e_4_stalls() -> None:
    result = run("w1-raw-lr1e-4")
    assert result.fit.history["loss"][99] == pytest.approx(29.0227, abs=1e-3)
    assert result.fit.model.weight.item() == pytest.approx(0.2327, abs=1e-4)
    assert result.fit.model.bias.item() == pytest.approx(-0.0438, abs=1e-4)


def test_w1_adam_on_raw_inputs_reaches_the_least_squares_optimum() -> None:
    result = run("w1-adam-raw")
    losses = result.fit.history["loss"]
    assert losses[-1] == pytest.approx(2.927645, abs=1e-4)
    assert result.fit.model.weight.item() == pytest.approx(0.5368, abs=1e-3)
    assert result.fit.model.bias.item() == pytest.approx(-17.3048, abs=1e-2)
    assert losses[1999] == pytest.approx(2.927645, abs=1e-3)  # by about epoch 2000


def test_w1_quadratic_exercise() -> None:
    losses = run("w1-quadratic").fit.history["loss"]
    assert losses[0] == pytest.approx(447.9037, abs=1e-3)
    assert losses[4999] == pytest.approx(3.7652, abs=1e-3)


def test_w1_validation_split_is_9_and_2_and_generalises_worse() -> None:
    result = run("w1-val-split")
    history = result.fit.history
    assert history["loss"][-1] == pytest.approx(2.94, abs=0.1)
    assert history["val_loss"][-1] > history["loss"][-1]
    config = load_config("w1-val-split")
    from trainwise.data import split_indices

    train, val = split_indices(build(config).dataset.y, 0.2, seed=config.train.seed)
    assert (len(train), len(val)) == (9, 2)


def test_w3_two_layer_net_versions() -> None:
    sgd = run("w3-sequential-sgd").fit.history["loss"]
    adam = run("w3-adam").fit.history["loss"]
    custom = run("w3-custom-module").fit.history["loss"]
    assert sgd[0] > 500 and sgd[99] < 5 and sgd[-1] < 1e-4  # tutorial: ~2.8 at 99, ~1e-6 at 499
    assert adam[99] > 10 and adam[-1] < 1e-6  # Adam is slower early, then reaches ~1e-8
    # the custom module is the same network: same start, same path within float noise
    assert custom[0] == pytest.approx(sgd[0], rel=1e-6)
    assert custom[-1] == pytest.approx(sgd[-1], rel=1e-2)


def test_w3_dynamic_net_is_noisy_but_learns_and_repeats_exactly() -> None:
    first = run("w3-dynamic").fit.history["loss"]
    second = run("w3-dynamic").fit.history["loss"]
    assert first == second  # the random depth is seeded
    assert min(first[-50:]) < 1.0 < max(first[:50])
    assert all(math.isfinite(v) for v in first)


def test_w4_sgd_reproduces_the_published_coefficients() -> None:
    model = run("w4-sgd-sum").fit.model
    b, c, d = model.weight.tolist()
    assert b == pytest.approx(0.857, abs=0.01)
    assert d == pytest.approx(-0.093, abs=0.005)
    assert abs(model.bias.item()) < 0.05 and abs(c) < 0.02


def test_w4_sgd_result_depends_on_the_start_within_the_documented_band() -> None:
    # the recipe's comment: over seeds 0-9, b ends between 0.822 and 0.872
    config = load_config("w4-sgd-sum", ["train.epochs=2000", CPU])
    for seed in range(10):
        config.train.seed = seed
        b = run_config(config, progress=False).fit.model.weight[0].item()
        assert 0.82 < b < 0.875


def test_w4_rmsprop_at_lr_1e_6_barely_learns_and_at_1e_3_fits() -> None:
    stalled = run("w4-rmsprop-as-written").fit.history["loss"]
    assert stalled[-1] > 0.98 * stalled[0]
    fitted = run("w4-rmsprop").fit
    assert fitted.history["loss"][-1] < 9.5  # least squares: 8.817
    assert fitted.model.weight[0, 0].item() == pytest.approx(0.857, abs=0.01)


@needs_fashion_mnist
def test_w2_logistic_regression_falls_back_to_fashion_mnist() -> None:
    result = run("w2-logistic")
    assert result.notes and "fashion-mnist" in result.notes[0]
    assert result.test is not None and result.test["accuracy"] > 0.7
    assert result.fit.history["loss"][0] < 2.3  # mean over epoch 1, starting near ln(10)


@needs_fashion_mnist
def test_w5_as_written_has_18_outputs() -> None:
    result = run("w5-as-written", "data.limit=600", "train.epochs=1")
    assert result.fit.model(torch.zeros(2, 1, 28, 28)).shape == (2, 18)


@needs_fashion_mnist
@pytest.mark.slow
def test_w5_tuned_reaches_88_percent_on_the_real_test_set() -> None:
    result = run("w5-tuned")
    assert result.test is not None
    assert result.test["accuracy"] >= 0.88
    assert [f.code for f in result.fit.findings if f.severity != "info"] == []  # the doctor is silent
    dataset = build(result.config).dataset
    assert dataset.X_test is not None and dataset.X_test.shape[0] == 10_000


@pytest.mark.parametrize("name", recipe_names())
def test_every_recipe_trains_and_writes_its_record(name: str, tmp_path: Path) -> None:
    config = load_config(name, ["train.epochs=2", CPU])
    if config.data.name == "fashion-mnist" or config.data.fallback == "fashion-mnist":
        if not FASHION_MNIST.exists():
            pytest.skip("dataset-fashion-mnist is not installed")
        config = load_config(name, ["train.epochs=2", "data.limit=256", CPU])
    result = run_config(config, run_root=tmp_path, progress=False)
    run = result.fit.run
    assert run is not None and run.name.endswith(name)
    assert {"config.toml", "metrics.csv", "model.safetensors", "model.json", "summary.json", "loss-curve.png"} <= {
        p.name for p in run.iterdir()
    }
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["status"] == "completed"
    assert summary["final"]["loss"] == pytest.approx(result.fit.history["loss"][-1])
    if result.test is not None:
        assert summary["final"]["test_loss"] == pytest.approx(result.test["loss"])
    [row] = RunIndex(tmp_path).list()
    assert row.recipe == name and row.status == "completed"
    # the stored config reloads to the same settings
    assert load_config(run / "config.toml").model_dump() == {**config.model_dump(), "name": name}


def test_train_max_steps_from_the_config_ends_the_run() -> None:
    result = run_recipe("w1-normalized", ["train.max_steps=10"], progress=False)
    assert result.fit.epochs == 10 and result.fit.status == "completed"  # full batch: one step an epoch
