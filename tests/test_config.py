"""Tests for trainwise.config: recipes, validation messages, --set overrides, files, round trips."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w

import trainwise
from tests.conftest import RECIPE_NAMES
from trainwise import config as C
from trainwise.errors import ConfigError, TrainwiseError

RECIPES = RECIPE_NAMES

DATA_KEYS = "name, normalize, poly_features, one_hot, val_split, stratify, shuffle, limit, fallback, test"
TRAIN_KEYS = (
    "epochs, batch_size, seed, device, metrics, clip_grad_norm, max_steps, accumulate, val_every, val_every_steps, "
    "ema, early_stopping, doctor, compile, precision"
)
BUILTIN_DATASETS = "temperature, sine, random-regression, fashion-mnist, mnist"


def base() -> dict[str, Any]:
    """A small valid config as parsed TOML; tests change one thing in a copy."""
    return {
        "data": {"name": "temperature", "normalize": 0.1},
        "model": {"name": "linear", "init": {"weight": 1.0, "bias": 0.0}},
        "loss": {"name": "mse"},
        "optim": {"name": "sgd", "lr": 1e-2},
        "train": {"epochs": 10},
    }


def error_of(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        C.validate(raw)
    message = str(info.value)
    assert "\n" not in message  # the CLI prints it as one line
    return message


def changed(path: str, value: Any, raw: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of `raw` (default: base()) with the dotted key set, creating sections as needed."""
    result = copy.deepcopy(raw if raw is not None else base())
    *sections, key = path.split(".")
    node = result
    for section in sections:
        node = node.setdefault(section, {})
    node[key] = value
    return result


def removed(path: str) -> dict[str, Any]:
    result = base()
    *sections, key = path.split(".")
    node = result
    for section in sections:
        node = node[section]
    del node[key]
    return result


# --- built-in recipes ------------------------------------------------------------------------------


def test_recipe_names_are_the_recipe_files() -> None:
    folder = Path(trainwise.__file__).parent / "recipes"
    assert C.recipe_names() == RECIPES
    assert sorted(p.stem for p in folder.glob("*.toml")) == RECIPES
    assert len(RECIPES) == 18


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_loads_validates_and_round_trips(name: str) -> None:
    config = C.load_config(name)
    assert config.name == name
    assert config.workload == name[:2].upper()
    assert config.description
    # what the run record stores in config.toml must load back to the same config
    text = tomli_w.dumps(config.to_dict())
    again = C.validate(tomllib.loads(text))
    assert again == config
    assert again.to_dict() == config.to_dict()


def test_recipe_values() -> None:
    w1 = C.load_config("w1-normalized")
    assert (w1.data.name, w1.data.normalize, w1.model.name) == ("temperature", 0.1, "linear")
    assert w1.model.init == {"weight": 1.0, "bias": 0.0}
    assert (w1.optim.name, w1.optim.lr, w1.train.epochs, w1.train.batch_size) == ("sgd", 0.01, 5000, "full")
    assert w1.scheduler is None and w1.train.early_stopping is None
    dynamic = C.load_config("w3-dynamic")
    assert dynamic.optim.options == {"momentum": 0.9}
    assert dynamic.data.options == {"n_samples": 64, "n_features": 1000, "n_outputs": 10}
    assert dynamic.model.options == {"hidden": 100}
    assert dynamic.loss.reduction == "sum"
    custom = C.load_config("w3-custom-module")
    assert custom.model.name == "trainwise.models:TwoLayerNet"
    assert custom.model.options == {"d_in": 1000, "hidden": 100, "d_out": 10}
    w4 = C.load_config("w4-rmsprop-as-written")
    assert (w4.optim.name, w4.optim.lr, w4.data.name) == ("rmsprop", 1e-6, "sine")
    w5 = C.load_config("w5-as-written")
    assert (w5.model.outputs, w5.train.batch_size, w5.train.metrics) == (18, 64, ["accuracy"])
    w2 = C.load_config("w2-logistic")
    assert (w2.data.name, w2.data.fallback) == ("mnist", "fashion-mnist")


def test_to_dict_is_plain_toml_data() -> None:
    config = C.load_config("w1-val-split", ["scheduler.name=step", "scheduler.step_size=100"])
    data = config.to_dict()
    assert data["scheduler"] == {"name": "step", "step_size": 100}
    assert data["data"]["val_split"] == 0.2
    assert "limit" not in data["data"]  # None values are left out: TOML has no null
    assert "outputs" not in data["model"]
    assert C.validate(tomllib.loads(tomli_w.dumps(data))) == config


def test_round_trip_keeps_pass_through_options() -> None:
    raw = changed("train.early_stopping", {"patience": 3, "monitor": "loss"})
    raw["scheduler"] = {"name": "plateau", "mode": "min", "patience": 2}
    raw["optim"].update(name="adam", betas=[0.8, 0.9], weight_decay=0.01)
    config = C.validate(raw)
    again = C.validate(tomllib.loads(tomli_w.dumps(config.to_dict())))
    assert again == config
    assert again.optim.options == {"betas": [0.8, 0.9], "weight_decay": 0.01}
    assert again.scheduler is not None and again.scheduler.options == {"mode": "min", "patience": 2}
    assert again.train.early_stopping is not None and again.train.early_stopping.patience == 3


# --- unknown keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "foo",
            1,
            "foo: unknown key; the top level takes name, description, workload, data, model, loss, optim, "
            "scheduler, train, checkpoint, log",
        ),
        (
            "descripton",
            "x",
            "descripton: unknown key (did you mean description?); the top level takes name, description, "
            "workload, data, model, loss, optim, scheduler, train, checkpoint, log",
        ),
        (
            "data.foo",
            1,
            f"data.foo: unknown key; dataset 'temperature' takes no options, and [data] takes {DATA_KEYS}",
        ),
        (
            "data.normalise",
            0.1,
            f"data.normalise: unknown key (did you mean normalize?); dataset 'temperature' takes no options, "
            f"and [data] takes {DATA_KEYS}",
        ),
        ("train.foo", 1, f"train.foo: unknown key; [train] takes {TRAIN_KEYS}"),
        ("train.epoch", 1, f"train.epoch: unknown key (did you mean epochs?); [train] takes {TRAIN_KEYS}"),
        (
            "train.early_stopping.patiense",
            3,
            "train.early_stopping.patiense: unknown key (did you mean patience?); [train.early_stopping] takes "
            "patience, monitor, min_delta, restore_best",
        ),
        (
            "model.hiden",
            [8],
            "model.hiden: unknown key; model 'linear' takes bias, and [model] takes name, outputs, init",
        ),
        ("loss.foo", 1, "loss.foo: unknown key; loss 'mse' takes no options, and [loss] takes name, reduction"),
        ("loss.delta", 1.0, "loss.delta: unknown key; loss 'mse' takes no options, and [loss] takes name, reduction"),
    ],
)
def test_unknown_key(path: str, value: Any, message: str) -> None:
    assert error_of(changed(path, value)) == message


def test_unknown_dataset_option_names_the_allowed_ones() -> None:
    raw = changed("data", {"name": "sine", "n_sample": 100})
    assert error_of(raw) == (
        "data.n_sample: unknown key (did you mean n_samples?); dataset 'sine' takes n_samples, low, high, "
        f"and [data] takes {DATA_KEYS}"
    )
    raw = changed("data", {"name": "random-regression", "n_feature": 3})
    assert error_of(raw).startswith(
        "data.n_feature: unknown key (did you mean n_features?); dataset 'random-regression' takes "
        "n_samples, n_features, n_outputs, seed"
    )
    assert C.validate(changed("data", {"name": "sine", "n_samples": 100, "low": -1, "high": 1})).data.options == {
        "n_samples": 100,
        "low": -1,
        "high": 1,
    }


def test_unknown_model_option_names_the_allowed_ones() -> None:
    raw = changed("model", {"name": "mlp", "hiden": [100]})
    assert error_of(raw) == (
        "model.hiden: unknown key (did you mean hidden?); model 'mlp' takes hidden, activation, dropout, "
        "batchnorm, and [model] takes name, outputs, init"
    )
    raw = changed("model", {"name": "polynomial", "degre": 2})
    assert error_of(raw) == (
        "model.degre: unknown key (did you mean degree?); model 'polynomial' takes degree, "
        "and [model] takes name, outputs, init"
    )
    # the name's spelling does not matter: Dynamic-Net is dynamic_net
    raw = changed("model", {"name": "Dynamic-Net", "max_repeat": 2})
    assert error_of(raw).startswith("model.max_repeat: unknown key (did you mean max_repeats?); model 'dynamic_net'")


def test_unknown_optimizer_option() -> None:
    message = error_of(changed("optim.momentom", 0.9))
    assert message.startswith(
        "optim.momentom: unknown key (did you mean momentum?); optimizer SGD takes momentum, dampening, "
        "weight_decay, nesterov"
    )
    assert message.endswith(", and [optim] takes name, lr")
    assert C.validate(changed("optim.momentum", 0.9)).optim.options == {"momentum": 0.9}
    # options follow the optimizer: amsgrad is Adam's, not SGD's
    assert error_of(changed("optim.amsgrad", True)).startswith("optim.amsgrad: unknown key; optimizer SGD takes")
    raw = changed("optim", {"name": "Adam", "lr": 1e-3, "amsgrad": True})
    assert C.validate(raw).optim.options == {"amsgrad": True}


def test_loss_options_follow_the_loss() -> None:
    assert C.validate(changed("loss", {"name": "huber", "delta": 2.0})).loss.options == {"delta": 2.0}
    assert error_of(changed("loss", {"name": "huber", "foo": 1})) == (
        "loss.foo: unknown key; loss 'huber' takes delta, and [loss] takes name, reduction"
    )
    # torch's deprecated size_average/reduce are not offered: reduction is the key
    assert error_of(changed("loss.reduce", False)) == (
        "loss.reduce: unknown key (did you mean reduction?); loss 'mse' takes no options, and [loss] takes name, "
        "reduction"
    )
    assert error_of(changed("loss.name", "nope")) == (
        "loss.name: unknown loss 'nope'; choose one of mse, cross_entropy, nll, bce_with_logits, bce, l1, huber, "
        "smooth_l1"
    )


def test_scheduler_options() -> None:
    raw = changed("scheduler", {"name": "step", "step_size": 100, "gamma": 0.5})
    scheduler = C.validate(raw).scheduler
    assert scheduler is not None
    assert (scheduler.name, scheduler.options, scheduler.interval) == ("step", {"step_size": 100, "gamma": 0.5}, None)
    assert error_of(changed("scheduler", {"name": "step", "step_sise": 10})) == (
        "scheduler.step_sise: unknown key (did you mean step_size?); scheduler StepLR takes step_size, gamma, "
        "last_epoch, and [scheduler] takes name, interval, monitor"
    )
    assert error_of(changed("scheduler", {"name": "cosine", "T_max": 10, "optimizer": 1})).startswith(
        "scheduler.optimizer: unknown key; scheduler CosineAnnealingLR takes T_max, eta_min"
    )
    assert error_of(changed("scheduler", {"name": "nope"})).startswith("scheduler.name: unknown scheduler 'nope'; ")
    assert error_of(changed("scheduler", {"name": "step", "step_size": 1, "interval": "batch"})) == (
        "scheduler.interval: must be 'epoch' or 'step' (got 'batch')"
    )
    assert error_of(changed("scheduler", {"step_size": 1})) == (
        "scheduler.name: required key is missing; add name = ... under [scheduler]"
    )


# --- names of datasets, models, optimizers ---------------------------------------------------------


def test_unknown_names() -> None:
    assert error_of(changed("data.name", "nope")) == (
        f"data.name: unknown dataset 'nope'; built-in datasets: {BUILTIN_DATASETS}; "
        "a path to a .csv (or .csv.gz) or .npz file also works"
    )
    assert error_of(changed("data.fallback", "fashion-mnst")).startswith(
        "data.fallback: unknown dataset 'fashion-mnst' (did you mean 'fashion-mnist'?); "
    )
    assert error_of(changed("model.name", "nope")) == (
        "model.name: unknown model 'nope'; use one of linear, polynomial, logistic, mlp, dynamic_net, cnn "
        "or an import path 'package.module:ClassName'"
    )
    assert error_of(changed("optim.name", "sgdd")).startswith("optim.name: unknown optimizer 'sgdd'; choose one of ")
    # a model given by import path is not imported while validating: importing runs its code
    raw = changed("model", {"name": "no_such_package.models:Net", "width": 3})
    assert C.validate(raw).model.options == {"width": 3}
    # a file dataset's existence is checked when it loads, not here; its options are checked here
    assert C.validate(changed("data", {"name": "/nope.csv", "target": "y"})).data.options == {"target": "y"}
    assert error_of(changed("data", {"name": "/nope.csv", "targt": "y"})).startswith(
        "data.targt: unknown key (did you mean target?); dataset '/nope.csv' takes target, task, header"
    )


# --- wrong types and impossible values -------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("train.epochs", "ten", "train.epochs: must be a valid integer (got 'ten')"),
        ("train.epochs", 2.5, "train.epochs: must be a valid integer (got 2.5)"),
        ("train.epochs", True, "train.epochs: must be a valid integer (got True)"),
        ("train.epochs", 0, "train.epochs: must be greater than or equal to 1 (got 0)"),
        ("train.epochs", -3, "train.epochs: must be greater than or equal to 1 (got -3)"),
        ("train.batch_size", 0, "train.batch_size: must be a whole number of samples (at least 1) or 'full' (got 0)"),
        (
            "train.batch_size",
            "all",
            "train.batch_size: must be a whole number of samples (at least 1) or 'full' (got 'all')",
        ),
        ("train.seed", 1.5, "train.seed: must be a valid integer (got 1.5)"),
        (
            "train.device",
            "gpu0",
            "train.device: not a device; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps' (got 'gpu0')",
        ),
        ("train.clip_grad_norm", 0, "train.clip_grad_norm: must be greater than 0 (got 0)"),
        ("train.metrics", "accuracy", "train.metrics: must be a valid list (got 'accuracy')"),
        ("train.early_stopping", 3, "train.early_stopping: must be a table (got 3)"),
        (
            "train.early_stopping.patience",
            0,
            "train.early_stopping.patience: must be greater than or equal to 1 (got 0)",
        ),
        ("optim.lr", -1, "optim.lr: must be greater than 0 or must be 'auto' (got -1)"),
        ("optim.lr", 0, "optim.lr: must be greater than 0 or must be 'auto' (got 0)"),
        ("optim.lr", "fast", "optim.lr: must be a valid number or must be 'auto' (got 'fast')"),
        ("optim.lr", float("inf"), "optim.lr: must be a finite number or must be 'auto' (got inf)"),
        ("optim.lr", float("nan"), "optim.lr: must be a finite number or must be 'auto' (got nan)"),
        ("data.val_split", 1.5, "data.val_split: must be less than 1 (got 1.5)"),
        ("data.val_split", 1.0, "data.val_split: must be less than 1 (got 1.0)"),
        ("data.val_split", -0.1, "data.val_split: must be greater than or equal to 0 (got -0.1)"),
        ("data.limit", 0, "data.limit: must be greater than or equal to 1 (got 0)"),
        ("data.shuffle", "yes", "data.shuffle: must be a valid boolean (got 'yes')"),
        ("data.shuffle", 1, "data.shuffle: must be a valid boolean (got 1)"),
        ("data.poly_features", 21, "data.poly_features: must be less than or equal to 20 (got 21)"),
        (
            "data.normalize",
            "zscore",
            "data.normalize: must be 'none', 'standard', 'minmax' or a finite non-zero scale factor (got 'zscore')",
        ),
        (
            "data.normalize",
            0,
            "data.normalize: a scale factor must be non-zero; use 'none' to leave the inputs as they are (got 0)",
        ),
        ("model.outputs", 0, "model.outputs: must be greater than or equal to 1 (got 0)"),
        ("model.init.weight", "one", "model.init.weight: must be a number or a list of numbers (got 'one')"),
        ("model.init", 1.0, "model.init: must be a table (got 1.0)"),
        ("model", "linear", "model: must be a table (got 'linear')"),
        ("loss.reduction", "avg", "loss.reduction: must be 'mean' or 'sum' (got 'avg')"),
        ("name", 3, "name: must be a valid string (got 3)"),
    ],
)
def test_wrong_type_or_value(path: str, value: Any, message: str) -> None:
    assert error_of(changed(path, value)) == message


def test_unknown_metric() -> None:
    message = error_of(changed("train.metrics", ["accuracy", "precision"]))
    assert message.startswith("train.metrics: unknown metric 'precision'; choose from accuracy, ")
    assert message.endswith(" (got ['accuracy', 'precision'])")


def test_pass_through_option_types() -> None:
    mlp = {"name": "mlp", "hidden": [16]}
    assert error_of(changed("model", {**mlp, "hidden": "abc"})) == "model.hidden: must be a list (got 'abc')"
    assert error_of(changed("model", {**mlp, "hidden": 100})) == "model.hidden: must be a list (got 100)"
    assert error_of(changed("model", {**mlp, "hidden": [100, 2.5]})) == (
        "model.hidden: must be a valid integer (got [100, 2.5])"
    )
    assert error_of(changed("model", {**mlp, "dropout": "x"})) == "model.dropout: must be a valid number (got 'x')"
    assert error_of(changed("model", {**mlp, "batchnorm": 1})) == "model.batchnorm: must be a valid boolean (got 1)"
    assert error_of(changed("model", {"name": "polynomial", "degree": 2.0})) == (
        "model.degree: must be a valid integer (got 2.0)"
    )
    assert error_of(changed("optim.momentum", "high")) == "optim.momentum: must be a valid number (got 'high')"
    assert error_of(changed("optim.nesterov", "yes")) == "optim.nesterov: must be a valid boolean (got 'yes')"
    assert error_of(changed("loss", {"name": "huber", "delta": "x"})) == "loss.delta: must be a valid number (got 'x')"
    assert error_of(changed("scheduler", {"name": "step", "step_size": "x"})) == (
        "scheduler.step_size: must be a valid integer (got 'x')"
    )
    assert error_of(changed("scheduler", {"name": "onecycle", "anneal_strategy": "cosine"})) == (
        "scheduler.anneal_strategy: must be 'cos' or 'linear' (got 'cosine')"
    )
    assert error_of(changed("data", {"name": "sine", "n_samples": "many"})) == (
        "data.n_samples: must be a valid integer (got 'many')"
    )
    # integers are numbers, and TOML arrays stand in for tuples (Adam's betas)
    assert C.validate(changed("data", {"name": "sine", "low": -3, "high": 3})).data.options == {"low": -3, "high": 3}
    raw = changed("optim", {"name": "adamax", "lr": 1e-3, "betas": [0.9, 0.99]})
    assert C.validate(raw).optim.options == {"betas": [0.9, 0.99]}


def test_valid_values_are_kept() -> None:
    config = C.validate(
        changed(
            "train",
            {"epochs": 3, "batch_size": 32, "device": "cpu", "metrics": ["mae", "r2"], "clip_grad_norm": 1},
        )
    )
    assert (config.train.epochs, config.train.batch_size, config.train.device) == (3, 32, "cpu")
    assert config.train.metrics == ["mae", "r2"] and config.train.clip_grad_norm == 1.0
    assert C.validate(changed("data.normalize", "standard")).data.normalize == "standard"
    assert C.validate(changed("data.normalize", 2)).data.normalize == 2.0
    assert C.validate(changed("optim.lr", 1)).optim.lr == 1.0
    assert C.validate(changed("train.device", "cuda:1")).train.device == "cuda:1"  # CUDA is checked when training


def test_compile_and_precision_keys() -> None:
    defaults = C.validate(changed("train.epochs", 3)).train
    assert (defaults.compile, defaults.precision) == (False, "32")
    assert C.validate(changed("train.compile", True)).train.compile is True
    assert C.validate(changed("train.precision", "bf16")).train.precision == "bf16"
    assert error_of(changed("train.precision", 16)) == "train.precision: must be '32', 'bf16' or 'fp16' (got 16)"
    assert error_of(changed("train.compile", "yes")) == "train.compile: must be a valid boolean (got 'yes')"
    from trainwise.recipes import run_config

    overrides = ["train.epochs=20", 'train.precision="bf16"', "train.device=cpu"]
    result = run_config(C.load_config("w1-normalized", overrides), progress=False)
    assert result.fit.status == "completed" and result.fit.history["loss"][-1] < result.fit.history["loss"][0]


# --- missing keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("optim.lr", "optim.lr: required key is missing; add lr = ... under [optim]"),
        ("train.epochs", "train.epochs: required key is missing; add epochs = ... under [train]"),
        ("data.name", "data.name: required key is missing; add name = ... under [data]"),
        ("model.name", "model.name: required key is missing; add name = ... under [model]"),
        ("model", "model: required section is missing; add the [model] table"),
        ("optim", "optim: required section is missing; add the [optim] table"),
        ("train", "train: required section is missing; add the [train] table"),
    ],
)
def test_missing_key(path: str, message: str) -> None:
    assert error_of(removed(path)) == message


def test_defaults_fill_optional_sections() -> None:
    raw = base()
    del raw["loss"]
    config = C.validate(raw)
    assert (config.loss.name, config.loss.reduction) == ("mse", "mean")
    assert (config.name, config.data.val_split, config.data.test, config.train.seed) == ("run", 0.0, True, 0)


def test_config_errors_are_trainwise_errors() -> None:
    # the CLI turns every TrainwiseError into one line and exit code 2
    assert issubclass(ConfigError, TrainwiseError)


# --- --set overrides -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "path", "value"),
    [
        ("train.epochs=10", ["train", "epochs"], 10),
        ("optim.lr=1e-3", ["optim", "lr"], 0.001),
        ("optim.lr=0.5", ["optim", "lr"], 0.5),
        ("optim.lr=-2", ["optim", "lr"], -2),
        ("data.name=fashion-mnist", ["data", "name"], "fashion-mnist"),
        ("data.name=/data/my file.csv", ["data", "name"], "/data/my file.csv"),
        ('data.normalize="standard"', ["data", "normalize"], "standard"),
        ("data.normalize=standard", ["data", "normalize"], "standard"),
        ("model.hidden=[1,2]", ["model", "hidden"], [1, 2]),
        ("model.hidden=[]", ["model", "hidden"], []),
        ("train.metrics=['accuracy']", ["train", "metrics"], ["accuracy"]),
        ("data.shuffle=false", ["data", "shuffle"], False),
        ("data.one_hot=true", ["data", "one_hot"], True),
        ("model.init={ weight = 1.0 }", ["model", "init"], {"weight": 1.0}),
        ("train.early_stopping.patience=3", ["train", "early_stopping", "patience"], 3),
        (" optim . lr = 0.25 ", ["optim", "lr"], 0.25),
        ("description=a=b", ["description"], "a=b"),
    ],
)
def test_parse_override(item: str, path: list[str], value: Any) -> None:
    assert C.parse_override(item) == (path, value)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("foo", "--set 'foo': expected section.key=value, e.g. --set optim.lr=0.001"),
        ("optim.lr", "--set 'optim.lr': expected section.key=value, e.g. --set optim.lr=0.001"),
        ("=1", "--set '=1': expected section.key=value, e.g. --set optim.lr=0.001"),
        ("optim..lr=1", "--set 'optim..lr=1': expected section.key=value, e.g. --set optim.lr=0.001"),
        ("optim.=1", "--set 'optim.=1': expected section.key=value, e.g. --set optim.lr=0.001"),
        ("optim.lr=", "--set 'optim.lr=': no value after '='; e.g. --set optim.lr=VALUE"),
    ],
)
def test_malformed_override(item: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        C.parse_override(item)
    assert str(info.value) == message


def test_apply_overrides_creates_sections() -> None:
    raw = C.apply_overrides({"optim": {"lr": 1}}, ["scheduler.name=step", "train.early_stopping.patience=3"])
    assert raw == {"optim": {"lr": 1}, "scheduler": {"name": "step"}, "train": {"early_stopping": {"patience": 3}}}
    with pytest.raises(ConfigError) as info:
        C.apply_overrides({"optim": {"lr": 1}}, ["optim.lr.x=1"])
    assert str(info.value) == "--set 'optim.lr.x=1': 'lr' is a value, not a section"


def test_load_config_with_overrides() -> None:
    config = C.load_config(
        "w1-normalized",
        [
            "train.epochs=7",
            "optim.lr=1e-3",
            "optim.momentum=0.5",
            "scheduler.name=step",
            "scheduler.step_size=2",
            "train.early_stopping.patience=4",
            "data.val_split=0.2",
        ],
    )
    assert (config.train.epochs, config.optim.lr, config.optim.options) == (7, 0.001, {"momentum": 0.5})
    assert config.scheduler is not None and config.scheduler.options == {"step_size": 2}
    assert config.train.early_stopping is not None and config.train.early_stopping.patience == 4
    assert config.data.val_split == 0.2
    assert config.name == "w1-normalized"
    # the last --set of a key wins
    assert C.load_config("w1-normalized", ["train.epochs=3", "train.epochs=4"]).train.epochs == 4


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=zero", "train.epochs: must be a valid integer (got 'zero')"),
        ("train.epochz=3", f"train.epochz: unknown key (did you mean epochs?); [train] takes {TRAIN_KEYS}"),
        ("optim.lr=-1", "optim.lr: must be greater than 0 or must be 'auto' (got -1)"),
        (
            "model.hidden=[1,2]",
            "model.hidden: unknown key; model 'linear' takes bias, and [model] takes name, outputs, init",
        ),
        ("train=5", "train: must be a table (got 5)"),
    ],
)
def test_bad_override_names_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        C.load_config("w1-normalized", [override])
    assert str(info.value) == message


# --- files -----------------------------------------------------------------------------------------

CONFIG_TOML = """
description = "a file config"

[data]
name = "sine"
n_samples = 50

[model]
name = "polynomial"
degree = 3

[optim]
name = "sgd"
lr = 1e-3

[train]
epochs = 4
"""


def test_load_config_from_file(tmp_path: Path) -> None:
    path = tmp_path / "my-fit.toml"
    path.write_text(CONFIG_TOML)
    config = C.load_config(path, ["train.epochs=6"])
    assert config.name == "my-fit"  # a file's config is named after the file unless it sets name
    assert (config.description, config.data.options, config.model.options) == (
        "a file config",
        {"n_samples": 50},
        {"degree": 3},
    )
    assert (config.train.epochs, config.loss.name) == (6, "mse")
    assert C.load_config(str(path)) == C.load_config(path)
    path.write_text('name = "named"\n' + CONFIG_TOML)
    assert C.load_config(path).name == "named"


def test_load_config_file_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(CONFIG_TOML.replace("n_samples = 50", "n_sample = 50"))
    with pytest.raises(ConfigError) as info:
        C.load_config(path)
    assert str(info.value).startswith("data.n_sample: unknown key (did you mean n_samples?); dataset 'sine' takes")


def test_missing_file_or_recipe(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        C.load_config(missing)
    assert str(info.value) == (
        f"{missing}: no such recipe or file; `trainwise recipes` lists the recipes, or pass a .toml path"
    )
    with pytest.raises(ConfigError) as info:
        C.load_config("w1-normalised")
    assert str(info.value) == (
        "w1-normalised: no such recipe or file (did you mean w1-normalized?); `trainwise recipes` lists the "
        "recipes, or pass a .toml path"
    )


def test_file_that_is_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[data\nname = 'temperature'\n")
    with pytest.raises(ConfigError) as info:
        C.load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not valid TOML (")
    assert "line 1" in message and "\n" not in message
    binary = tmp_path / "model.toml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ConfigError) as info:
        C.load_config(binary)
    assert str(info.value) == f"{binary}: not a TOML file (it is not UTF-8 text)"


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        C.load_config(tmp_path)
    assert str(info.value) == f"{tmp_path}: is a directory; pass a recipe name or a .toml file"


USER_MODELS = """
import torch
from torch import nn


class Strict(nn.Module):
    def __init__(self, width: int, scale: float = 1.0) -> None:
        super().__init__()
        if width > 100:
            raise ValueError("too wide\\nsecond line")  # the user's own wording, over two lines
        self.layer = nn.Linear(1, width)


class Loose(nn.Module):
    def __init__(self, width: int, **extra):
        super().__init__()
        self.layer = nn.Linear(1, width)
        self.extra = extra
"""


@pytest.fixture
def user_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "user_models_for_config_tests.py").write_text(USER_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "user_models_for_config_tests"


@pytest.mark.parametrize(
    ("cls", "options", "message"),
    [
        ("Strict", {"width": "auto"}, "model.width: must be a valid integer (got 'auto')"),
        ("Strict", {"width": 2, "scale": "big"}, "model.scale: must be a valid number (got 'big')"),
        ("Strict", {"width": 2, "depth": 3}, "model.depth: unknown key (did you mean width?); model {module}:Strict "
         "takes width, scale, and [model] takes name, outputs, init"),
        ("Strict", {"scale": 2.0}, "model.width: {module}:Strict rejected its options ['scale']: it requires width; "
         "add them under [model]"),
        ("Strict", {"width": 101}, "model.width: {module}:Strict rejected its options ['width'] (ValueError: too "
         "wide); check them against its signature and the data"),
        ("Strict", {"width": -1, "scale": 2.0}, "model.width, model.scale: {module}:Strict rejected its options "
         "['scale', 'width'] (RuntimeError: Trying to create tensor with negative dimension -1: [-1, 1]); check them "
         "against its signature and the data"),
        ("Loose", {"width": "wide"}, "model.width: must be a valid integer (got 'wide')"),
    ],
)  # fmt: skip
def test_import_path_model_options_are_one_line_naming_the_keys(
    user_models: str, cls: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        trainwise.build_model(f"{user_models}:{cls}", 1, 1, **options)
    assert str(caught.value) == message.format(module=user_models)


def test_import_path_model_with_extra_keywords_takes_any_key(user_models: str) -> None:
    model = trainwise.build_model(f"{user_models}:Loose", 1, 1, width=3, anything="goes")
    assert model.extra == {"anything": "goes"}
    assert tuple(model.layer.weight.shape) == (3, 1)


def test_models_name_the_model_sections_own_keys_as_the_config_defines_them() -> None:
    # models.py cannot import config (config imports models to check the built-ins' options)
    from trainwise.models import MODEL_SECTION_KEYS

    assert tuple(C.ModelConfig.model_fields) == MODEL_SECTION_KEYS
