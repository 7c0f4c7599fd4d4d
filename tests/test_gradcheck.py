"""Tests for trainwise.gradient_check: autograd vs finite differences vs a hand-written gradient.

W1 is the thermometer fit of "Deep Learning with PyTorch", chapter 5: at w = 1, b = 0 the gradient of the
mean squared error is (dL/dw, dL/db) = (4517.2964, 82.6000).
"""

from __future__ import annotations

import io
import json
import random
from typing import Any

import numpy as np
import pytest
import torch
from rich.console import Console
from torch import nn

from trainwise import TrainwiseError, cli, gradcheck
from trainwise.datasets import load_dataset
from trainwise.errors import ConfigError
from trainwise.gradient_check import DEFAULT_TOLERANCE, GradcheckResult
from trainwise.models import DynamicNet

W1_GRADIENT = {"weight": 4517.2964, "bias": 82.6000}


def w1_model() -> nn.Linear:
    model = nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.zero_()
    return model


def w1_gradient(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """The chain rule by hand: dL/dp = 2 (p - t_c) / N, dp/dw = t_u, dp/db = 1."""
    residual = model(X) - y
    return {"weight": (2 * residual * X).mean().reshape(1, 1), "bias": (2 * residual).mean().reshape(1)}


def w1_gradient_floor_division(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """The write-up's bug: floor division in the bias line (908.6 // 11 = 82, not 82.6)."""
    residual = model(X) - y
    return {"weight": (2 * residual * X).mean().reshape(1, 1), "bias": ((2 * residual).sum() // len(y)).reshape(1)}


def w1_gradient_wrong_argument(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """The write-up's other bug: the bias line differentiates along the wrong argument (the weight's)."""
    residual = model(X) - y
    return {"weight": (2 * residual * X).mean().reshape(1, 1), "bias": (2 * residual * X).mean().reshape(1)}


def make_cube(factor: float) -> type[torch.autograd.Function]:
    """x**3 as an autograd.Function whose backward uses `factor` * x**2 (3 is right)."""

    class Cube(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(x)
            return x**3

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
            (x,) = ctx.saved_tensors
            return factor * x**2 * grad

    return Cube


class CubeLayer(nn.Module):
    def __init__(self, function: type[torch.autograd.Function]) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function.apply(x)


def cube_net(factor: float) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), CubeLayer(make_cube(factor)), nn.Linear(4, 2))


def regression_data(n: int = 40, d_in: int = 3, d_out: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, d_in, generator=generator), torch.randn(n, d_out, generator=generator)


# --- W1: three sources agree, the write-up's bugs are caught ------------------------------------------------


def test_w1_analytic_gradient_matches_autograd_and_finite_differences() -> None:
    result = gradcheck(w1_model(), load_dataset("temperature"), loss="mse", manual_grad=w1_gradient)
    assert result.ok
    assert result.mismatches == []
    assert result.loss == pytest.approx(1763.8848, rel=1e-7)
    assert result.pairs == ("autograd_vs_fd", "manual_vs_autograd", "manual_vs_fd")
    for name, expected in W1_GRADIENT.items():
        row = result.row(name)
        assert row.entries == 1
        for source in ("autograd", "fd", "manual"):
            assert row.values[source][0] == pytest.approx(expected, rel=1e-3)
        # float64 central differences agree with the exact gradient to ~1e-9; the two analytic ones to ~1e-16
        assert row.max_rel_err["autograd_vs_fd"] < 1e-8
        assert row.max_rel_err["manual_vs_fd"] < 1e-8
        assert row.max_rel_err["manual_vs_autograd"] < 1e-12
    # w's gradient is ~55x b's: the scale problem of raw inputs
    assert result.row("weight").scale / result.row("bias").scale == pytest.approx(54.69, rel=1e-3)


def test_w1_floor_division_bug_is_caught_and_named() -> None:
    result = gradcheck(w1_model(), load_dataset("temperature"), loss="mse", manual_grad=w1_gradient_floor_division)
    assert not result.ok
    assert result.mismatches == ["bias"]
    bias = result.row("bias")
    assert bias.values["manual"][0] == 82.0
    # |82 - 82.6| / 82.6: small, but 700x the float64 tolerance
    assert bias.max_rel_err["manual_vs_autograd"] == pytest.approx(0.6 / 82.6, rel=1e-5)
    assert bias.max_rel_err["manual_vs_fd"] == pytest.approx(0.6 / 82.6, rel=1e-5)
    assert bias.max_rel_err["autograd_vs_fd"] < 1e-8
    assert bias.problem.startswith(
        "manual gradient of 'bias' disagrees with autograd and finite differences: max rel err 0.00726"
    )
    assert result.row("weight").ok


def test_w1_wrong_argument_bug_is_caught() -> None:
    result = gradcheck(w1_model(), load_dataset("temperature"), loss="mse", manual_grad=w1_gradient_wrong_argument)
    assert result.mismatches == ["bias"]
    # the weight's gradient 4517.3 given as the bias's 82.6: relative error 1 - 82.6 / 4517.3
    assert result.row("bias").max_rel_err["manual_vs_autograd"] == pytest.approx(1 - 82.6 / 4517.2964, rel=1e-5)
    assert "max rel err 0.982" in result.problems[0]


# --- custom autograd.Functions ------------------------------------------------------------------------------


def test_custom_function_with_wrong_backward_is_caught_upstream() -> None:
    X, y = regression_data()
    result = gradcheck(cube_net(factor=1.0), (X, y), loss="mse")  # 3x**2 without its 3
    # only the parameters before the cube get their gradient through the wrong backward
    assert result.mismatches == ["0.weight", "0.bias"]
    for name in ("0.weight", "0.bias"):
        row = result.row(name)
        # autograd is exactly 1/3 of the truth at every entry: relative error 1 - 1/3
        assert row.max_rel_err["autograd_vs_fd"] == pytest.approx(2 / 3, abs=1e-6)
        assert row.problem.startswith(f"autograd gradient of {name!r} disagrees with finite differences")
    assert result.row("2.weight").max_rel_err["autograd_vs_fd"] < 1e-7
    assert result.row("2.bias").ok


def test_custom_function_with_correct_backward_passes() -> None:
    X, y = regression_data()
    result = gradcheck(cube_net(factor=3.0), (X, y), loss="mse")
    assert result.ok
    assert result.entries_checked == 12 + 4 + 8 + 2  # every entry of these small tensors
    assert max(row.max_rel_err["autograd_vs_fd"] for row in result.rows) < 1e-7


def test_three_sources_name_the_wrong_backward() -> None:
    """A hand-written gradient that is right and an autograd.Function that is wrong: autograd is the odd one."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 1), CubeLayer(make_cube(2.0)))
    X, y = regression_data(d_out=1)

    def by_hand(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        z = model[0](X)
        upstream = 2 * (z**3 - y) * 3 * z**2 / len(y)  # dL/dz for the mean over samples
        return {"0.weight": (upstream * X).sum(0, keepdim=True), "0.bias": upstream.sum(0)}

    result = gradcheck(model, (X, y), loss="mse", manual_grad=by_hand)
    assert result.mismatches == ["0.weight", "0.bias"]
    row = result.row("0.weight")
    assert row.max_rel_err["manual_vs_fd"] < 1e-7
    assert row.max_rel_err["manual_vs_autograd"] == pytest.approx(1 / 3, abs=1e-6)  # 2x**2 for 3x**2
    assert row.problem.startswith(
        "autograd gradient of '0.weight' disagrees with finite differences and the manual gradient: max rel err 0.333"
    )


def test_detached_parameter_is_caught_and_unused_parameter_is_reported() -> None:
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(3, 2)
            self.scale = nn.Parameter(torch.tensor(2.0))
            self.unused = nn.Parameter(torch.ones(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x) * self.scale.detach()  # the loss depends on scale, autograd cannot see it

    torch.manual_seed(0)
    result = gradcheck(Scaled(), regression_data(), loss="mse")
    assert result.mismatches == ["scale"]
    scale = result.row("scale")
    assert scale.values["autograd"] == (0.0,)
    assert abs(scale.values["fd"][0]) > 0.1
    assert scale.max_rel_err["autograd_vs_fd"] == pytest.approx(1.0)
    assert "not in the loss's graph" in scale.note
    unused = result.row("unused")
    assert unused.ok
    assert unused.values == {"autograd": (0.0, 0.0, 0.0), "fd": (0.0, 0.0, 0.0)}
    assert "not in the loss's graph" in unused.note


def test_a_step_across_a_relu_kink_is_retaken() -> None:
    """One sample's pre-activation sits 5e-7 above the ReLU's kink: a step of 1e-6 crosses it, 1e-7 does not."""
    model = nn.Sequential(nn.Linear(1, 1), nn.ReLU())
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.fill_(-1 + 5e-7)
    data = (torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64), torch.tensor([[10.0], [0.0], [0.0]]))
    result = gradcheck(model, data, loss="mse")
    assert result.ok, str(result)
    bias = result.row("0.bias")
    assert bias.values["autograd"][0] == pytest.approx(-14 / 3, rel=1e-6)  # 2/3 * ((5e-7 - 10) + 1 + 2)
    assert bias.max_rel_err["autograd_vs_fd"] < 1e-7
    assert bias.note == "1 finite difference(s) retaken with a 10x smaller step (a kink nearby)"
    # with eps 1e-5 both steps straddle the kink: the disagreement stays, and is reported
    coarse = gradcheck(model, data, loss="mse", eps=1e-5)
    assert coarse.mismatches == ["0.weight", "0.bias"]
    assert coarse.row("0.bias").values["fd"][0] == pytest.approx(-1.4923, abs=1e-3)
    assert "kink (ReLU at 0)" in coarse.row("0.bias").problem


def test_finite_differences_are_the_odd_one_out_exactly_at_a_kink() -> None:
    """Sample 0 sits exactly at the ReLU's kink: autograd and the hand-written gradient both take slope 0
    there, central differences average the two slopes."""
    model = nn.Sequential(nn.Linear(1, 1), nn.ReLU())
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.fill_(-1.0)
    data = (torch.tensor([[1.0], [2.0]], dtype=torch.float64), torch.tensor([[5.0], [0.0]], dtype=torch.float64))

    def by_hand(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        z = model[0](X)
        upstream = 2 * (z.clamp(min=0) - y) * (z > 0) / len(y)
        return {"0.weight": (upstream * X).sum(0, keepdim=True), "0.bias": upstream.sum(0)}

    result = gradcheck(model, data, loss="mse", manual_grad=by_hand)
    bias = result.row("0.bias")
    # slope 1 left of the kink, 1 - 5 = -4 right of it: the central difference is their mean, -1.5
    assert bias.values == {"autograd": (1.0,), "fd": (pytest.approx(-1.5, abs=1e-5),), "manual": (1.0,)}
    assert bias.max_rel_err["manual_vs_autograd"] == 0.0
    assert bias.problem.startswith(
        "finite-difference estimate of '0.bias' disagrees with autograd and the manual gradient: max rel err 1.67"
    )


# --- randomness, sampling, dtypes ---------------------------------------------------------------------------


def test_dropout_is_the_same_function_at_every_evaluation() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Dropout(0.5), nn.Linear(16, 1))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng_before = torch.random.get_rng_state()
    result = gradcheck(model, regression_data(d_in=5, d_out=1), loss="mse")
    assert result.ok, str(result)
    assert result.notes == []
    assert max(row.max_rel_err["autograd_vs_fd"] for row in result.rows) < 1e-7
    # the user's model and RNG stream are untouched: same weights, dtype and mode; no random numbers drawn
    assert model.training
    assert all(torch.equal(before[k], v) and v.dtype == torch.float32 for k, v in model.state_dict().items())
    assert torch.equal(torch.random.get_rng_state(), rng_before)


def test_model_owned_python_random_is_rewound() -> None:
    """W3's dynamic net draws its depth from its own random.Random at every forward."""
    torch.manual_seed(0)
    model = DynamicNet(10, 8, 2, max_repeats=3, seed=0)
    python_state = random.getstate()
    result = gradcheck(model, regression_data(d_in=10), loss="mse", max_entries=8)
    assert result.ok, str(result)
    assert result.notes == []
    assert random.getstate() == python_state
    assert model._random.getstate() == random.Random(0).getstate()  # the original's generator did not move


def test_randomness_that_cannot_be_rewound_is_reported() -> None:
    class Noisy(nn.Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            noise = np.random.default_rng().normal(size=(len(x), self.out_features))  # a fresh, unseeded generator
            return super().forward(x) + torch.from_numpy(noise)

    result = gradcheck(Noisy(3, 2), regression_data(), loss="mse")
    assert not result.ok
    assert result.notes[0].startswith("the loss is not reproducible")


def test_large_layer_is_sampled() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 512), nn.Tanh(), nn.Linear(512, 10))
    generator = torch.Generator().manual_seed(0)
    X, y = torch.rand(100, 784, generator=generator), torch.randint(0, 10, (100,), generator=generator)
    result = gradcheck(model, (X, y), loss="cross_entropy", samples=16)
    assert result.ok, str(result)
    assert result.samples == 16
    first = result.row("0.weight")
    assert (first.size, first.entries) == (784 * 512, 32)
    assert len(set(first.indices)) == 32
    assert [result.row(name).entries for name in ("0.bias", "2.weight", "2.bias")] == [32, 32, 10]
    assert result.entries_checked == 32 + 32 + 32 + 10
    # half the sample is the largest-gradient entries
    gradient = _autograd_gradient(model, X[:16], y[:16])
    assert int(gradient.abs().flatten().argmax()) in first.indices
    fewer = gradcheck(model, (X, y), loss="cross_entropy", samples=16, max_entries=8)
    assert fewer.row("0.weight").entries == 8
    assert fewer.row("2.bias").entries == 8


def _autograd_gradient(model: nn.Sequential, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    copy = nn.Sequential(*[layer for layer in model]).double()
    weight = copy[0].weight
    (gradient,) = torch.autograd.grad(nn.functional.cross_entropy(copy(X.double()), y), [weight])
    model.float()
    return gradient


def test_float32_uses_its_looser_tolerance_and_still_catches_bugs() -> None:
    result = gradcheck(w1_model(), load_dataset("temperature"), loss="mse", dtype=torch.float32)
    assert result.ok
    assert (result.dtype, result.eps, result.tolerance) == ("float32", 1e-3, DEFAULT_TOLERANCE[torch.float32])
    assert result.tolerance == 1e-2
    assert result.row("weight").values["autograd"][0] == pytest.approx(4517.2964, rel=1e-6)
    assert result.row("weight").max_rel_err["autograd_vs_fd"] < 1e-3
    X, y = regression_data()
    wrong = gradcheck(cube_net(factor=1.0), (X, y), loss="mse", dtype=torch.float32)
    assert wrong.mismatches == ["0.weight", "0.bias"]
    row = wrong.row("0.weight")
    # autograd is 1/3 of the truth, so the largest error is 2/3 of the largest entry; float32's rounding
    # noise raises the relative error's floor, still far above the tolerance
    assert row.max_abs_err["autograd_vs_fd"] == pytest.approx(2 / 3 * row.scale, rel=1e-3)
    assert row.max_rel_err["autograd_vs_fd"] > 10 * wrong.tolerance
    right = gradcheck(cube_net(factor=3.0), (X, y), loss="mse", dtype=torch.float32)
    assert right.ok, str(right)


def test_dataset_and_dataloader_give_the_same_batch_as_tensors() -> None:
    X, y = regression_data(n=50)
    model = cube_net(3.0)
    from_tensors = gradcheck(model, (X, y), loss="mse", samples=20)
    dataset = torch.utils.data.TensorDataset(X, y)
    from_dataset = gradcheck(model, dataset, loss="mse", samples=20)
    from_loader = gradcheck(model, torch.utils.data.DataLoader(dataset, batch_size=8), loss="mse", samples=20)
    assert from_tensors.samples == from_dataset.samples == from_loader.samples == 20
    assert from_dataset.loss == from_tensors.loss == from_loader.loss
    assert from_dataset.row("0.weight").values == from_tensors.row("0.weight").values


def test_integer_labels_stay_integers() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    X, labels = torch.randn(30, 4), torch.arange(30) % 3
    result = gradcheck(model, (X.numpy(), labels.numpy()), loss="cross_entropy")
    assert result.ok
    assert result.loss == pytest.approx(
        float(nn.functional.cross_entropy(model(X).double(), labels).detach()), rel=1e-6
    )


def test_frozen_parameters_are_listed_not_checked() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    result = gradcheck(model, regression_data(), loss="mse")
    assert [row.name for row in result.rows] == ["1.weight", "1.bias"]
    assert result.notes == [
        "0.weight: frozen (requires_grad=False), not checked",
        "0.bias: frozen (requires_grad=False), not checked",
    ]


# --- mistakes -----------------------------------------------------------------------------------------------


def _one_line(error: pytest.ExceptionInfo[Exception]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_manual_grad_missing_key() -> None:
    def no_bias(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"weight": w1_gradient(model, X, y)["weight"]}

    with pytest.raises(TrainwiseError) as error:
        gradcheck(w1_model(), load_dataset("temperature"), loss="mse", manual_grad=no_bias)
    assert _one_line(error) == (
        "manual_grad: no gradient for parameter 'bias'; return one tensor for each of weight, bias"
    )


def test_manual_grad_wrong_shape() -> None:
    def flat_weight(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        gradient = w1_gradient(model, X, y)
        return {"weight": gradient["weight"].reshape(1), "bias": gradient["bias"]}

    with pytest.raises(TrainwiseError) as error:
        gradcheck(w1_model(), load_dataset("temperature"), loss="mse", manual_grad=flat_weight)
    assert _one_line(error) == (
        "manual_grad: gradient of 'weight' has shape (1,) but the parameter has shape (1, 1); "
        "return a tensor of the parameter's shape"
    )


def test_manual_grad_unknown_key_and_changed_model() -> None:
    def typo(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {**w1_gradient(model, X, y), "weights": torch.zeros(1, 1)}

    with pytest.raises(TrainwiseError) as error:
        gradcheck(w1_model(), load_dataset("temperature"), loss="mse", manual_grad=typo)
    assert _one_line(error).startswith("manual_grad: 'weights' is not a parameter of the model")

    def steps(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        gradient = w1_gradient(model, X, y)
        with torch.no_grad():
            model.bias -= 0.1 * gradient["bias"]
        return gradient

    with pytest.raises(TrainwiseError) as error:
        gradcheck(w1_model(), load_dataset("temperature"), loss="mse", manual_grad=steps)
    assert "changed parameter 'bias'" in _one_line(error)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dtype": torch.float16}, "dtype: gradcheck runs in torch.float64 or torch.float32"),
        ({"eps": 0.0}, "eps: must be a number between 0 and 1"),
        ({"samples": 0}, "samples: must be a whole number >= 1, got 0"),
        ({"max_entries": 2.5}, "max_entries: must be a whole number >= 1"),
        ({"tolerance": -1.0}, "tolerance: must be a positive number"),
    ],
)
def test_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        gradcheck(w1_model(), load_dataset("temperature"), loss="mse", **options)
    assert _one_line(error).startswith(message)


def test_non_scalar_and_non_finite_losses() -> None:
    with pytest.raises(TrainwiseError) as error:
        gradcheck(w1_model(), load_dataset("temperature"), loss=lambda p, t: (p - t) ** 2)
    assert "returns (11, 1), but gradcheck needs a single number" in _one_line(error)
    X, y = regression_data()
    X[0, 0] = float("nan")
    with pytest.raises(TrainwiseError) as error:
        gradcheck(cube_net(3.0), (X, y), loss="mse")
    assert _one_line(error).startswith("gradcheck: the loss is nan at this point")


# --- output -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def failed() -> GradcheckResult:
    return gradcheck(w1_model(), load_dataset("temperature"), loss="mse", manual_grad=w1_gradient_floor_division)


def test_plain_text_table(failed: GradcheckResult) -> None:
    lines = str(failed).splitlines()
    assert lines[0] == "gradcheck: loss 1763.88 on 11 samples, float64"
    assert lines[1].split()[:4] == ["parameter", "shape", "checked", "max"]
    assert lines[2].split()[:4] == ["weight", "1x1", "1/1", "4.52e+03"]
    assert lines[2].endswith(" ok")
    assert lines[3].split()[:4] == ["bias", "1", "1/1", "8.26e+01"]
    assert lines[3].endswith("MISMATCH")
    assert "7.26e-03" in lines[3].split()
    assert lines[4].startswith("manual gradient of 'bias' disagrees")
    assert lines[-1].startswith("gradcheck FAILED: 1 of 2 parameters mismatch: 'bias' (2 entries checked")


def test_rich_html_and_json(failed: GradcheckResult) -> None:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(failed)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "manual vs autograd rel" in text
    assert "MISMATCH" in text
    assert "gradcheck FAILED" in text
    html = failed._repr_html_()
    assert html.count("<tr") == 3
    assert "color:#b00" in html
    assert "disagrees with autograd and finite differences" in html
    data = json.loads(json.dumps(failed.to_dict()))
    assert data["ok"] is False
    assert data["mismatches"] == ["bias"]
    assert data["parameters"][1]["values"]["manual"] == [82.0]
    assert data["parameters"][1]["max_rel_err"]["manual_vs_fd"] == pytest.approx(0.6 / 82.6, rel=1e-5)
    assert data["entries_checked"] == 2


# --- command line -------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's tables at one width (their columns are read by position), whatever COLUMNS the terminal exports."""
    monkeypatch.setenv("COLUMNS", "200")


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_gradcheck_w1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "gradcheck", "w1-normalized")
    assert code == 0, err
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("│")}
    assert set(rows) == {"weight", "bias"}
    # on inputs scaled by 0.1 the gradient at (1, 0) is (77.6, 10.6)
    assert rows["weight"].split()[7] == "7.76e+01"
    assert rows["bias"].split()[7] == "1.06e+01"
    assert "gradcheck passed: autograd agrees with finite differences on all 2 parameters" in out


def test_cli_gradcheck_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "gradcheck", "w3-sequential-sgd", "--samples", "16", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["ok"] is True
    assert data["samples"] == 16
    assert [p["name"] for p in data["parameters"]] == ["1.weight", "1.bias", "3.weight", "3.bias"]
    assert [p["entries"] for p in data["parameters"]] == [32, 32, 32, 10]
    assert max(p["max_rel_err"]["autograd_vs_fd"] for p in data["parameters"]) < 1e-5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gradcheck", "no-such-recipe"], "error: no-such-recipe: no such recipe or file"),
        (["gradcheck", "w1-normalized", "--samples", "0"], "error: samples: must be a whole number >= 1, got 0"),
    ],
)
def test_cli_gradcheck_mistakes(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, out, err = run_main(capsys, *args)
    assert code == cli.EXIT_USER_ERROR
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith(message)


def test_reprs_are_short_and_print_table_prints_text(
    failed: GradcheckResult, capsys: pytest.CaptureFixture[str]
) -> None:
    assert repr(failed) == (
        "GradcheckResult(ok=False, mismatches=['bias'], parameters=2, loss=1764, dtype='float64', samples=11)"
    )
    bias = repr(failed.row("bias"))
    assert bias.startswith("ParameterCheck(name='bias', shape=(1,), entries=1, ok=False, max_rel_err={")
    assert "problem=\"manual gradient of 'bias' disagrees with autograd" in bias and len(bias) < 400
    print(failed.table())
    printed = capsys.readouterr().out
    assert "rich.table.Table object" not in printed
    bias_line = next(line for line in printed.splitlines() if "bias" in line)
    assert "MISMATCH" in bias_line and "8.26e+01" in bias_line
