"""Built-in models, and user models by import path.

`build_model(name, in_shape, out_features, **options)` makes any of them; `init` fills named
parameters with given values (the tutorials start from w = 1, b = 0 and the like).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import math
import random
import typing
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainwise.errors import ConfigError
from trainwise.options import check_factory_options, toml_key

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
# [model]'s own keys (config.ModelConfig's fields), which an unknown option's error lists next to the class's
MODEL_SECTION_KEYS = ("name", "outputs", "init")


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters are (the CPU for a model without any)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


@contextlib.contextmanager
def inference(model: nn.Module) -> typing.Iterator[None]:
    """Eval mode without gradients, the model's own mode restored afterwards (also after an error)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


@dataclass
class LayerSummary:
    """One row of a model summary: a layer (a module without children, or one that holds parameters of its
    own), in the order the forward pass called it."""

    name: str
    kind: str
    output_shape: str
    parameters: int
    trainable: int


@dataclass
class ModelSummary:
    """What `summary(model, input_shape)` returns: prints as a table (str, rich), shows as one in Jupyter."""

    model: str
    input_shape: tuple[int, ...]
    layers: list[LayerSummary]
    parameters: int
    trainable: int
    parameter_bytes: int  # parameters and buffers
    activation_bytes: int  # the layers' outputs for one sample (kept for backward while training)

    @property
    def frozen(self) -> int:
        return self.parameters - self.trainable

    def _rows(self) -> list[list[str]]:
        return [[layer.name, layer.kind, layer.output_shape, f"{layer.parameters:,}"] for layer in self.layers]

    def _caption(self) -> str:
        return (
            f"{self.parameters:,} parameters ({self.trainable:,} trainable, {self.frozen:,} frozen), "
            f"{_megabytes(self.parameter_bytes)} of weights and buffers, {_megabytes(self.activation_bytes)} "
            "of layer outputs per sample"
        )

    def _title(self) -> str:
        return f"{self.model} on inputs of {tuple(self.input_shape)} per sample (shapes for a batch of one)"

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        table = Table(title=self._title(), title_justify="left")
        for column, justify in (("layer", "left"), ("type", "left"), ("output shape", "left"), ("parameters", "right")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for row in self._rows():
            table.add_row(*row)
        return Group(table, self._caption())

    def __str__(self) -> str:
        from trainwise._display import TextTable

        return str(TextTable(self.__rich__()))

    def __repr__(self) -> str:
        from trainwise._display import brief_repr

        fields = {"model": self.model, "input_shape": self.input_shape, "layers": len(self.layers),
                  "parameters": self.parameters, "trainable": self.trainable}  # fmt: skip
        return brief_repr("ModelSummary", fields)

    def _repr_html_(self) -> str:
        from trainwise._display import html_table

        header = ["layer", "type", "output shape", "parameters"]
        return html_table(header, self._rows(), title=self._title(), caption=self._caption())


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.2f} MB" if size >= 10_000 else f"{size:,} bytes"


def _shape_text(output: Any) -> str:
    if isinstance(output, torch.Tensor):
        return str(tuple(output.shape))
    if isinstance(output, list | tuple):
        return "(" + ", ".join(_shape_text(item) for item in output) + ")"
    return type(output).__name__


def _output_bytes(output: Any) -> int:
    if isinstance(output, torch.Tensor):
        return output.numel() * output.element_size()
    if isinstance(output, list | tuple):
        return sum(_output_bytes(item) for item in output)
    return 0


def summary(model: nn.Module, input_shape: Sequence[int], *, dtype: torch.dtype = torch.float32) -> ModelSummary:
    """The model's layers in the order it calls them, each with its output shape and parameter count, and
    the totals: parameters (trainable and frozen) and memory, as Keras's `model.summary()` shows them.

    Args:
        model: any nn.Module; it runs one forward pass on zeros, in eval mode without gradients.
        input_shape: one sample's shape, without the batch dimension ((784,) or (1, 28, 28)).
        dtype: the inputs' dtype (torch.long for an embedding's token ids).
    """
    shape = tuple(int(size) for size in input_shape)
    names = {module: name for name, module in model.named_modules()}
    called: dict[nn.Module, Any] = {}

    def note(module: nn.Module, args: Any, output: Any) -> None:
        called.setdefault(module, output)

    handles = [module.register_forward_hook(note) for module in model.modules()]
    inputs = torch.zeros((1, *shape), dtype=dtype, device=model_device(model))
    try:
        with inference(model):
            model(inputs)
    except Exception as exc:
        from trainwise.errors import first_line

        raise ConfigError(
            f"summary: {type(model).__name__} cannot run on inputs of shape {shape} ({first_line(exc)}); "
            "give one sample's shape, without the batch dimension"
        ) from None
    finally:
        for handle in handles:
            handle.remove()
    layers = []
    for module, output in called.items():
        own = list(module.parameters(recurse=False))
        if next(module.children(), None) is not None and not own:
            continue  # a container: its layers have rows of their own
        count = sum(p.numel() for p in own)
        trainable = sum(p.numel() for p in own if p.requires_grad)
        name = names[module] or "(the model)"
        layers.append(LayerSummary(name, type(module).__name__, _shape_text(output), count, trainable))
    leaves = [output for module, output in called.items() if next(module.children(), None) is None]
    parameters = list(model.parameters())
    return ModelSummary(
        model=type(model).__name__,
        input_shape=shape,
        layers=layers,
        parameters=sum(p.numel() for p in parameters),
        trainable=sum(p.numel() for p in parameters if p.requires_grad),
        parameter_bytes=sum(t.numel() * t.element_size() for t in [*parameters, *model.buffers()]),
        activation_bytes=sum(_output_bytes(output) for output in leaves),
    )


def build_model(
    name: str,
    in_features: int,
    out_features: int,
    *,
    init: Mapping[str, float | Sequence[Any]] | None = None,
    **options: Any,
) -> nn.Module:
    """A built-in model (sizes from the data) or a user class by import path (called with `options`).

    Args:
        name: a built-in model ("linear", "polynomial", "logistic", "mlp", "dynamic_net", "cnn"; case-insensitive,
            "-" or "_"), or "package.module:ClassName" of an nn.Module subclass (or a function annotated to return one).
        in_features, out_features: the input and output sizes the built-ins are made for; not passed to a class
            given by import path.
        init: parameter name -> a constant (broadcast) or the exact values to fill it with; None: the default init.
        **options: the built-in's options (e.g. hidden=[64, 64] for an mlp), or the class's keyword arguments.

    Returns:
        The model, which remembers how it was built so that trainwise.save can rebuild it.

    Raises:
        ConfigError: an unknown model or option, an import path that fails or is not a model, options the
            constructor rejects, or an init value that does not fit its parameter.
    """
    from trainwise.errors import TrainwiseError, first_line

    key = name.lower().replace("-", "_")
    if key in BUILDERS:
        allowed = model_options(key)
        for option in options:
            if option not in allowed:
                raise ConfigError(
                    f"model.{option}: not an option of model {key!r}; allowed: {', '.join(allowed) or 'none'}"
                )
        factory: Any = BUILDERS[key]
        arguments: tuple[int, ...] = (in_features, out_features)
    else:
        factory = import_object(name)
        _check_model_factory(name, factory)
        # keys and types against the class's own signature, before anything is called
        check_factory_options("model", MODEL_SECTION_KEYS, options, factory, f"model {name}")
        arguments = ()
    try:
        model = factory(*arguments, **options)
    except TrainwiseError:
        raise
    except Exception as exc:
        # the user's options made the constructor fail (a size of -1, a string where a number goes): which of
        # them is not knowable from its message, whose wording is torch's or the user's, so all are named
        keys = ", ".join(f"model.{option}" for option in options) or "model.name"
        raise ConfigError(
            f"{keys}: {name} rejected its options {sorted(options)} ({first_line(exc)}); check them against "
            "its signature and the data"
        ) from None
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


# ----------------------------------------------------------------------------- describing a model in JSON
# trainwise.save writes how to build the model again next to its weights, so load needs no pickle: the
# build_model spec; or, for a model made of torch.nn's own layers, each layer's class and constructor
# arguments (read back from the attributes of the same names); or a user class by import path with
# the arguments save was given (or none). A description is used only if rebuilding from it, at save
# time, gives the same module types, extra_repr and state_dict names, shapes and dtypes.

_CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")
_NOT_ARGUMENTS = frozenset({"self", "device", "dtype"})
# constructor arguments a layer keeps under another name
_ATTRIBUTE_OF: dict[tuple[str, str], Callable[[nn.Module], Any]] = {
    ("MultiheadAttention", "bias"): lambda m: m.in_proj_bias is not None,
    ("MultiheadAttention", "add_bias_kv"): lambda m: m.bias_k is not None,
}


class Undescribable(Exception):
    """Why a model cannot be described in JSON (or rebuilt from its description)."""


def torch_layer_class(name: str) -> type[nn.Module] | None:
    """torch.nn's own layer class of this name (nn.Linear for "Linear"), else None: a description names
    only these, so rebuilding one imports nothing."""
    found = getattr(nn, name, None)
    if not (isinstance(found, type) and issubclass(found, nn.Module) and name not in ("Module", "Container")):
        return None
    return found if found.__module__.startswith("torch.nn.modules.") else None


def _json_value(value: Any, what: str) -> Any:
    """value as JSON (tuples as lists), or Undescribable."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):  # torch.Size is a tuple too
        return [_json_value(item, what) for item in value]
    if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
        return {key: _json_value(item, f"{what}[{key!r}]") for key, item in value.items()}
    raise Undescribable(f"{what} is a {type(value).__name__}, which JSON cannot hold")


def _tuples(value: Any) -> Any:
    """JSON lists back as tuples: what layers keep (kernel_size=(3, 3)) and accept."""
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    return value


def _layer_arguments(module: nn.Module) -> dict[str, Any]:
    """The constructor arguments of a torch.nn layer that differ from their defaults, from its attributes."""
    cls = type(module)
    rnn = issubclass(cls, nn.RNNBase)  # LSTM, GRU, RNN take *args and pass them on to RNNBase
    params = list(inspect.signature(nn.RNNBase.__init__ if rnn else cls.__init__).parameters.values())
    if cls is nn.RNN:
        params.append(inspect.Parameter("nonlinearity", inspect.Parameter.KEYWORD_ONLY, default="tanh"))
    arguments: dict[str, Any] = {}
    for param in params:
        name = param.name
        if name in _NOT_ARGUMENTS or name.startswith("_") or (rnn and name == "mode"):
            continue
        if param.kind not in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            continue
        has_default = param.default is not inspect.Parameter.empty
        if (cls.__name__, name) in _ATTRIBUTE_OF:
            value = _ATTRIBUTE_OF[cls.__name__, name](module)
        elif hasattr(module, name):
            value = getattr(module, name)
        elif has_default:  # not kept (Hardtanh's deprecated min_value): the check after rebuilding decides
            continue
        else:
            raise Undescribable(f"{cls.__name__} does not keep its argument {name!r}")
        if isinstance(param.default, bool) and (value is None or isinstance(value, torch.Tensor)):
            value = value is not None  # bias=True/False kept as a parameter or None
        value = _json_value(value, f"{cls.__name__}'s argument {name!r}")
        if has_default:
            with contextlib.suppress(Undescribable):
                if value == _json_value(param.default, name):
                    continue
        arguments[name] = value
    return arguments


def describe_layers(module: nn.Module, where: str = "") -> dict[str, Any]:
    """A JSON tree of torch.nn layers and containers: {"type": "Linear", "args": {...}} or
    {"type": "Sequential", "children": {name: ...}}; Undescribable for any other module."""
    cls, name = type(module), type(module).__name__
    if torch_layer_class(name) is not cls:
        origin = f"{cls.__module__}.{cls.__qualname__}"
        raise Undescribable(f"{where or 'the model'} is a {origin}, not one of torch.nn's own layers")
    if name in _CONTAINERS:
        if module._parameters or module._buffers:
            raise Undescribable(f"{where or 'the model'} ({name}) holds tensors of its own")
        children = {key: describe_layers(child, f"{where}.{key}" if where else key)
                    for key, child in module.named_children()}  # fmt: skip
        return {"type": name, "children": children}
    return {"type": name, "args": _layer_arguments(module)}


def build_layers(node: Any) -> nn.Module:
    """The module a describe_layers tree describes (ConfigError for a tree that is not one)."""
    if not isinstance(node, Mapping) or not isinstance(node.get("type"), str):
        raise ConfigError(f"a layer must be {{'type': ..., 'args' or 'children': ...}}, got {node!r:.80}")
    name = node["type"]
    cls = torch_layer_class(name)
    if cls is None:
        raise ConfigError(f"{name!r} is not one of torch.nn's layers")
    if name in _CONTAINERS:
        children = node.get("children", {})
        if not isinstance(children, Mapping):
            raise ConfigError(f"{name}: 'children' must map names to layers")
        built = OrderedDict((str(key), build_layers(child)) for key, child in children.items())
        if name == "ModuleList":
            return nn.ModuleList(built.values())
        return nn.ModuleDict(built) if name == "ModuleDict" else nn.Sequential(built)
    arguments = node.get("args", {})
    if not isinstance(arguments, Mapping):
        raise ConfigError(f"{name}: 'args' must map argument names to values")
    try:
        return cls(**{key: _tuples(value) for key, value in arguments.items()})
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"{name}({', '.join(f'{k}={v!r}' for k, v in arguments.items())}) fails: {exc}") from None


def class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _import_path(cls: type) -> str:
    """The "module:Class" of a class that load can import again, else Undescribable saying why."""
    if cls.__module__ == "__main__":
        raise Undescribable(f"{cls.__name__} is defined in __main__ (a script or a notebook), which load cannot "
                            "import; move it into a module to rebuild it by import path")  # fmt: skip
    if "<locals>" in cls.__qualname__:
        raise Undescribable(f"{cls.__name__} is defined inside a function, so it cannot be imported; define it "
                            "at a module's top level to rebuild it by import path")  # fmt: skip
    try:
        found = import_object(class_path(cls))
    except ConfigError:
        found = None
    if found is not cls:
        raise Undescribable(f"{class_path(cls)} does not import as the same class")
    return class_path(cls)


def _needs_arguments(cls: type) -> list[str]:
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return ["?"]
    named = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in params if p.kind in named and p.default is inspect.Parameter.empty]


def tensor_record(model: nn.Module) -> dict[str, Any]:
    """What the constructor does not decide but the model's tensors need: the floating dtype ("float64"
    comes back float64), tensors of another dtype than that, and frozen parameters (requires_grad off)."""
    floating = {key: value.dtype for key, value in model.state_dict().items() if value.is_floating_point()}
    main = Counter(floating.values()).most_common(1)[0][0] if floating else None

    def name(dtype: torch.dtype) -> str:
        return str(dtype).removeprefix("torch.")

    return {
        "dtype": name(main) if main is not None else None,
        "dtypes": {key: name(dtype) for key, dtype in floating.items() if dtype != main},
        "frozen": [key for key, param in model.named_parameters() if not param.requires_grad],
    }


def apply_tensor_record(model: nn.Module, record: Mapping[str, Any]) -> nn.Module:
    """Give a freshly built model the dtypes and frozen parameters tensor_record recorded."""

    def dtype_of(name: Any) -> torch.dtype:
        found = getattr(torch, str(name), None)
        if not isinstance(found, torch.dtype):
            raise ConfigError(f"dtype {name!r} is not a torch dtype")
        return found

    if record.get("dtype"):
        model.to(dtype_of(record["dtype"]))
    for key, dtype in (record.get("dtypes") or {}).items():
        owner, _, attribute = str(key).rpartition(".")
        try:
            module = model.get_submodule(owner)
        except AttributeError:
            raise ConfigError(f"the model has no tensor {key!r}") from None
        if attribute in module._parameters and module._parameters[attribute] is not None:
            module._parameters[attribute].data = module._parameters[attribute].data.to(dtype_of(dtype))  # type: ignore[union-attr]
        elif attribute in module._buffers and module._buffers[attribute] is not None:
            module._buffers[attribute] = module._buffers[attribute].to(dtype_of(dtype))  # type: ignore[union-attr]
        else:
            raise ConfigError(f"the model has no tensor {key!r}")
    for key in record.get("frozen") or []:
        try:
            model.get_parameter(str(key)).requires_grad_(False)
        except AttributeError:
            raise ConfigError(f"the model has no parameter {key!r}") from None
    return model


def build_described(build: Mapping[str, Any]) -> nn.Module:
    """The model a description's "build" says how to make (ConfigError when it cannot)."""
    kind = build.get("kind")
    if kind == "spec":
        spec = build.get("spec")
        if not isinstance(spec, Mapping):
            raise ConfigError("'spec' must be a build_model spec")
        try:
            return build_model(spec["name"], spec["in_features"], spec["out_features"], **spec.get("options", {}))
        except KeyError as exc:
            raise ConfigError(f"the spec has no {exc}") from None
    if kind == "layers":
        return build_layers(build.get("layers"))
    if kind == "import":
        path, arguments = str(build.get("class")), build.get("init_args") or {}
        try:
            factory = import_object(path)
            _check_model_factory(path, factory)
        except ConfigError as exc:  # worded for a config's model.name; here the path is in model.json
            raise ConfigError(str(exc).removeprefix("model.name: ")) from None
        if not isinstance(arguments, Mapping):
            raise ConfigError(f"{path}: init_args must map argument names to values")
        try:
            model = factory(**arguments)
        except TypeError as exc:
            raise ConfigError(f"{path}(**{dict(arguments)}) fails: {exc}") from None
        if not isinstance(model, nn.Module):
            raise ConfigError(f"{path} made a {type(model).__name__}, not a torch.nn.Module")
        return model
    raise ConfigError(f"unknown build kind {kind!r}; expected 'spec', 'layers' or 'import'")


def _rebuilt(build: Mapping[str, Any], record: Mapping[str, Any]) -> nn.Module:
    """Build it with every random state put back: saving a model must not change what a script draws next."""
    from trainwise import rng

    states = rng.capture()
    try:
        return apply_tensor_record(build_described(build), record)
    finally:
        rng.restore(states)


def _difference(original: nn.Module, rebuilt: nn.Module) -> str | None:
    """How the rebuilt model differs from the original (module types, extra_repr, state_dict), or None."""
    mine = [(name, type(m), m.extra_repr()) for name, m in original.named_modules()]
    theirs = [(name, type(m), m.extra_repr()) for name, m in rebuilt.named_modules()]
    for a, b in zip(mine, theirs, strict=False):
        if a != b:
            return (f"{a[0] or 'the model'} {a[1].__name__}({a[2]}) comes back as {b[0] or 'the model'} "
                    f"{b[1].__name__}({b[2]})")  # fmt: skip
    if len(mine) != len(theirs):
        return f"it has {len(mine)} modules but comes back with {len(theirs)} (a module used twice?)"
    shapes = {key: (tuple(t.shape), t.dtype) for key, t in original.state_dict().items()}
    rebuilt_shapes = {key: (tuple(t.shape), t.dtype) for key, t in rebuilt.state_dict().items()}
    for key in shapes.keys() | rebuilt_shapes.keys():
        if shapes.get(key) != rebuilt_shapes.get(key):
            return f"tensor {key!r} is {shapes.get(key)} but comes back as {rebuilt_shapes.get(key)}"
    return None


def describe_model(model: nn.Module, *, init_args: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """How to build `model` again, checked by building it: {"class", "build", "problem", "dtype", "dtypes",
    "frozen"}. "build" is None when no way works, and "problem" then says why. init_args: the arguments of
    the model's class (imported by path) that rebuild it; ConfigError if they do not."""
    cls = type(model)
    record: dict[str, Any] = {"class": class_path(cls), "build": None, "problem": None, **tensor_record(model)}
    candidates: list[Callable[[], dict[str, Any]]] = []
    if init_args is not None:
        try:
            arguments = _json_value(dict(init_args), "init_args")
        except Undescribable as exc:
            raise ConfigError(f"{exc}; give JSON values (numbers, strings, lists, dicts)") from None
        try:
            explicit = {"kind": "import", "class": _import_path(cls), "init_args": arguments}
        except Undescribable as exc:
            raise ConfigError(f"init_args: {exc}") from None
        candidates = [lambda: explicit]
    else:
        spec = spec_of(model)
        if spec is not None:
            candidates.append(lambda: {"kind": "spec", "spec": _json_value(spec, "the model's spec")})
        candidates.append(lambda: {"kind": "layers", "layers": describe_layers(model)})
        if torch_layer_class(cls.__name__) is not cls:  # a user class: by import path, if it takes no arguments
            candidates.append(lambda: _no_argument_build(cls))
    problems = []
    for candidate in candidates:
        try:
            build = candidate()
            if build["kind"] == "layers" and _shares_parameters(model):
                raise Undescribable("layers share parameters (tied weights), which a list of layers cannot say")
            try:
                rebuilt = _rebuilt(build, record)
            except Exception as exc:  # whatever the class's constructor raises: this way does not work
                raise Undescribable(f"rebuilding it fails ({type(exc).__name__}: {exc})") from None
            difference = _difference(model, rebuilt)
            if difference is not None:
                raise Undescribable(f"rebuilt, {difference}")
        except Undescribable as exc:
            problems.append(str(exc))
            continue
        except Exception as exc:  # a module torch or its author made unusual: described as not describable
            problems.append(f"describing it fails ({type(exc).__name__}: {exc})")
            continue
        record["build"] = build
        return record
    if init_args is not None:
        raise ConfigError(f"init_args: {cls.__qualname__}(**init_args) does not rebuild the model: {problems[-1]}")
    record["problem"] = problems[-1]  # the user class's reason when it is one, else the layers'
    return record


def _no_argument_build(cls: type) -> dict[str, Any]:
    path = _import_path(cls)
    needed = _needs_arguments(cls)
    if needed:
        raise Undescribable(
            f"{cls.__qualname__} needs the arguments {', '.join(needed)}; save it with "
            "trainwise.save(model, path, init_args={...}) to record them"
        )
    return {"kind": "import", "class": path, "init_args": {}}


def _shares_parameters(model: nn.Module) -> bool:
    return len(list(model.parameters())) != len(list(model.named_parameters(remove_duplicate=False)))


def rebuild_model(description: Mapping[str, Any]) -> nn.Module:
    """A new model from describe_model's record (ConfigError when it says the model cannot be rebuilt)."""
    build = description.get("build")
    if not isinstance(build, Mapping):
        raise ConfigError(str(description.get("problem") or "the description says no way to build the model"))
    return apply_tensor_record(build_described(build), description)
