import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import trainwise
from trainwise.cli import main
from trainwise.errors import ConfigError
from trainwise.lr_finder import LRFindResult, lr_find, smooth, suggest
from trainwise.recipes import budget_steps, load_config, run_recipe, tool_inputs


def w1_inputs(recipe: str = "w1-normalized") -> tuple[nn.Module, torch.Tensor, torch.Tensor, nn.Module]:
    inputs = tool_inputs(load_config(recipe, ["train.device=cpu"]))
    return inputs.model, inputs.X, inputs.y, inputs.loss


def minibatch_regression(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    X = torch.randn(256, 8, generator=generator)
    y = X @ torch.randn(8, 1, generator=generator) + 0.1 * torch.randn(256, 1, generator=generator)
    return X, y


def test_w1_sweep_finds_the_stability_edge_and_restores_the_model() -> None:
    model, X, y, loss = w1_inputs()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = lr_find(model, (X, y), loss=loss, optimizer="sgd", trial_steps=0, device="cpu")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # gradient descent on W1's normalized inputs is stable below 2 / (2 mean(x^2)) = 0.033; the sweep's loss is
    # lowest a little above that, where the overshoot has not yet built up, and stops on the divergence
    assert 0.1 < result.min_lr < 0.2
    assert result.diverged_at is not None and result.diverged_at > result.min_lr
    assert len(result.lrs) < 100 and result.lrs[0] == pytest.approx(1e-7)
    assert np.allclose(np.diff(np.log(result.lrs)), math.log(1e8) / 99)
    assert result.suggestion == pytest.approx(result.min_lr / 10)
    assert result.confidence == "high"
    assert result.losses[0] == pytest.approx(80.3643, rel=1e-4)  # W1's loss at (w, b) = (1, 0) on 0.1 t_u


def test_trials_pick_an_lr_that_trains_w1_to_the_optimum() -> None:
    model, X, y, loss = w1_inputs()
    result = lr_find(model, (X, y), loss=loss, optimizer="sgd", budget_steps=5000, device="cpu")
    assert result.settings["trial_steps"] == 1000
    assert 0.01 <= result.suggestion < 0.033  # below the stability edge, fast enough for 5000 epochs
    assert min(result.trials) < result.suggestion < result.min_lr
    trained = run_recipe("w1-normalized", [f"optim.lr={result.suggestion!r}", "train.device=cpu"], progress=False)
    assert trained.fit.history["loss"][-1] == pytest.approx(2.927646, rel=1e-5)  # the least-squares optimum


def test_trials_account_for_rmsprop_steps_being_about_lr_in_size() -> None:
    # W4 with RMSprop: the sweep's lowest loss is near lr 0.4-1, but a whole run at a tenth of that jitters
    # around the optimum with steps ~lr; the trials settle a few hundred times lower
    config = load_config("w4-rmsprop", ["train.device=cpu"])
    inputs = tool_inputs(config)
    result = lr_find(
        inputs.model, (inputs.X, inputs.y), loss=inputs.loss, optimizer="rmsprop", budget_steps=2000, device="cpu"
    )
    assert result.min_lr > 0.1
    assert 1e-3 <= result.suggestion <= 5.7e-3
    trained = run_recipe("w4-rmsprop", [f"optim.lr={result.suggestion!r}", "train.device=cpu"], progress=False)
    assert trained.fit.history["loss"][-1] < 2 * 8.817  # the least-squares optimum's sum of squared errors


def test_optimizer_state_and_random_state_are_restored_exactly() -> None:
    X, y = minibatch_regression()
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for _ in range(3):  # momentum buffers that the sweep must not keep
        optimizer.zero_grad()
        nn.functional.mse_loss(model(X), y).backward()
        optimizer.step()
    model.eval()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    buffers = {k: v["momentum_buffer"].clone() for k, v in optimizer.state_dict()["state"].items()}
    rng = torch.get_rng_state()
    result = lr_find(model, (X, y), loss="mse", optimizer=optimizer, batch_size=32, trial_steps=50, device="cpu")
    assert result.trials
    assert not model.training
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    state = optimizer.state_dict()
    assert all(torch.equal(buffers[k], v["momentum_buffer"]) for k, v in state["state"].items())
    assert [group["lr"] for group in state["param_groups"]] == [0.01]
    assert torch.equal(torch.get_rng_state(), rng)


def test_fit_with_auto_lr_trains_exactly_as_with_the_suggested_lr() -> None:
    X, y = minibatch_regression()

    def run(lr: float | str) -> trainwise.FitResult:
        torch.manual_seed(1)
        model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
        return trainwise.fit(model, (X, y), loss="mse", optimizer="sgd", lr=lr, momentum=0.9, epochs=3,
                             batch_size=32, progress=False, doctor="off", device="cpu")  # fmt: skip

    auto = run("auto")
    assert auto.lr_find is not None
    chosen = auto.lr_find.suggestion
    assert auto.lr_find.settings["trial_steps"] == 3 * 8  # never longer than the training itself
    assert auto.history["lr"] == [chosen] * 3
    direct = run(chosen)
    assert all(torch.equal(a, b) for a, b in zip(auto.model.parameters(), direct.model.parameters(), strict=True))
    assert auto.summary()["lr_find"]["suggestion"] == chosen


def test_auto_lr_in_a_recipe_is_recorded_with_its_plot(tmp_path: pytest.TempPathFactory) -> None:
    result = run_recipe(
        "w1-normalized", ["optim.lr='auto'", "train.epochs=300", "train.device=cpu"], progress=False, run_root=tmp_path
    )
    assert result.fit.lr_find is not None
    run = result.fit.run
    assert run is not None
    recorded = json.loads((run / "lr-find.json").read_text())
    assert recorded["suggestion"] == result.fit.lr_find.suggestion == result.fit.history["lr"][0]
    assert (run / "lr-find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_budget_steps_count_the_optimizer_steps() -> None:
    assert budget_steps(load_config("w1-normalized"), 11) == 5000
    assert budget_steps(load_config("w5-corrected"), 60000) == 10 * 938
    assert budget_steps(load_config("w1-val-split"), 11) == 5000


def synthetic_sweep(steps: int, noise: float, seed: int) -> tuple[list[float], list[float]]:
    """A loss with its minimum at lr 1e-2 on the log axis, with multiplicative minibatch noise."""
    lrs = np.geomspace(1e-7, 10, steps)
    generator = np.random.default_rng(seed)
    losses = 1 + 2 * (np.log10(lrs) + 2) ** 2
    return lrs.tolist(), (losses * (1 + noise * generator.standard_normal(steps))).tolist()


@pytest.mark.parametrize("steps", [100, 300, 1000])
def test_the_curve_reading_does_not_depend_on_the_number_of_steps_or_the_noise(steps: int) -> None:
    suggestions = []
    for seed in range(3):
        lrs, losses = synthetic_sweep(steps, noise=0.05, seed=seed)
        suggestions.append(suggest(lrs, losses).min_lr)
    # the running median spans a quarter decade whatever the resolution: the minimum is found within it
    assert all(abs(math.log10(lr) + 2) <= 0.25 for lr in suggestions)


def test_smoothing_is_a_running_median_over_a_fixed_width_in_decades() -> None:
    lrs = [1e-3, 1e-2, 1e-1, 1.0]
    assert smooth(lrs, [4.0, 1.0, 9.0, 2.0], window_decades=2.0) == [2.5, 4.0, 2.0, 5.5]
    assert smooth(lrs, [4.0, math.nan, 9.0, 2.0], window_decades=0.1) == pytest.approx([4.0, math.nan, 9.0, 2.0],
                                                                                        nan_ok=True)  # fmt: skip


def test_confidence_is_low_when_the_curve_says_little() -> None:
    lrs = np.geomspace(1e-7, 10, 100).tolist()
    rising = suggest(lrs, [1 + lr for lr in lrs])
    assert rising.confidence == "low" and "lower start_lr" in rising.explanation
    falling = suggest(lrs, [10 - math.log10(lr) for lr in lrs])
    assert falling.confidence == "low" and "raise end_lr" in falling.explanation
    flat = suggest(lrs[:60], [1.0 - 0.001 * math.sin(i) for i in range(60)], diverged_at=lrs[60])
    assert flat.confidence == "low" and "fell only" in flat.explanation


def test_the_plot_marks_the_suggestion(tmp_path: pytest.TempPathFactory) -> None:
    model, X, y, loss = w1_inputs()
    result = lr_find(model, (X, y), loss=loss, optimizer="sgd", trial_steps=0, device="cpu")
    path = tmp_path / "lr.png"
    figure = result.plot(path)
    lines = figure.axes[0].lines
    suggested = [line for line in lines if "suggested" in str(line.get_label())]
    assert suggested and suggested[0].get_xdata()[0] == pytest.approx(result.suggestion)
    assert figure.axes[0].get_xscale() == "log"
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert "suggested lr" in result._repr_html_() and str(result).startswith("suggested lr")


def test_bad_settings_are_one_line_errors() -> None:
    model, X, y, loss = w1_inputs()
    with pytest.raises(ConfigError, match="need 0 < start_lr < end_lr"):
        lr_find(model, (X, y), loss=loss, start_lr=1.0, end_lr=0.1, device="cpu")
    with pytest.raises(ConfigError, match="steps must be at least 10"):
        lr_find(model, (X, y), loss=loss, steps=3, device="cpu")
    with pytest.raises(ConfigError, match="'fast' is not a learning rate"):
        trainwise.fit(model, (X, y), loss=loss, lr="fast", progress=False, device="cpu")


def test_cli_lr_find(tmp_path: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "sweep.png"
    cpu = ["--set", "train.device=cpu"]  # the sweep on the CPU, on any machine ("auto" would pick a GPU)
    code = main(["lr-find", *cpu, "w1-normalized", "--plot", str(plot), "--json", "--trial-steps", "0"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["plot"] == str(plot) and plot.exists()
    assert out["suggestion"] == pytest.approx(out["min_lr"] / 10)
    assert main(["lr-find", *cpu, "no-such-recipe"]) == 2
    assert main(["lr-find", *cpu, "w1-normalized", "--start-lr", "1", "--end-lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "need 0 < start_lr < end_lr" in err


def test_result_to_dict_is_json(tmp_path: pytest.TempPathFactory) -> None:
    X, y = minibatch_regression()
    result = lr_find(nn.Linear(8, 1), (X, y), loss="mse", batch_size=64, trial_steps=20, device="cpu")
    data = json.loads(json.dumps(result.to_dict()))
    assert isinstance(result, LRFindResult)
    assert data["suggestion"] == result.suggestion and len(data["trials"]) == len(result.trials)


def test_the_result_shows_as_an_html_table_with_a_short_repr() -> None:
    model, X, y, loss = w1_inputs()
    result = lr_find(model, (X, y), loss=loss, optimizer="sgd", trial_steps=50, device="cpu")
    text = repr(result)
    steps = len(result.lrs)
    assert text.startswith(f"LRFindResult(suggestion={result.suggestion:.4g}, confidence='{result.confidence}', ")
    assert f"lrs=[{steps} values], losses=[{steps} values], smoothed=[{steps} values]" in text
    assert f"trials={{{len(result.trials)} entries}}" in text and len(text) < 250
    page = result._repr_html_()
    assert page.count("<table>") == 1 and page.count("<tr>") == 6
    assert f"<td>suggested lr</td><td>{result.suggestion:.3g}</td>" in page
    assert f"<td>sweep steps</td><td>{steps} of 100</td>" in page
