"""Recipe and TOML configuration, validated by pydantic.

A config has the sections [data], [model], [loss], [optim], [scheduler] (optional) and [train].
Keys that pass through to a dataset, model, loss, optimizer or scheduler (n_samples, hidden,
momentum, step_size, ...) are checked against that object's own signature, so a typo names the
key and lists what is allowed. Every problem becomes one ConfigError line: "section.key: problem".
"""

from __future__ import annotations

import inspect
import tomllib
import typing
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from trainwise.errors import ConfigError, TrainwiseError


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
    normalize: Literal["none", "standard", "minmax"] | float = "none"
    poly_features: int = Field(0, ge=0, le=20)
    one_hot: bool = False
    val_split: float = Field(0.0, ge=0.0, lt=1.0)
    stratify: bool = False
    shuffle: bool = True
    limit: int | None = Field(None, ge=1, description="use only the first N training (and test) samples")
    fallback: str | None = Field(None, description="a dataset to use when this one is not installed")
    test: bool = Field(True, description="evaluate on the dataset's test split after training")


class ModelConfig(_OpenSection):
    name: str
    outputs: int | None = Field(None, ge=1, description="output size; default: classes or target width")
    init: dict[str, float | list[Any]] = Field(default_factory=dict)


class LossConfig(_OpenSection):
    name: str = "mse"
    reduction: Literal["mean", "sum"] = "mean"


class OptimConfig(_OpenSection):
    name: str = "sgd"
    lr: float = Field(gt=0.0)


class SchedulerConfig(_OpenSection):
    name: str
    interval: Literal["epoch", "step"] | None = None
    monitor: str | None = None


class EarlyStoppingConfig(_Section):
    patience: int = Field(10, ge=1)
    monitor: str | None = None
    min_delta: float = Field(0.0, ge=0.0)
    restore_best: bool = True


class TrainConfig(_Section):
    epochs: int = Field(ge=1)
    batch_size: int | Literal["full"] = "full"
    seed: int = 0
    device: str = "auto"
    metrics: list[str] = Field(default_factory=list)
    clip_grad_norm: float | None = Field(None, gt=0.0)
    early_stopping: EarlyStoppingConfig | None = None

    @model_validator(mode="after")
    def _batch_size_positive(self) -> TrainConfig:
        if isinstance(self.batch_size, int) and self.batch_size < 1:
            raise ValueError("batch_size must be at least 1, or 'full'")
        return self


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

    @model_validator(mode="after")
    def _check_pass_through_keys(self) -> Config:
        from trainwise import datasets, models, optim
        from trainwise.callbacks import scheduler_class
        from trainwise.losses import LOSSES

        _check_options("data", self.data.options, datasets.dataset_options(self.data.name))
        key = self.model.name.lower().replace("-", "_")
        if key in models.BUILDERS:
            _check_options("model", self.model.options, models.model_options(key), models.BUILDERS[key])
        loss_key = self.loss.name.lower().replace("-", "_")
        if loss_key not in LOSSES:
            raise ConfigError(
                f"loss.name: unknown loss {self.loss.name!r}; choose one of {', '.join(LOSSES)}"
            )
        loss_params = {
            k: p for k, p in inspect.signature(LOSSES[loss_key]).parameters.items() if k != "reduction"
        }
        _check_options("loss", self.loss.options, loss_params)
        _check_options("optim", self.optim.options, optim.optimizer_options(self.optim.name))
        if self.scheduler is not None:
            params = inspect.signature(scheduler_class(self.scheduler.name)).parameters
            _check_options(
                "scheduler", self.scheduler.options, {k: p for k, p in params.items() if k != "optimizer"}
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (for config.toml in the run record)."""
        return self.model_dump(mode="json", exclude_none=True)


def _check_options(
    section: str,
    given: Mapping[str, Any],
    allowed: Mapping[str, inspect.Parameter],
    typed: Callable[..., Any] | None = None,
) -> None:
    """Unknown keys and, where the target has usable type hints, wrong types become ConfigErrors."""
    hints: dict[str, Any] = {}
    if typed is not None:
        try:
            hints = typing.get_type_hints(typed)
        except Exception:  # unresolvable hints: check names only
            hints = {}
    for key, value in given.items():
        if key not in allowed:
            names = ", ".join(k for k in allowed if not k.startswith("_")) or "none"
            raise ConfigError(f"{section}.{key}: unknown key; allowed here: {names}")
        hint = hints.get(key)
        if hint is None:
            continue
        try:
            adapter = TypeAdapter(hint)
        except Exception:
            continue
        try:
            adapter.validate_python(value)
        except ValidationError as exc:
            raise ConfigError(f"{section}.{key}: {exc.errors()[0]['msg']} (got {value!r})") from None


def _error_line(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        section: type[BaseModel] = Config
        for part in error["loc"][:-1]:
            field = section.model_fields.get(str(part))
            annotation = field.annotation if field else None
            for candidate in typing.get_args(annotation) or (annotation,):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    section = candidate
                    break
        return f"{where}: unknown key; allowed here: {', '.join(section.model_fields)}"
    if error["type"] == "missing":
        return f"{where}: required key is missing"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return f"{where or 'config'}: {message} (got {error.get('input')!r})"


def validate(raw: Mapping[str, Any]) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_error_line(exc)) from None


# ----------------------------------------------------------------------------- recipes


def recipe_names() -> list[str]:
    folder = resources.files("trainwise") / "recipes"
    return sorted(
        entry.name.removesuffix(".toml") for entry in folder.iterdir() if entry.name.endswith(".toml")
    )


def recipe_text(name: str) -> str:
    return (resources.files("trainwise") / "recipes" / f"{name}.toml").read_text()


def parse_override(item: str) -> tuple[list[str], Any]:
    """'optim.lr=1e-3' -> (['optim', 'lr'], 0.001). Values are TOML values; bare words are strings."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. --set optim.lr=0.001")
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    return [part.strip() for part in key.split(".")], value


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
    """A validated Config from a built-in recipe name or a TOML file, with --set overrides applied."""
    name = str(source)
    if name in recipe_names():
        text, origin = recipe_text(name), f"recipe {name}"
    else:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(
                f"{name}: no such recipe or file; `trainwise recipes` lists the recipes, or pass a .toml path"
            )
        try:
            text, origin = path.read_text(), str(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read it ({exc})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML ({exc})") from None
    raw.setdefault("name", Path(name).stem if origin != f"recipe {name}" else name)
    try:
        return validate(apply_overrides(raw, overrides))
    except TrainwiseError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: {exc}") from None
