"""Built-in models, and user models by import path.

`build_model(name, in_shape, out_features, **options)` makes any of them; `init` fills named
parameters with given values (the tutorials start from w = 1, b = 0 and the like).
"""

from __future__ import annotations

import importlib
import inspect
import math
import random
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from trainwise.errors import ConfigError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "silu": nn.SiLU,
}


class FlatLinear(nn.Linear):
    """nn.Linear over flattened samples, so images work too and parameters keep their plain names."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(1))


class Polynomial(nn.Module):
    """y = bias + sum_k weight[k-1] * x**k for k = 1..degree, one input feature, one output.

    Parameters start from standard normal values, as in "Learning PyTorch with Examples".
    """

    def __init__(self, degree: int = 3) -> None:
        super().__init__()
        if degree < 1:
            raise ConfigError(f"model.degree: must be at least 1, got {degree}")
        self.degree = degree
        # drawn in the tutorial's order a, b, c, d (bias first), so a seed gives its exact start
        start = torch.randn(degree + 1)
        self.bias = nn.Parameter(start[0].clone())
        self.weight = nn.Parameter(start[1:].clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x, x^2, ..., x^degree as running products: one kernel, and cheaper than a general pow
        features = x.reshape(x.shape[0], 1).expand(-1, self.degree).cumprod(1)
        return torch.addmv(self.bias, features, self.weight).unsqueeze(1)


def _flat(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) images as (N, C*H*W) rows; (N, F) batches (and unbatched vectors) unchanged."""
    return x.flatten(1) if x.ndim > 2 else x


class TwoLayerNet(nn.Module):
    """The custom module of "Learning PyTorch with Examples": Linear, clamp(min=0), Linear.

    An example of a user model loaded by import path ("trainwise.models:TwoLayerNet").
    """

    def __init__(self, d_in: int, hidden: int, d_out: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_in, hidden)
        self.linear2 = nn.Linear(hidden, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.linear1(_flat(x)).clamp(min=0))


class DynamicNet(nn.Module):
    """W3's dynamic net: each forward reuses one middle layer 0 to `max_repeats` times, at random.

    The repeat count comes from Python's random module seeded once, so runs repeat exactly.
    """

    def __init__(self, d_in: int, hidden: int, d_out: int, max_repeats: int = 3, seed: int = 0) -> None:
        super().__init__()
        if max_repeats < 0:
            raise ConfigError(f"model.max_repeats: must be at least 0, got {max_repeats}")
        self.input_linear = nn.Linear(d_in, hidden)
        self.middle_linear = nn.Linear(hidden, hidden)
        self.output_linear = nn.Linear(hidden, d_out)
        self.max_repeats = max_repeats
        self._random = random.Random(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input_linear(_flat(x)).clamp(min=0)
        for _ in range(self._random.randint(0, self.max_repeats)):
            h = self.middle_linear(h).clamp(min=0)
        return self.output_linear(h)


def _activation(name: str) -> nn.Module:
    key = str(name).lower().replace("-", "_")
    if key not in ACTIVATIONS:
        raise ConfigError(f"model.activation: unknown {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[key]()


def _check_dropout(dropout: float) -> None:
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"model.dropout: must be in [0, 1), got {dropout}")


def linear(in_features: int, out_features: int, bias: bool = True) -> nn.Module:
    """A linear (affine) model, y = x W^T + b."""
    return FlatLinear(in_features, out_features, bias=bias)


def polynomial(in_features: int, out_features: int, degree: int = 3) -> nn.Module:
    """A polynomial of one input: bias + w1 x + w2 x^2 + ... (any degree)."""
    if in_features != 1 or out_features != 1:
        raise ConfigError(
            f"model.name: model 'polynomial' fits one input to one output, but the data has {in_features} inputs and "
            f"{out_features} outputs; use data.poly_features with model 'linear' instead"
        )
    return Polynomial(degree)


def logistic(in_features: int, out_features: int) -> nn.Module:
    """Multinomial logistic regression: one linear layer of class logits over the flattened input."""
    return FlatLinear(in_features, out_features)


def mlp(
    in_features: int,
    out_features: int,
    hidden: Sequence[int] = (512, 512),
    activation: str = "relu",
    dropout: float = 0.0,
    batchnorm: bool = False,
) -> nn.Module:
    """Flatten, then Linear-[BatchNorm]-activation-[Dropout] per hidden size, then a Linear output."""
    _check_dropout(dropout)
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for size in hidden:
        layers.append(nn.Linear(width, size))
        if batchnorm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(_activation(activation))
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def dynamic_net(
    in_features: int, out_features: int, hidden: int = 100, max_repeats: int = 3, seed: int = 0
) -> nn.Module:
    """W3's weight-sharing dynamic net."""
    return DynamicNet(in_features, hidden, out_features, max_repeats=max_repeats, seed=seed)


def cnn(
    in_features: int,
    out_features: int,
    in_channels: int = 1,
    channels: Sequence[int] = (32, 64),
    image_size: int = 28,
    hidden: int = 128,
    dropout: float = 0.25,
    batchnorm: bool = True,
) -> nn.Module:
    """A small CNN: per stage conv3x3-[BN]-ReLU-maxpool2, then Linear-ReLU-[Dropout]-Linear."""
    _check_dropout(dropout)
    if in_features != in_channels * image_size * image_size:
        raise ConfigError(
            f"model.image_size: model 'cnn' expects images of {in_channels}x{image_size}x{image_size} "
            f"({in_channels * image_size * image_size} values) but samples have {in_features}; "
            "set model.in_channels and model.image_size"
        )
    layers: list[nn.Module] = [nn.Unflatten(1, (in_channels, image_size, image_size))]
    width, size = in_channels, image_size
    for out_channels in channels:
        layers += [nn.Conv2d(width, out_channels, 3, padding=1, bias=not batchnorm)]
        if batchnorm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers += [nn.ReLU(), nn.MaxPool2d(2)]
        width, size = out_channels, size // 2
    layers += [nn.Flatten(), nn.Linear(width * size * size, hidden), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden, out_features))
    return _FlatInput(nn.Sequential(*layers))


class _FlatInput(nn.Module):
    """Accept (N, C, H, W) or (N, C*H*W) input, so image and flat datasets both work."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.reshape(x.shape[0], -1))


BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "linear": linear,
    "polynomial": polynomial,
    "logistic": logistic,
    "mlp": mlp,
    "dynamic_net": dynamic_net,
    "cnn": cnn,
}


def import_object(path: str) -> Any:
    """Import "package.module:Name". This runs the module's code: by design, only what the config names."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"model.name: {path!r} is neither a built-in model nor 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"model.name: cannot import module {module_name!r} ({exc}); check PYTHONPATH") from None
    found: Any = module
    for part in attr.split("."):  # "module:Outer.Inner" reaches nested classes too
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ConfigError(f"model.name: module {module_name!r} has no {attr!r}") from None
    return found


def _check_model_factory(name: str, factory: Any) -> None:
    """An import-path model is called only if it is an nn.Module subclass, or a Python function annotated to
    return one (torchvision.models:resnet18): a config naming os:system or subprocess:run is refused before
    anything is called. (Importing the module runs its code; that is the user's code, by design.)"""
    if isinstance(factory, type):
        if issubclass(factory, nn.Module):
            return
        what = f"the class {factory.__module__}.{factory.__qualname__}"
    elif inspect.isfunction(factory):
        try:
            returns = typing.get_type_hints(factory).get("return")
        except Exception:  # unresolvable annotations: not known to return a module
            returns = None
        if isinstance(returns, type) and issubclass(returns, nn.Module):
            return
        what = "a function not annotated to return a torch.nn.Module"
    else:
        what = f"a {type(factory).__name__}"
    raise ConfigError(
        f"model.name: {name} is {what}, not a torch.nn.Module subclass; an import-path model must name an "
        "nn.Module class (or a function annotated '-> nn.Module'), and trainwise calls nothing else"
    )


def model_options(name: str) -> Mapping[str, inspect.Parameter]:
    """The options a built-in model accepts besides the sizes inferred from data."""
    params = inspect.signature(BUILDERS[name]).parameters
    return {k: p for k, p in params.items() if k not in ("in_features", "out_features")}


SPEC_ATTRIBUTE = "trainwise_spec"


def build_model(
    name: str,
    in_features: int,
    out_features: int,
    *,
    init: Mapping[str, float | Sequence[Any]] | None = None,
    **options: Any,
) -> nn.Module:
    """A built-in model (sizes from the data) or a user class by import path (called with `options`)."""
    key = name.lower().replace("-", "_")
    if key in BUILDERS:
        allowed = model_options(key)
        for option in options:
            if option not in allowed:
                raise ConfigError(
                    f"model.{option}: not an option of model {key!r}; allowed: {', '.join(allowed) or 'none'}"
                )
        model = BUILDERS[key](in_features, out_features, **options)
    else:
        factory = import_object(name)
        _check_model_factory(name, factory)
        try:
            model = factory(**options)
        except TypeError as exc:
            raise ConfigError(f"model.name: {name} rejected its options {sorted(options)}: {exc}") from None
        if not isinstance(model, nn.Module):
            raise ConfigError(f"model.name: {name} made a {type(model).__name__}, not a torch.nn.Module")
    if init:
        set_parameters(model, init)
    # how to build it again (trainwise.save writes it next to the weights; init values are in the weights)
    spec = {"name": name, "in_features": in_features, "out_features": out_features, "options": dict(options)}
    setattr(model, SPEC_ATTRIBUTE, spec)
    return model


def spec_of(model: nn.Module) -> dict[str, Any] | None:
    """How build_model made this model (name, sizes, options), or None for a model it did not make."""
    spec = getattr(model, SPEC_ATTRIBUTE, None)
    return dict(spec) if isinstance(spec, dict) else None


def set_parameters(model: nn.Module, values: Mapping[str, float | Sequence[Any]]) -> None:
    """Fill named parameters with a constant (broadcast) or exact values of the parameter's shape."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in values.items():
            if name not in params:
                from trainwise.config import toml_key

                raise ConfigError(f"model.init.{toml_key(name)}: no such parameter; the model has {', '.join(params)}")
            target = params[name]
            try:
                tensor = torch.as_tensor(value, dtype=target.dtype)
            except (TypeError, ValueError, RuntimeError) as exc:
                raise ConfigError(
                    f"model.init.{name}: {value!r} is not a number or a list of numbers ({exc})"
                ) from None
            if tensor.numel() not in (1, target.numel()):
                shape = tuple(target.shape)
                raise ConfigError(f"model.init.{name}: got {tensor.numel()} values for a parameter of shape {shape}")
            # one value (also given as [v] or [[v]]) fills the parameter; reshape before broadcasting,
            # since expand_as cannot drop dimensions ([0.0] into the polynomial's 0-d bias)
            target.copy_(tensor.reshape(target.shape) if tensor.numel() == target.numel() else tensor.reshape(()))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def in_features_of(sample_shape: Sequence[int]) -> int:
    return math.prod(sample_shape) if sample_shape else 1
