"""Tests for trainwise.models: builders, options, import paths and parameter init."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import trainwise
from trainwise.errors import ConfigError
from trainwise.models import (
    BUILDERS,
    DynamicNet,
    FlatLinear,
    Polynomial,
    TwoLayerNet,
    build_model,
    count_parameters,
    import_object,
    in_features_of,
    model_options,
    set_parameters,
)

# small sizes keep every build well under a second
SMALL: dict[str, dict[str, Any]] = {
    "linear": {},
    "logistic": {},
    "mlp": {"hidden": [16, 8]},
    "dynamic_net": {"hidden": 8},
    "cnn": {"channels": [4, 8], "hidden": 16},
}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_builders_cover_the_registry() -> None:
    assert set(SMALL) | {"polynomial"} == set(BUILDERS)


@pytest.mark.parametrize("name", sorted(set(SMALL) - {"cnn"}))
def test_tabular_output_shapes(name: str) -> None:
    model = build_model(name, 5, 3, **SMALL[name])
    assert model(torch.randn(4, 5)).shape == (4, 3)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_image_output_shapes(name: str) -> None:
    model = build_model(name, 784, 10, **SMALL[name])
    model.eval()  # batchnorm in eval mode also accepts a batch of one
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    assert model(torch.randn(1, 784)).shape == (1, 10)  # flattened images too


def test_polynomial_shape_and_image_refusal() -> None:
    model = build_model("polynomial", 1, 1)
    assert model(torch.randn(6, 1)).shape == (6, 1)
    assert model(torch.randn(6)).shape == (6, 1)
    with pytest.raises(ConfigError, match=r"polynomial' fits one input to one output.*784 inputs and 10 outputs"):
        build_model("polynomial", 784, 10)


def test_linear_is_x_w_plus_b_with_plain_parameter_names() -> None:
    model = build_model("linear", 3, 2)
    assert isinstance(model, FlatLinear)
    assert [name for name, _ in model.named_parameters()] == ["weight", "bias"]
    x = torch.randn(5, 3)
    w, b = model.weight.detach().numpy(), model.bias.detach().numpy()
    np.testing.assert_allclose(model(x).detach().numpy(), x.numpy() @ w.T + b, rtol=1e-6, atol=1e-6)
    assert [n for n, _ in build_model("linear", 3, 2, bias=False).named_parameters()] == ["weight"]


def test_polynomial_matches_hand_computation() -> None:
    model = Polynomial(degree=3)
    set_parameters(model, {"bias": 0.5, "weight": [1.0, -2.0, 0.25]})
    x = torch.tensor([[-1.5], [0.0], [2.0]])
    xs = x.numpy()[:, 0].astype(np.float64)
    expected = 0.5 + 1.0 * xs - 2.0 * xs**2 + 0.25 * xs**3
    np.testing.assert_allclose(model(x).detach().numpy()[:, 0], expected, rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 7, 123])
def test_polynomial_start_is_drawn_bias_first(seed: int) -> None:
    torch.manual_seed(seed)
    expected = torch.randn(4)
    torch.manual_seed(seed)
    model = Polynomial(degree=3)
    assert torch.equal(torch.cat([model.bias.detach().reshape(1), model.weight.detach()]), expected)
    # the tutorial draws a, b, c, d as four scalars: the same numbers
    torch.manual_seed(seed)
    assert torch.equal(torch.stack([torch.randn(()) for _ in range(4)]), expected)


def test_polynomial_degree_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="degree: must be at least 1, got 0"):
        build_model("polynomial", 1, 1, degree=0)


def test_mlp_layer_counts() -> None:
    plain = build_model("mlp", 6, 2, hidden=[8, 4])
    assert [type(m) for m in plain.children()] == [nn.Flatten, nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    full = build_model("mlp", 6, 2, hidden=[8, 4], batchnorm=True, dropout=0.5, activation="tanh")
    layer = [nn.Linear, nn.BatchNorm1d, nn.Tanh, nn.Dropout]
    assert [type(m) for m in full.children()] == [nn.Flatten, *layer, *layer, nn.Linear]
    assert count_parameters(full) == (6 * 8 + 8) + 2 * 8 + (8 * 4 + 4) + 2 * 4 + (4 * 2 + 2)
    assert [type(m) for m in build_model("mlp", 6, 2, hidden=[]).children()] == [nn.Flatten, nn.Linear]


def test_mlp_bad_dropout_and_activation() -> None:
    with pytest.raises(ConfigError, match=r"model.dropout: must be in \[0, 1\), got 1.0"):
        build_model("mlp", 4, 1, dropout=1.0)
    with pytest.raises(ConfigError, match=r"model\.activation: unknown 'swish'; choose one of relu"):
        build_model("mlp", 4, 1, activation="swish")
    assert isinstance(list(build_model("mlp", 4, 1, hidden=[3], activation="GELU").children())[2], nn.GELU)


def test_cnn_checks_the_image_shape() -> None:
    with pytest.raises(ConfigError, match=r"expects images of 1x28x28 \(784 values\) but samples have 100"):
        build_model("cnn", 100, 10)
    model = build_model("cnn", 3 * 8 * 8, 4, in_channels=3, image_size=8, channels=[4], hidden=8)
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 4)
    with pytest.raises(ConfigError, match=r"model\.dropout"):
        build_model("cnn", 784, 10, dropout=1.5)


def dynamic_reference(model: DynamicNet, x: torch.Tensor, repeats: int) -> torch.Tensor:
    h = model.input_linear(x).clamp(min=0)
    for _ in range(repeats):
        h = model.middle_linear(h).clamp(min=0)
    return model.output_linear(h)


def test_dynamic_net_is_deterministic_given_its_seed() -> None:
    x = torch.randn(5, 4)
    torch.manual_seed(1)
    first = build_model("dynamic_net", 4, 2, hidden=6, max_repeats=3, seed=11)
    torch.manual_seed(1)
    second = build_model("dynamic_net", 4, 2, hidden=6, max_repeats=3, seed=11)
    assert isinstance(first, DynamicNet)
    draws = random.Random(11)  # the repeat counts the net must use, in order
    with torch.no_grad():
        for _ in range(6):
            out = first(x)
            assert torch.equal(out, second(x))
            torch.testing.assert_close(out, dynamic_reference(first, x, draws.randint(0, 3)))


def test_dynamic_net_rejects_negative_repeats() -> None:
    with pytest.raises(ConfigError, match="max_repeats"):
        build_model("dynamic_net", 4, 2, max_repeats=-1)


def test_import_path_builds_user_module() -> None:
    model = build_model("trainwise.models:TwoLayerNet", 0, 0, d_in=5, hidden=7, d_out=3)
    assert isinstance(model, TwoLayerNet)
    x = torch.randn(4, 5)
    expected = model.linear2(model.linear1(x).clamp(min=0))
    torch.testing.assert_close(model(x), expected)
    assert import_object("trainwise.models:TwoLayerNet") is TwoLayerNet
    assert import_object("torch.nn:Linear.forward") is nn.Linear.forward  # nested attributes


@pytest.mark.parametrize(
    ("path", "options", "message"),
    [
        ("no_such_package_xyz:Net", {}, "cannot import module 'no_such_package_xyz'"),
        ("trainwise.models:NoSuchNet", {}, "module 'trainwise.models' has no 'NoSuchNet'"),
        ("collections:OrderedDict", {}, "is the class collections.OrderedDict, not a torch.nn.Module subclass"),
        ("trainwise.models:TwoLayerNet", {"d_in": 3}, r"rejected its options \['d_in'\]"),
        ("trainwise.models:TwoLayerNet", {"d_in": 3, "hidden": 2, "d_out": 1, "depth": 4}, "depth"),
        ("math:pi", {}, "is a float, not a torch.nn.Module subclass"),
        ("not_a_model", {}, "neither a built-in model nor 'package.module:ClassName'"),
    ],
)
def test_import_path_errors(path: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_model(path, 1, 1, **options)


def test_init_broadcasts_a_constant_and_copies_exact_values() -> None:
    model = build_model("linear", 3, 2, init={"weight": 1.0, "bias": [0.5, -0.5]})
    assert torch.equal(model.weight.detach(), torch.ones(2, 3))
    assert torch.equal(model.bias.detach(), torch.tensor([0.5, -0.5]))
    set_parameters(model, {"weight": [[1, 2, 3], [4, 5, 6]]})
    assert torch.equal(model.weight.detach(), torch.tensor([[1.0, 2, 3], [4, 5, 6]]))
    assert model.weight.requires_grad  # still a trainable parameter


def test_init_of_the_recipe_polynomial() -> None:
    # w1-quadratic: weight = [0.1, 1.0], bias = 0.0
    model = build_model("polynomial", 1, 1, degree=2, init={"weight": [0.1, 1.0], "bias": 0.0})
    assert model.weight.detach().tolist() == pytest.approx([0.1, 1.0])
    assert float(model.bias.detach()) == 0.0
    # a one-element list fills a 0-d parameter too
    set_parameters(model, {"bias": [2.5]})
    assert float(model.bias.detach()) == 2.5
    set_parameters(model, {"weight": [[3.0]]})
    assert model.weight.detach().tolist() == [3.0, 3.0]


def test_init_errors() -> None:
    model = build_model("linear", 3, 2)
    with pytest.raises(ConfigError, match=r"model.init.weight: got 4 values for a parameter of shape \(2, 3\)"):
        set_parameters(model, {"weight": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(ConfigError, match=r"model\.init\.w: no such parameter; the model has weight, bias"):
        set_parameters(model, {"w": 1.0})
    with pytest.raises(ConfigError, match=r"model\.init\.bias: 'x' is not a number"):
        set_parameters(model, {"bias": "x"})  # type: ignore[dict-item]


def test_unknown_model_option_lists_allowed() -> None:
    with pytest.raises(ConfigError, match=r"model.hiden: not an option of model 'mlp'; allowed: hidden, activation"):
        build_model("mlp", 4, 2, hiden=[3])
    with pytest.raises(ConfigError, match="allowed: none"):
        build_model("logistic", 4, 2, bias=False)


def test_model_names_ignore_case_and_dashes() -> None:
    assert isinstance(build_model("Dynamic-Net", 3, 1, hidden=4), DynamicNet)


def test_model_options_exclude_data_sizes() -> None:
    assert list(model_options("mlp")) == ["hidden", "activation", "dropout", "batchnorm"]
    assert model_options("mlp")["hidden"].default == (512, 512)
    assert list(model_options("logistic")) == []


def test_in_features_and_parameter_count() -> None:
    assert in_features_of(()) == 1
    assert in_features_of((1, 28, 28)) == 784
    assert in_features_of((5,)) == 5
    assert count_parameters(build_model("linear", 784, 10)) == 784 * 10 + 10
    assert count_parameters(TwoLayerNet(4, 3, 2)) == 4 * 3 + 3 + 3 * 2 + 2


# ----------------------------------------------------------------------------- import paths call only models


def make_small_net(width: int = 4) -> nn.Module:
    """A factory function annotated to return a module (as torchvision.models:resnet18 is): allowed."""
    return nn.Sequential(nn.Linear(3, width), nn.ReLU(), nn.Linear(width, 1))


def make_unannotated(width: int = 4):  # type: ignore[no-untyped-def]
    return nn.Linear(3, width)


@pytest.mark.parametrize(
    ("path", "options", "what"),
    [
        ("os:system", {"command": "touch {marker}"}, "a builtin_function_or_method"),
        ("subprocess:run", {"args": ["touch", "{marker}"]}, "a function not annotated to return a torch.nn.Module"),
        ("subprocess:Popen", {"args": ["touch", "{marker}"]}, "the class subprocess.Popen"),
        ("builtins:eval", {"source": "open({marker!r}, 'w')"}, "a builtin_function_or_method"),
        ("tests.test_models:make_unannotated", {}, "a function not annotated to return a torch.nn.Module"),
    ],
)
def test_an_import_path_that_is_not_a_module_class_is_never_called(
    tmp_path: Any, path: str, options: dict[str, Any], what: str
) -> None:
    marker = tmp_path / "pwned"

    def filled(value: Any) -> Any:
        if isinstance(value, list):
            return [filled(v) for v in value]
        return value.format(marker=str(marker)) if isinstance(value, str) else value

    with pytest.raises(ConfigError) as info:
        build_model(path, 3, 1, **{key: filled(value) for key, value in options.items()})
    assert str(info.value) == (
        f"model.name: {path} is {what}, not a torch.nn.Module subclass; an import-path model must name an "
        "nn.Module class (or a function annotated '-> nn.Module'), and trainwise calls nothing else"
    )
    assert not marker.exists()


def test_an_import_path_function_annotated_to_return_a_module_builds() -> None:
    model = build_model("tests.test_models:make_small_net", 3, 1, width=5)
    assert isinstance(model, nn.Sequential) and model[0].out_features == 5


def test_summary_lists_the_layers_in_call_order_with_shapes_parameters_and_memory() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, 10), nn.BatchNorm1d(10))  # fmt: skip
    model[1].requires_grad_(False)
    model.train()
    result = trainwise.summary(model, (1, 28, 28))
    assert [(layer.name, layer.kind, layer.output_shape, layer.parameters) for layer in result.layers] == [
        ("0", "Flatten", "(1, 784)", 0), ("1", "Linear", "(1, 512)", 401_920), ("2", "ReLU", "(1, 512)", 0),
        ("3", "Linear", "(1, 512)", 262_656), ("4", "ReLU", "(1, 512)", 0), ("5", "Linear", "(1, 10)", 5_130),
        ("6", "BatchNorm1d", "(1, 10)", 20),
    ]  # fmt: skip
    assert (result.parameters, result.trainable, result.frozen) == (669_726, 267_806, 401_920)
    # float32 weights and the batch norm's buffers (running mean and variance, float32; the count, int64)
    assert result.parameter_bytes == 669_726 * 4 + 20 * 4 + 8
    assert result.activation_bytes == (784 + 512 * 4 + 10 * 2) * 4
    assert model.training  # a batch of one ran in eval mode, and the mode is back
    text = str(result)
    assert "401,920" in text and "669,726 parameters (267,806 trainable, 401,920 frozen)" in text
    assert "<table>" in result._repr_html_()


def test_summary_of_a_single_layer_with_token_ids_and_of_a_wrong_shape() -> None:
    result = trainwise.summary(nn.Embedding(100, 4), (7,), dtype=torch.long)
    assert [(layer.name, layer.output_shape, layer.parameters) for layer in result.layers] == [
        ("(the model)", "(1, 7, 4)", 400)
    ]
    lstm = trainwise.summary(nn.LSTM(8, 16, batch_first=True), (5, 8))
    assert lstm.layers[0].output_shape == "((1, 5, 16), ((1, 1, 16), (1, 1, 16)))"
    with pytest.raises(ConfigError, match=r"^summary: Linear cannot run on inputs of shape \(3,\) \(RuntimeError"):
        trainwise.summary(nn.Linear(4, 2), (3,))
