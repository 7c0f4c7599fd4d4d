"""trainwise.save / trainwise.load rebuild models without pickle: torch.nn layers from their constructor
arguments, trainwise's own models from their spec, user classes by import path (docs/checkpoints.md)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import trainwise
from tests.conftest import RECIPE_NAMES
from trainwise.errors import ConfigError, DataError, TrainwiseError

ROOT = Path(__file__).resolve().parents[1]


def _round_trip(model: nn.Module, tmp_path: Path, **save: Any) -> tuple[nn.Module, dict[str, Any]]:
    folder = trainwise.save(model, tmp_path / "saved", **save)
    description = json.loads((folder / "model.json").read_text())
    return trainwise.load(folder), description


def _same_outputs(model: nn.Module, loaded: nn.Module, *inputs: torch.Tensor) -> None:
    model.eval()
    loaded.eval()
    with torch.no_grad():
        mine, theirs = model(*inputs), loaded(*inputs)
    for a, b in zip(*(t if isinstance(t, tuple) else (t,) for t in (mine, theirs)), strict=True):
        if isinstance(a, tuple):  # LSTM's (h, c)
            assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
        else:
            assert torch.equal(a, b)


def _image(channels: int = 3, size: int = 8) -> torch.Tensor:
    return torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(1))


# every torch.nn layer type the docs list, with arguments that differ from the defaults where they can
LAYERS: dict[str, tuple[Callable[[], nn.Module], Callable[[], tuple[torch.Tensor, ...]]]] = {
    "Linear": (lambda: nn.Linear(4, 3), lambda: (torch.randn(2, 4),)),
    "Linear-no-bias": (lambda: nn.Linear(4, 3, bias=False), lambda: (torch.randn(2, 4),)),
    "Bilinear": (lambda: nn.Bilinear(4, 5, 3, bias=False), lambda: (torch.randn(2, 4), torch.randn(2, 5))),
    "Conv1d": (lambda: nn.Conv1d(3, 4, 3, stride=2, padding=1, dilation=1, groups=1), lambda: (torch.randn(2, 3, 9),)),
    "Conv2d": (lambda: nn.Conv2d(3, 6, (3, 1), padding="same", groups=3, padding_mode="reflect"), lambda: (_image(),)),
    "Conv3d": (lambda: nn.Conv3d(2, 3, 2, stride=(1, 2, 1), bias=False), lambda: (torch.randn(1, 2, 4, 5, 6),)),
    "ConvTranspose1d": (
        lambda: nn.ConvTranspose1d(3, 2, 3, stride=2, output_padding=1),
        lambda: (torch.randn(2, 3, 5),),
    ),
    "ConvTranspose2d": (lambda: nn.ConvTranspose2d(3, 4, 2, stride=2, groups=1), lambda: (_image(),)),
    "ConvTranspose3d": (lambda: nn.ConvTranspose3d(2, 2, 2, dilation=2), lambda: (torch.randn(1, 2, 3, 3, 3),)),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(4, eps=1e-3, momentum=0.3), lambda: (torch.randn(5, 4),)),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(3, affine=False), lambda: (_image(),)),
    "BatchNorm3d": (lambda: nn.BatchNorm3d(2, track_running_stats=False), lambda: (torch.randn(2, 2, 3, 3, 3),)),
    "LayerNorm": (lambda: nn.LayerNorm((3, 8, 8), eps=1e-4, bias=False), lambda: (_image(),)),
    "GroupNorm": (lambda: nn.GroupNorm(3, 6, affine=False), lambda: (_image(6),)),
    "Dropout": (lambda: nn.Dropout(0.3), lambda: (torch.randn(2, 4),)),
    "Dropout1d": (lambda: nn.Dropout1d(0.2), lambda: (torch.randn(2, 3, 4),)),
    "Dropout2d": (lambda: nn.Dropout2d(0.2), lambda: (_image(),)),
    "Dropout3d": (lambda: nn.Dropout3d(0.2), lambda: (torch.randn(1, 2, 3, 3, 3),)),
    "AlphaDropout": (lambda: nn.AlphaDropout(0.1), lambda: (torch.randn(2, 4),)),
    "FeatureAlphaDropout": (lambda: nn.FeatureAlphaDropout(0.1), lambda: (_image(),)),
    "Flatten": (lambda: nn.Flatten(2), lambda: (_image(),)),
    "Unflatten": (lambda: nn.Unflatten(1, (2, 6)), lambda: (torch.randn(3, 12),)),
    "Identity": (lambda: nn.Identity(), lambda: (torch.randn(2, 4),)),
    "MaxPool1d": (lambda: nn.MaxPool1d(3, stride=2, padding=1), lambda: (torch.randn(2, 3, 9),)),
    "MaxPool2d": (lambda: nn.MaxPool2d(2, ceil_mode=True), lambda: (_image(size=7),)),
    "MaxPool3d": (lambda: nn.MaxPool3d(2, dilation=1), lambda: (torch.randn(1, 2, 4, 4, 4),)),
    "AvgPool1d": (lambda: nn.AvgPool1d(3, count_include_pad=False, padding=1), lambda: (torch.randn(2, 3, 9),)),
    "AvgPool2d": (lambda: nn.AvgPool2d(3, stride=1, divisor_override=2), lambda: (_image(),)),
    "AvgPool3d": (lambda: nn.AvgPool3d(2), lambda: (torch.randn(1, 2, 4, 4, 4),)),
    "AdaptiveAvgPool1d": (lambda: nn.AdaptiveAvgPool1d(4), lambda: (torch.randn(2, 3, 9),)),
    "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d((3, 2)), lambda: (_image(),)),
    "AdaptiveAvgPool3d": (lambda: nn.AdaptiveAvgPool3d(2), lambda: (torch.randn(1, 2, 4, 4, 4),)),
    "AdaptiveMaxPool2d": (lambda: nn.AdaptiveMaxPool2d(3), lambda: (_image(),)),
    "Embedding": (lambda: nn.Embedding(10, 4, padding_idx=0, max_norm=2.0), lambda: (torch.tensor([[0, 3, 9]]),)),
    "LSTM": (
        lambda: nn.LSTM(4, 5, num_layers=2, batch_first=True, bidirectional=True, proj_size=3),
        lambda: (torch.randn(2, 6, 4),),
    ),
    "GRU": (lambda: nn.GRU(4, 5, bias=False, dropout=0.1, num_layers=2), lambda: (torch.randn(6, 2, 4),)),
    "RNN": (lambda: nn.RNN(4, 5, nonlinearity="relu", batch_first=True), lambda: (torch.randn(2, 6, 4),)),
    "MultiheadAttention": (
        lambda: nn.MultiheadAttention(8, 2, bias=False, add_bias_kv=True, batch_first=True),
        lambda: (torch.randn(2, 5, 8),) * 3,
    ),
}

# arguments that differ from the defaults, for the activations that take any
ACTIVATION_ARGUMENTS: dict[str, dict[str, Any]] = {
    "Threshold": {"threshold": 0.1, "value": 20.0},
    "RReLU": {"lower": 0.1, "upper": 0.2},
    "Hardtanh": {"min_val": -2.0, "max_val": 0.5},
    "ELU": {"alpha": 0.5},
    "CELU": {"alpha": 0.7},
    "GLU": {"dim": 1},
    "GELU": {"approximate": "tanh"},
    "Hardshrink": {"lambd": 0.3},
    "LeakyReLU": {"negative_slope": 0.2},
    "Softplus": {"beta": 2.0, "threshold": 5.0},
    "Softshrink": {"lambd": 0.2},
    "PReLU": {"num_parameters": 6, "init": 0.1},
    "Softmin": {"dim": 1},
    "Softmax": {"dim": 1},
    "LogSoftmax": {"dim": 1},
}
ACTIVATIONS = [name for name in nn.modules.activation.__all__ if name != "MultiheadAttention"]


@pytest.mark.parametrize("name", list(LAYERS))
def test_every_torch_layer_round_trips_bit_for_bit(name: str, tmp_path: Path) -> None:
    make, inputs = LAYERS[name]
    torch.manual_seed(0)
    model = make()
    for buffer in model.buffers():  # running statistics that are not the defaults, so loading them matters
        if buffer.is_floating_point():
            buffer.uniform_(0.5, 1.5)
    loaded, description = _round_trip(model, tmp_path)
    assert description["build"]["kind"] == "layers"
    assert type(loaded) is type(model) and repr(loaded) == repr(model)
    _same_outputs(model, loaded, *inputs())


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_every_activation_round_trips_with_its_arguments(name: str, tmp_path: Path) -> None:
    model = getattr(nn, name)(**ACTIVATION_ARGUMENTS.get(name, {}))
    loaded, description = _round_trip(model, tmp_path)
    assert description["build"]["layers"] == {"type": name, "args": ACTIVATION_ARGUMENTS.get(name, {})}
    assert repr(loaded) == repr(model)
    _same_outputs(model, loaded, _image(6))


def test_nested_containers_keep_their_names(tmp_path: Path) -> None:
    torch.manual_seed(0)
    encoder = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 4, 3), act=nn.GELU(), pool=nn.AdaptiveAvgPool2d(1)))
    heads = nn.ModuleList([nn.Linear(4, 2), nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))])
    model = nn.ModuleDict({"encoder": encoder, "flat": nn.Flatten(), "heads": heads})
    loaded, description = _round_trip(model, tmp_path)
    assert isinstance(loaded, nn.ModuleDict) and list(loaded) == ["encoder", "flat", "heads"]
    assert list(dict(loaded["encoder"].named_children())) == ["conv", "act", "pool"]
    assert description["build"]["layers"]["children"]["encoder"]["children"]["act"] == {"type": "GELU", "args": {}}
    assert list(loaded.state_dict()) == list(model.state_dict())
    x = _image()
    for head, loaded_head in zip(model["heads"], loaded["heads"], strict=True):
        chain = nn.Sequential(model["encoder"], model["flat"], head)
        loaded_chain = nn.Sequential(loaded["encoder"], loaded["flat"], loaded_head)
        _same_outputs(chain, loaded_chain, x)


def test_the_parameters_dtype_and_frozen_layers_come_back(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(5, 3), nn.Flatten(), nn.Linear(6, 2)).double()
    model[0].half()  # one layer in another dtype
    model[2].weight.requires_grad_(False)
    loaded, description = _round_trip(model, tmp_path)
    assert (description["dtype"], description["dtypes"], description["frozen"]) == (
        "float64",
        {"0.weight": "float16"},
        ["2.weight"],
    )
    assert loaded[0].weight.dtype == torch.float16 and loaded[2].bias.dtype == torch.float64
    assert [p.requires_grad for p in loaded.parameters()] == [True, False, True]
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True)
    )


def _recipe_model(name: str) -> nn.Module:
    """The model a built-in recipe trains; Fashion-MNIST's sizes (784 inputs) when that is not installed."""
    from trainwise.config import load_config
    from trainwise.models import build_model
    from trainwise.recipes import build

    config = load_config(name)
    try:
        return build(config).model
    except DataError:  # the data is not here: the model the recipe builds on it
        outputs = config.model.outputs or 10
        return build_model(config.model.name, 784, outputs, init=config.model.init or None, **config.model.options)


@pytest.mark.parametrize("name", RECIPE_NAMES)
def test_every_recipe_model_round_trips_bit_for_bit(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    random.seed(0)
    model = _recipe_model(name)
    loaded, description = _round_trip(model, tmp_path)
    assert description["build"]["kind"] == "spec" and type(loaded) is type(model)
    x = torch.randn(4, description["build"]["spec"]["in_features"], generator=torch.Generator().manual_seed(2))
    if name.startswith("w3-dynamic"):  # its forward draws a repeat count: the same draw for both
        loaded._random.setstate(model._random.getstate())
    _same_outputs(model, loaded, x)


class NoArguments(nn.Module):
    """A user model whose constructor needs no arguments: rebuilt by import path."""

    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.layer = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x).tanh()


class WithArguments(nn.Module):
    def __init__(self, d_in: int, hidden: list[int], scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(*(nn.Linear(a, b) for a, b in zip([d_in, *hidden], hidden, strict=False)))
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) * self.scale


def test_an_importable_user_class_is_rebuilt_by_import_path(tmp_path: Path) -> None:
    model = NoArguments()
    loaded, description = _round_trip(model, tmp_path / "a")
    assert description["build"] == {"kind": "import", "class": "tests.test_saved_models:NoArguments", "init_args": {}}
    _same_outputs(model, loaded, torch.randn(2, 3))
    model = WithArguments(4, [5, 2], scale=2.0)
    with pytest.raises(TrainwiseError, match=r"cannot be rebuilt.*needs the arguments d_in, hidden.*init_args"):
        _round_trip(model, tmp_path / "b")
    loaded, description = _round_trip(model, tmp_path / "c", init_args={"d_in": 4, "hidden": [5, 2], "scale": 2.0})
    assert isinstance(loaded, WithArguments) and loaded.scale == 2.0
    assert description["build"]["init_args"] == {"d_in": 4, "hidden": [5, 2], "scale": 2.0}
    _same_outputs(model, loaded, torch.randn(2, 4))
    with pytest.raises(ConfigError, match=r"init_args: WithArguments\(\*\*init_args\) does not rebuild the model"):
        trainwise.save(model, tmp_path / "d", init_args={"d_in": 4, "hidden": [6, 2]})
    with pytest.raises(ConfigError, match=r"init_args\['scale'\] is a Tensor, which JSON cannot hold"):
        trainwise.save(model, tmp_path / "e", init_args={"d_in": 4, "hidden": [5, 2], "scale": torch.tensor(2.0)})


def test_a_class_defined_in_a_script_needs_model_to_load(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import torch, trainwise
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.layer = nn.Linear(3, 2)

        model = Net()
        trainwise.save(model, "net")
        try:
            trainwise.load("net")
        except trainwise.TrainwiseError as exc:
            print(exc)
        print(torch.equal(trainwise.load("net", model=Net()).layer.weight, model.layer.weight))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""})  # fmt: skip
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stderr
    assert len(lines) == 2 and lines[1] == "True"
    assert "Net is defined in __main__ (a script or a notebook)" in lines[0]
    assert lines[0].endswith("pass model=Net(...) to load the weights into")


def test_what_cannot_be_described_is_recorded_and_named_at_load(tmp_path: Path) -> None:
    shared = nn.Linear(3, 3)
    cases = {
        "tied": (nn.Sequential(shared, nn.ReLU(), shared), "layers share parameters (tied weights)"),
        "parametrized": (  # a class torch makes on the fly
            nn.utils.parametrizations.weight_norm(nn.Linear(3, 2)),
            "torch.nn.utils.parametrize:ParametrizedLinear does not import as the same class",
        ),
    }
    for name, (model, reason) in cases.items():
        folder = trainwise.save(model, tmp_path / name)
        description = json.loads((folder / "model.json").read_text())
        assert description["build"] is None and reason in description["problem"]
        with pytest.raises(TrainwiseError, match=r"cannot be rebuilt from its description.*pass model="):
            trainwise.load(folder)
    tied = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    tied[1].weight = tied[0].weight
    trainwise.save(tied, tmp_path / "shared-weight")
    problem = json.loads((tmp_path / "shared-weight" / "model.json").read_text())["problem"]
    assert "share parameters" in problem


def test_saving_draws_no_random_numbers(tmp_path: Path) -> None:
    torch.manual_seed(5)
    random.seed(5)
    model = nn.Sequential(nn.Linear(20, 20), nn.Dropout(0.5))
    expected = (torch.rand(3), random.random())
    torch.manual_seed(5)
    random.seed(5)
    model = nn.Sequential(nn.Linear(20, 20), nn.Dropout(0.5))
    trainwise.save(model, tmp_path / "m")  # rebuilds the model to check its description
    assert (torch.rand(3).tolist(), random.random()) == (expected[0].tolist(), expected[1])


def test_a_description_names_only_torch_layers_or_module_classes(tmp_path: Path) -> None:
    trainwise.save(nn.Linear(2, 1), tmp_path / "m")
    description_file = tmp_path / "m" / "model.json"
    description = json.loads(description_file.read_text())
    forged = {
        "layers": {"kind": "layers", "layers": {"type": "Module", "args": {}}},
        "import": {"kind": "import", "class": "os:system", "init_args": {"command": "echo hacked"}},
    }
    for build, message in (("layers", "'Module' is not one of torch.nn's layers"), ("import", "os:system is")):
        description_file.write_text(json.dumps({**description, "build": forged[build]}))
        with pytest.raises(TrainwiseError, match=rf"cannot rebuild the model \({message}"):
            trainwise.load(tmp_path / "m")


def test_older_descriptions_still_load(tmp_path: Path) -> None:
    from trainwise.models import build_model

    torch.manual_seed(0)
    model = build_model("mlp", 4, 2, hidden=[8])
    trainwise.save(model, tmp_path / "v1")
    spec = {"name": "mlp", "in_features": 4, "out_features": 2, "options": {"hidden": [8]}}
    version_1 = {"format": "trainwise-model", "version": 1, "model": spec, "class": "x:Sequential", "config": None}
    (tmp_path / "v1" / "model.json").write_text(json.dumps(version_1))
    x = torch.randn(3, 4)
    _same_outputs(model, trainwise.load(tmp_path / "v1"), x)
    (tmp_path / "v1" / "model.json").write_text(json.dumps({**spec, "input": {"shape": [4], "dtype": "float32"}}))
    _same_outputs(model, trainwise.load(tmp_path / "v1"), x)  # a run folder's model.json before versions
    (tmp_path / "v1" / "model.json").write_text(json.dumps({**version_1, "model": None, "class": "m:Net"}))
    with pytest.raises(TrainwiseError, match=r"\(Net\) was not built by trainwise.*pass model=Net\(\.\.\.\)"):
        trainwise.load(tmp_path / "v1")


def test_a_python_fit_run_folder_loads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    X = torch.randn(40, 3)
    y = (X.sum(1) > 0).long()
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    # on the CPU, on any machine ("auto" would pick a GPU): the loaded model's outputs are compared on the CPU
    result = trainwise.fit(model, (X, y), loss="cross_entropy", lr=0.1, epochs=3, run_dir=tmp_path,
                           progress=False, doctor="off", device="cpu")  # fmt: skip
    assert result.run is not None
    assert json.loads((result.run / "model.json").read_text())["build"]["kind"] == "layers"
    _same_outputs(result.model, trainwise.load(result.run), X)
