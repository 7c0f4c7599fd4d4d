"""Recipe and TOML configuration, validated by pydantic.

A config has the sections [data], [model], [loss], [optim], [scheduler] (optional), [train],
[checkpoint] (optional) and [log] (optional).
Keys that pass through to a dataset, model, loss, optimizer or scheduler (n_samples, hidden,
momentum, step_size, ...) are checked against that object's own signature, so a typo names the
key and lists what is allowed. Every problem becomes one ConfigError line: "section.key: problem".
"""

from __future__ import annotations

import inspect
import tomllib
import typing
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from trainwise.errors import ConfigError, TrainwiseError
from trainwise.options import check_options, did_you_mean, pydantic_message, toml_key

# TOML values are already typed, so fields are strict: `epochs = 2.5`, `epochs = true` or
# `shuffle = 1` are mistakes, not values to coerce. (Strict floats still take TOML integers.)
StrictInt = Annotated[int, Field(strict=True)]
PositiveInt = Annotated[int, Field(strict=True, ge=1)]
Float = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Bool = Annotated[bool, Field(strict=True)]

# Dotted keys whose type is a union: pydantic reports one error per member, so say it once here.
_UNION_MESSAGES = {
    "train.batch_size": "must be a whole number of samples (at least 1) or 'full'",
    "data.normalize": "must be 'none', 'standard', 'minmax' or a finite non-zero scale factor",
    "model.init": "must be a number or a list of numbers",
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class _OpenSection(BaseModel):
    """A section whose extra keys go to a torch or trainwise object (checked against its signature)."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DataConfig(_OpenSection):
    name: str = Field(description="a built-in dataset, or a path to a .csv or .npz file")
    normalize: Literal["none", "standard", "minmax"] | Float = "none"
    poly_features: Annotated[int, Field(strict=True, ge=0, le=20)] = 0
    one_hot: Bool = False
    val_split: Annotated[float, Field(strict=True, ge=0.0, lt=1.0)] = 0.0
    stratify: Bool = False
    shuffle: Bool = True
    limit: PositiveInt | None = Field(None, description="use only the first N training (and test) samples")
    fallback: str | None = Field(None, description="a dataset to use when this one is not installed")
    test: Bool = Field(True, description="evaluate on the dataset's test split after training")

    @field_validator("normalize")
    @classmethod
    def _nonzero_scale(cls, value: str | float) -> str | float:
        # a factor of 0 would map every input to 0; fail here rather than when training starts
        if isinstance(value, float) and value == 0.0:
            raise ValueError("a scale factor must be non-zero; use 'none' to leave the inputs as they are")
        return value


class ModelConfig(_OpenSection):
    name: str
    outputs: PositiveInt | None = Field(None, description="output size; default: classes or target width")
    init: dict[str, Float | list[Any]] = Field(default_factory=dict)


class LossConfig(_OpenSection):
    name: str = "mse"
    reduction: Literal["mean", "sum"] = "mean"


class OptimConfig(_OpenSection):
    name: str = "sgd"
    # a number, or "auto": run the LR finder first and train with its suggestion
    lr: Annotated[float, Field(strict=True, gt=0.0, allow_inf_nan=False)] | Literal["auto"]

    @field_validator("lr")
    @classmethod
    def _float32_lr(cls, value: float | str) -> float | str:
        # torch's optimizers cannot step with an lr float32 cannot hold (they fail in the first step)
        if isinstance(value, float) and value > 3.4e38:
            raise ValueError("must be at most 3.4e38 (float32's largest value)")
        return value


class SchedulerConfig(_OpenSection):
    name: str
    interval: Literal["epoch", "step"] | None = None
    monitor: str | None = None


class EarlyStoppingConfig(_Section):
    patience: PositiveInt = 10
    monitor: str | None = None
    min_delta: Annotated[float, Field(strict=True, ge=0.0, allow_inf_nan=False)] = 0.0
    restore_best: Bool = True


class TrainConfig(_Section):
    epochs: PositiveInt
    batch_size: PositiveInt | Literal["full"] = "full"
    seed: Annotated[int, Field(strict=True, ge=-(2**63), lt=2**64)] = 0  # what torch.manual_seed takes
    device: str = "auto"
    metrics: list[str] = Field(default_factory=list)
    clip_grad_norm: Annotated[float, Field(strict=True, gt=0.0, allow_inf_nan=False)] | None = None
    max_steps: PositiveInt | None = Field(None, description="end training after this many optimizer steps")
    accumulate: PositiveInt = Field(1, description="batches whose gradients add up to one optimizer step")
    val_every: PositiveInt = Field(1, description="validate every this many epochs (and the last)")
    val_every_steps: PositiveInt | None = Field(
        None, description="also validate every this many optimizer steps within an epoch (validations.csv)"
    )
    ema: Annotated[float, Field(strict=True, gt=0.0, lt=1.0)] | None = Field(
        None, description="the decay of the weights' exponential moving average (0.999), which validation runs"
    )
    early_stopping: EarlyStoppingConfig | None = None
    doctor: Literal["warn", "stop", "repair", "quiet", "off"] = "warn"
    compile: Bool = Field(False, description="run the training step's forward through torch.compile")
    precision: Literal["32", "bf16", "fp16"] = Field("32", description="mixed precision: autocast to bf16 or fp16")

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        # Only the spelling is checked: whether CUDA is there is known on the machine that trains.
        import torch

        if value != "auto":
            try:
                device = torch.device(value)
            except RuntimeError:
                raise ValueError("not a device; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
            if device.type == "meta":  # tensors with shapes but no values
                raise ValueError("the meta device holds no values to train; use 'auto', 'cpu', 'cuda' or 'mps'")
        return value

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: list[str]) -> list[str]:
        from trainwise.metrics import make_metrics

        try:
            make_metrics(value)
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("metrics: ")) from None
        return value


class CheckpointConfig(_Section):
    """[checkpoint]: training checkpoints in <run folder>/checkpoints, for `trainwise fit --resume`.
    With no every_* key: every 60 seconds (at epoch ends). Always at the end and on SIGINT/SIGTERM."""

    enabled: Bool = True
    every_epochs: PositiveInt | None = None
    every_steps: PositiveInt | None = None
    every_seconds: Annotated[float, Field(strict=True, gt=0.0, allow_inf_nan=False)] | None = None
    keep_last: PositiveInt = 2
    keep_best: Bool = True
    monitor: str | None = None
    mode: Literal["auto", "min", "max"] = "auto"


class LogConfig(_Section):
    """[log]: experiment loggers (optional packages: pip install 'trainwise[loggers]')."""

    tensorboard: Bool = False  # event files in <run folder>/tensorboard
    mlflow: Bool = False
    mlflow_experiment: str | None = None
    mlflow_tracking_uri: str | None = None

    @field_validator("tensorboard", "mlflow")
    @classmethod
    def _installed(cls, value: bool, info: ValidationInfo) -> bool:
        # fail when the config loads, not after the data is read and the model built
        from trainwise.loggers import missing_package

        problem = missing_package(str(info.field_name)) if value else None
        if problem:
            raise ConfigError(f"log.{info.field_name}: {problem}")  # as it is: no "(got True)" suffix
        return value


class Config(_Section):
    name: str = "run"
    description: str = ""
    workload: str = ""
    data: DataConfig
    model: ModelConfig
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig
    scheduler: SchedulerConfig | None = None
    train: TrainConfig
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    log: LogConfig | None = None

    @model_validator(mode="after")
    def _check_pass_through_keys(self) -> Config:
        from trainwise import datasets, models, optim
        from trainwise.callbacks import scheduler_class
        from trainwise.errors import DataError
        from trainwise.losses import LOSSES, loss_name

        for key in ("name", "fallback"):
            dataset = getattr(self.data, key)
            if dataset is None:
                continue
            try:
                options = datasets.dataset_options(dataset)
            except DataError as exc:  # an unknown name or an unsupported file type
                raise ConfigError(f"data.{key}: {exc}") from None
            if key == "name":
                check_options("data", DataConfig.model_fields, self.data.options, options, f"dataset {dataset!r}")

        key = self.model.name.lower().replace("-", "_")
        if key in models.BUILDERS:
            check_options(
                "model",
                ModelConfig.model_fields,
                self.model.options,
                models.model_options(key),
                f"model {key!r}",
                models.BUILDERS[key],
            )
        elif ":" not in self.model.name:
            # import paths are checked when the model is built: importing runs the user's code
            raise ConfigError(
                f"model.name: unknown model {self.model.name!r}; use one of {', '.join(models.BUILDERS)} "
                "or an import path 'package.module:ClassName'"
            )

        loss_key = loss_name(self.loss.name)
        if loss_key not in LOSSES:
            raise ConfigError(f"loss.name: unknown loss {self.loss.name!r}; choose one of {', '.join(LOSSES)}")
        loss_class = LOSSES[loss_key]
        # size_average and reduce are torch's deprecated spellings of reduction
        loss_params = {
            k: p
            for k, p in inspect.signature(loss_class).parameters.items()
            if k not in ("reduction", "size_average", "reduce")
        }
        check_options("loss", LossConfig.model_fields, self.loss.options, loss_params, f"loss {loss_key!r}", loss_class)

        optimizer = optim.optimizer_class(self.optim.name)
        check_options(
            "optim",
            OptimConfig.model_fields,
            self.optim.options,
            optim.optimizer_options(self.optim.name),
            f"optimizer {optimizer.__name__}",
            optimizer,
        )
        if self.scheduler is not None:
            scheduler = scheduler_class(self.scheduler.name)
            params = {
                k: p for k, p in inspect.signature(scheduler).parameters.items() if k not in ("optimizer", "verbose")
            }
            check_options(
                "scheduler",
                SchedulerConfig.model_fields,
                self.scheduler.options,
                params,
                f"scheduler {scheduler.__name__}",
                scheduler,
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (for config.toml in the run record)."""
        return self.model_dump(mode="json", exclude_none=True)


def _sub_model(annotation: Any) -> type[BaseModel] | None:
    """The section model in an annotation like `EarlyStoppingConfig | None`, if any."""
    for candidate in typing.get_args(annotation) or (annotation,):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _dotted(loc: tuple[int | str, ...]) -> tuple[str, type[BaseModel] | None]:
    """The user's dotted key for an error location, without pydantic's union-member tags
    ('train.batch_size.int' -> 'train.batch_size'), and the section model that holds its last part."""
    parts: list[str] = []
    model: type[BaseModel] | None = Config
    annotation: Any = None
    holder: type[BaseModel] | None = None
    for part in loc:
        if model is not None:
            holder = model
            parts.append(toml_key(str(part)))
            field = model.model_fields.get(str(part))
            if field is None:  # an extra key: the end of the path
                break
            annotation, model = field.annotation, _sub_model(field.annotation)
            continue
        origin = typing.get_origin(annotation)
        if origin is dict:
            parts.append(toml_key(str(part)))
            annotation = typing.get_args(annotation)[1]
        elif origin is list and isinstance(part, int):
            parts[-1] += f"[{part}]"
            annotation = typing.get_args(annotation)[0]
        else:  # a union member's tag, or inside a leaf value
            break
    return ".".join(parts), holder


def _error_line(exc: ValidationError) -> str:
    errors = exc.errors()
    error = errors[0]
    where, holder = _dotted(error["loc"])
    if error["type"] == "extra_forbidden":
        names = list(holder.model_fields) if holder is not None else []
        last = str(error["loc"][-1])
        section = where.removesuffix(toml_key(last)).removesuffix(".")
        place = f"[{section}]" if section else "the top level"
        return f"{where}: unknown key{did_you_mean(last, names)}; {place} takes {', '.join(names)}"
    if error["type"] == "missing":
        section, _, last = where.rpartition(".")
        if holder is not None and _sub_model(holder.model_fields[last].annotation) is not None:
            return f"{where}: required section is missing; add the [{where}] table"
        place = f"under [{section}]" if section else "at the top level"
        return f"{where}: required key is missing; add {last} = ... {place}"
    same = [e for e in errors if _dotted(e["loc"])[0] == where]
    if len(same) > 1:  # a value that matches no member of a union type
        generic = ".".join(where.split(".")[:2])
        message = _UNION_MESSAGES.get(generic) or " or ".join(pydantic_message(e) for e in same)
    else:
        message = pydantic_message(error)
    return f"{where or 'config'}: {message} (got {error.get('input')!r})"


def validate(raw: Mapping[str, Any]) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_error_line(exc)) from None


# ----------------------------------------------------------------------------- recipes


def recipe_names() -> list[str]:
    folder = resources.files("trainwise") / "recipes"
    return sorted(entry.name.removesuffix(".toml") for entry in folder.iterdir() if entry.name.endswith(".toml"))


def recipe_text(name: str) -> str:
    return (resources.files("trainwise") / "recipes" / f"{name}.toml").read_text()


def parse_override(item: str) -> tuple[list[str], Any]:
    """'optim.lr=1e-3' -> (['optim', 'lr'], 0.001). Values are TOML values; bare words are strings."""
    key, sep, text = item.partition("=")
    path = [part.strip() for part in key.split(".")]
    if not sep or not all(path):
        raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. --set optim.lr=0.001")
    text = text.strip()
    if not text:
        raise ConfigError(f"--set {item!r}: no value after '='; e.g. --set {key.strip()}=VALUE")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    return path, value


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    for item in overrides:
        path, value = parse_override(item)
        node = raw
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is a value, not a section")
            node = child
        node[path[-1]] = value
    return raw


def load_config(source: str | Path, overrides: Sequence[str] = ()) -> Config:
    """A validated Config from a built-in recipe name or a TOML file, with --set overrides applied.

    Args:
        source: a built-in recipe's name (`trainwise recipes` lists them) or the path of a .toml file.
        overrides: "section.key=value" settings, as --set takes them (values are TOML; bare words are strings),
            applied in order before validation.

    Returns:
        The validated Config; its name is the recipe's name or the file's stem unless the file sets one.

    Raises:
        ConfigError: no such recipe or file, a file that is not valid TOML, a malformed override, or settings
            that do not validate.
    """
    name = str(source)
    recipes = recipe_names()
    if name in recipes:
        text, origin = recipe_text(name), f"recipe {name}"
    else:
        path = Path(name)
        if path.is_dir():
            raise ConfigError(f"{name}: is a directory; pass a recipe name or a .toml file")
        if not path.is_file():
            hint = did_you_mean(path.name.removesuffix(".toml"), recipes)
            raise ConfigError(
                f"{name}: no such recipe or file{hint}; `trainwise recipes` lists the recipes, or pass a .toml path"
            )
        try:
            text, origin = path.read_bytes().decode("utf-8"), str(path)  # as written: no newline translation
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a TOML file (it is not UTF-8 text)") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML ({exc})") from None
    raw.setdefault("name", name if name in recipes else Path(name).stem)
    try:
        return validate(apply_overrides(raw, overrides))
    except TrainwiseError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: {exc}") from None
