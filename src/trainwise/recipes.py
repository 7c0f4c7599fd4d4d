"""Running a validated Config: load the data, build the model, fit, evaluate on the test split,
and write the run record. The CLI and `trainwise.run_recipe` both come here."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trainwise import data as data_lib
from trainwise import datasets, models
from trainwise.callbacks import Callback, EarlyStopping, LRScheduler
from trainwise.checkpoint import Checkpoint, atomic_write_text
from trainwise.config import Config, load_config
from trainwise.errors import ConfigError, DataError, TrainwiseError, first_line
from trainwise.loggers import MLflowLogger, TensorBoardLogger
from trainwise.loop import FitResult, evaluate, fit
from trainwise.losses import LossFn, make_loss, resolve_balanced

if TYPE_CHECKING:
    from trainwise.lr_finder import LRFindResult


@dataclass
class Prepared:
    """A config turned into objects: the dataset (after limit/features/one-hot) and the model."""

    dataset: datasets.Dataset
    model: torch.nn.Module
    notes: list[str] = field(default_factory=list)


@dataclass
class RecipeResult:
    config: Config
    fit: FitResult
    test: dict[str, float] | None
    notes: list[str]

    def summary(self) -> dict[str, Any]:
        summary = {"recipe": self.config.name, **self.fit.summary(), "notes": self.notes}
        if self.test is not None:
            summary["test"] = self.test
        return summary


def _limit(tensor: torch.Tensor | None, limit: int | None) -> torch.Tensor | None:
    return tensor if tensor is None or limit is None else tensor[:limit]


def load_data(config: Config) -> tuple[datasets.Dataset, list[str]]:
    """The config's dataset with limit, polynomial features and one-hot labels applied."""
    spec = config.data
    notes: list[str] = []
    try:
        dataset = datasets.load_dataset(spec.name, **spec.options)
    except DataError as exc:
        # an option value the config gave (the message may name a default first: "low=... < high=..."): name its key
        named = re.findall(r"(\w+)=", str(exc)) if re.match(r"dataset '[^']*': option ", str(exc)) else []
        given = [name for name in named if name in spec.options]
        if given:
            raise DataError(f"data.{given[0]}: {exc}") from None
        if not spec.fallback:
            raise
        notes.append(f"{spec.name} is not installed here, so this run uses {spec.fallback} instead ({exc})")
        dataset = datasets.load_dataset(spec.fallback)
    parts = {key: _limit(getattr(dataset, key), spec.limit) for key in ("X", "y", "X_val", "y_val", "X_test", "y_test")}
    if spec.poly_features:
        for key in ("X", "X_val", "X_test"):
            if parts[key] is not None:
                parts[key] = data_lib.poly_features(parts[key], spec.poly_features)  # type: ignore[arg-type]
    if spec.one_hot:
        if dataset.task != "classification" or dataset.n_classes is None:
            raise DataError(f"data.one_hot: {dataset.name} has no class labels to encode")
        for key in ("y", "y_val", "y_test"):
            if parts[key] is not None:
                parts[key] = data_lib.one_hot(parts[key], dataset.n_classes)  # type: ignore[arg-type]
    for key, value in parts.items():
        setattr(dataset, key, value)
    return dataset, notes


def build(config: Config) -> Prepared:
    """Seed, load the data and build the model the config describes."""
    torch.manual_seed(config.train.seed)
    dataset, notes = load_data(config)
    in_features = models.in_features_of(tuple(dataset.X.shape[1:]))
    if config.model.outputs is not None:
        out_features = config.model.outputs
    elif dataset.task == "classification" and not config.data.one_hot:
        out_features = int(dataset.n_classes or int(dataset.y.max()) + 1)
    else:
        out_features = int(dataset.y.shape[1]) if dataset.y.ndim > 1 else 1
    model = models.build_model(
        config.model.name, in_features, out_features, init=config.model.init or None, **config.model.options
    )
    _check_no_empty_parameters(config, model)
    output = _sample_output(config.model.name, model, dataset.X[:1])
    if isinstance(output, torch.Tensor):
        _check_loss_fits(config, output, dataset)
    return Prepared(dataset, model, notes)


def _check_no_empty_parameters(config: Config, model: torch.nn.Module) -> None:
    """A size option of 0 (hidden = [0], d_out = 0) makes a parameter with no entries, which trains nothing."""
    for name, parameter in model.named_parameters():
        if parameter.numel() == 0:
            zeros = [key for key, value in config.model.options.items()
                     if value == 0 or (isinstance(value, list) and 0 in value)]  # fmt: skip
            where = ", ".join(f"model.{key}" for key in zeros) or "model.name"
            raise ConfigError(
                f"{where}: the model's parameter {name!r} has shape {tuple(parameter.shape)}, no entries; "
                "every layer size must be at least 1"
            )


def _sample_output(name: str, model: torch.nn.Module, sample: torch.Tensor) -> Any:
    """The model's output for one sample (eval mode, no gradients, every random state put back), so that a
    model built for other inputs is a config error naming it, not a shape error inside the first step."""
    from trainwise import rng

    states = rng.capture(model)
    try:
        with models.inference(model):
            return model(sample)
    except TrainwiseError:
        raise
    except Exception as exc:  # whatever the model's forward raises, in torch's wording or the user's
        raise ConfigError(
            f"model.name: {name} cannot take the data's samples of shape {tuple(sample.shape[1:])} "
            f"({first_line(exc)}); check its options against the data"
        ) from None
    finally:
        rng.restore(states, model)


# fit's arguments that its messages start with, and the config keys that set them
_FIT_ARGUMENTS = {
    "val_split": "data.val_split",
    "batch_size": "train.batch_size",
    "epochs": "train.epochs",
    "accumulate": "train.accumulate",
    "val_every": "train.val_every",
    "val_every_steps": "train.val_every_steps",
    "device": "train.device",
    "doctor": "train.doctor",
    "compile": "train.compile",
    "precision": "train.precision",
    "lr": "optim.lr",
    "early_stopping.monitor": "train.early_stopping.monitor",
}


def _check_scheduler(config: Config) -> None:
    """Make the config's scheduler on a one-parameter optimizer and step it a few times: options that only
    fail when it steps (step_size = 0 divides by zero, gamma = 1e308 makes an lr float32 cannot hold) or that
    torch refuses when it makes it (factor = 2.0 for plateau) are a line naming the key before training, not
    an error from inside the first epoch. Which keys is decided by trying, not by reading torch's message."""
    spec = config.scheduler
    if spec is None:
        return
    failure = _scheduler_dry_run(config, spec.options)
    if failure is None:
        return
    if isinstance(failure, TrainwiseError) and not str(failure).startswith("scheduler: "):
        raise failure  # already names its key (scheduler.interval, scheduler.monitor)
    # each option whose removal lets the schedule run (the options torch requires cannot be left out); all of
    # them when only their combination fails
    keys = [key for key in spec.options if _scheduler_dry_run(config, _without(spec.options, key)) is None]
    keys = keys or list(spec.options)
    where = ", ".join(f"scheduler.{key}" for key in keys) or "scheduler.name"
    given = ", ".join(f"{key}={spec.options[key]!r}" for key in keys) or "its defaults"
    # LRScheduler's own line ("scheduler: X cannot be made with {...}: ...") quotes torch's error, which it holds
    reason = failure.__context__ if isinstance(failure, TrainwiseError) and failure.__context__ else failure
    raise ConfigError(f"{where}: scheduler {spec.name!r} fails with {given} ({first_line(reason)})") from None


def _without(options: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k != key}


def _scheduler_dry_run(config: Config, options: dict[str, Any]) -> Exception | None:
    """What making the config's scheduler with `options` and stepping it 3 times raises (None: nothing)."""
    from types import SimpleNamespace

    spec = config.scheduler
    assert spec is not None
    parameter = torch.nn.Parameter(torch.zeros(1))
    lr = 1e-3 if config.optim.lr == "auto" else config.optim.lr
    optimizer = torch.optim.SGD([parameter], lr=lr)
    try:
        scheduler = LRScheduler(spec.name, interval=spec.interval, monitor=spec.monitor, **options)
        # what LRScheduler.on_train_begin reads of the training state
        scheduler.state = SimpleNamespace(
            epochs=max(config.train.epochs, 4), total_steps=max(config.train.epochs, 4), optimizer=optimizer
        )  # type: ignore[assignment]
        with warnings.catch_warnings():  # torch's notes on this throw-away schedule are not the user's
            warnings.simplefilter("ignore")
            scheduler.on_train_begin({})
            for _ in range(3):
                parameter.grad = torch.ones(1)
                optimizer.step()
                if type(scheduler.scheduler).__name__ == "ReduceLROnPlateau":
                    scheduler.scheduler.step(1.0)
                else:
                    scheduler.scheduler.step()
    except AttributeError:
        return None  # LRScheduler reads more of the training state than this stand-in has: no verdict
    except Exception as exc:
        return exc
    return None


# losses that compare each output with the target of the same position
_ELEMENTWISE_LOSSES = frozenset({"mse", "l1", "huber", "smooth_l1", "bce", "bce_with_logits"})


def _check_loss_fits(config: Config, output: torch.Tensor, dataset: datasets.Dataset) -> None:
    """The model's outputs, the targets and the loss must fit together; where they do not, torch raises from
    inside the first step (or, for outputs broadcast against one target column, warns and trains a wrong
    model). One line naming the key instead. Mismatches torch accepts silently are left to the doctor."""
    from trainwise.losses import CLASSIFICATION_LOSSES, loss_name

    loss = loss_name(config.loss.name)
    y = dataset.y
    width, per_sample = tuple(output.shape[1:]), tuple(y.shape[1:])
    sizing = "model.outputs" if config.model.outputs is not None else "model.name"
    if loss in _ELEMENTWISE_LOSSES:
        if not y.is_floating_point():
            raise ConfigError(
                f"loss.name: loss '{loss}' compares each output with a target of the same shape, but "
                f"{dataset.name}'s targets are class labels; use 'cross_entropy', or set data.one_hot = true"
            )
        if width != per_sample:
            raise ConfigError(
                f"{sizing}: the model gives {_shape(width)} outputs per sample but {dataset.name} has "
                f"{_shape(per_sample)} target{'' if _shape(per_sample) == '1' else 's'} per sample, and loss "
                f"'{loss}' compares them one to one; "
                + ("remove model.outputs" if config.model.outputs is not None else "build it for that many outputs")
            )
    elif loss in CLASSIFICATION_LOSSES:
        if y.is_floating_point() and width != per_sample:
            raise ConfigError(
                f"loss.name: loss '{loss}' needs class labels, but {dataset.name}'s targets are numbers "
                f"({_shape(per_sample)} per sample); use a regression loss such as 'mse'"
            )
        if not y.is_floating_point() and y.numel() and len(width) == 1 and int(y.max()) >= width[0]:
            raise ConfigError(
                f"{sizing}: the model gives {width[0]} class scores but {dataset.name} has labels up to "
                f"{int(y.max())}; it needs at least {int(y.max()) + 1} outputs"
            )


def _shape(shape: tuple[int, ...]) -> str:
    return str(shape[0]) if len(shape) == 1 else "x".join(map(str, shape)) if shape else "1"


@dataclass
class ToolInputs:
    """What the tools that do not train (check, lr-find, gradcheck) take from a config: the model, the
    training inputs scaled as fit would scale them, the targets and the loss."""

    config: Config
    model: torch.nn.Module
    X: torch.Tensor
    y: torch.Tensor
    loss: LossFn
    feature_names: list[str]
    notes: list[str]


def config_loss(config: Config, dataset: datasets.Dataset) -> LossFn:
    """The config's loss; weight = "balanced" (or pos_weight) from the training labels' class frequencies."""
    options = resolve_balanced(config.loss.name, config.loss.options, dataset.y, dataset.n_classes)
    return make_loss(config.loss.name, reduction=config.loss.reduction, **options)


def tool_inputs(config: Config) -> ToolInputs:
    """The config's model (freshly built, seeded) with its training data and loss."""
    prepared = build(config)
    dataset = prepared.dataset
    X = dataset.X
    transform = data_lib.fit_transform(X, config.data.normalize)
    if transform is not None:
        X = transform(X)
    return ToolInputs(
        config,
        prepared.model,
        X,
        dataset.y,
        config_loss(config, dataset),
        list(dataset.feature_names or []),
        prepared.notes,
    )


def batch_size(config: Config) -> int | None:
    """The config's batch size, None for the full batch (as fit takes it)."""
    return None if config.train.batch_size == "full" else config.train.batch_size


def find_lr(config: Config, **sweep: Any) -> LRFindResult:
    """The LR finder on the config's model and training data, set up as for its training (batch size,
    optimizer and options, seed, device; trials no longer than the training). sweep: start_lr,
    end_lr, steps, trial_steps."""
    from trainwise.lr_finder import lr_find

    inputs = tool_inputs(config)
    return lr_find(
        inputs.model,
        (inputs.X, inputs.y),
        loss=inputs.loss,
        optimizer=config.optim.name,
        budget_steps=budget_steps(config, len(inputs.X)),
        batch_size=batch_size(config),
        seed=config.train.seed,
        device=config.train.device,
        **sweep,
        **config.optim.options,
    )


def budget_steps(config: Config, samples: int) -> int:
    """How many optimizer steps the config's training takes on `samples` training samples."""
    train_samples = samples - round(samples * config.data.val_split)
    batch = config.train.batch_size
    per_epoch = 1 if batch == "full" else -(-train_samples // batch)
    return config.train.epochs * per_epoch


def config_callbacks(config: Config) -> list[Callback]:
    callbacks: list[Callback] = []
    if config.scheduler is not None:
        s = config.scheduler
        callbacks.append(LRScheduler(s.name, interval=s.interval, monitor=s.monitor, **s.options))
    if config.train.early_stopping is not None:
        callbacks.append(EarlyStopping(**config.train.early_stopping.model_dump()))
    log = config.log
    if log is not None and log.tensorboard:
        callbacks.append(TensorBoardLogger(params=config.to_dict()))
    if log is not None and log.mlflow:
        experiment, uri = log.mlflow_experiment, log.mlflow_tracking_uri
        callbacks.append(MLflowLogger(experiment, config.name, uri, params=config.to_dict()))
    return callbacks


def input_spec(X: torch.Tensor) -> dict[str, Any]:
    """What a run's model.json records of the model's input: one sample's shape (no batch dimension) and
    its dtype, from which `trainwise export` makes an example batch without loading the data."""
    return {"shape": list(X.shape[1:]), "dtype": str(X.dtype).removeprefix("torch.")}


def training_options(config: Config) -> dict[str, Any]:
    """fit()'s keyword arguments that the config alone decides: the optimizer and its options, the
    schedule of epochs and batches, metrics, seed, device, data handling, the doctor and the fast paths."""
    train = config.train
    return {
        "optimizer": config.optim.name,
        "lr": config.optim.lr,
        "epochs": train.epochs,
        "batch_size": batch_size(config),
        "metrics": train.metrics,
        "seed": train.seed,
        "device": train.device,
        "normalize": config.data.normalize,
        "stratify": config.data.stratify,
        "shuffle": config.data.shuffle,
        "clip_grad_norm": train.clip_grad_norm,
        "max_steps": train.max_steps,
        "accumulate": train.accumulate,
        "val_every": train.val_every,
        "val_every_steps": train.val_every_steps,
        "ema": train.ema,
        "doctor": train.doctor,
        "compile": train.compile,
        "precision": train.precision,
        **config.optim.options,
    }


def run_config(
    config: Config,
    *,
    run_root: Path | None = None,
    progress: bool | str = True,
    callbacks: Sequence[Callback] = (),
    on_note: Callable[[str], None] | None = None,
    on_model: Callable[[nn.Module, torch.Tensor], None] | None = None,
    resume: str | Path | None = None,
) -> RecipeResult:
    """Train what the config describes; with run_root, write the run record (and checkpoints) there.
    on_note gets each note on the data; on_model the model and the training inputs, before training (the
    CLI prints the model's summary). resume: a checkpoint, or a run folder for its latest, to continue
    from (trainwise.fit's resume)."""
    _check_scheduler(config)
    prepared = build(config)
    for note in prepared.notes:
        if on_note:
            on_note(note)
    dataset, train = prepared.dataset, config.train
    if on_model is not None:
        on_model(prepared.model, dataset.X)
    loss_fn = config_loss(config, dataset)
    saving = config.checkpoint
    checkpoints = []
    if run_root is not None and saving.enabled:
        checkpoints.append(Checkpoint(**saving.model_dump(exclude={"enabled"})))
    try:
        result = fit(
            prepared.model,
            (dataset.X, dataset.y),
            loss=loss_fn,
            val_split=config.data.val_split,
            val_data=(dataset.X_val, dataset.y_val)
            if dataset.X_val is not None and not config.data.val_split
            else None,
            callbacks=[*config_callbacks(config), *checkpoints, *callbacks],
            run_dir=run_root,
            resume=resume,
            progress=progress,
            feature_names=dataset.feature_names or None,
            class_names=dataset.class_names or None,
            run_name=config.name,
            config=config.to_dict(),
            **training_options(config),
        )
    except TrainwiseError as exc:  # fit names its arguments ("val_split: ..."); the user wrote config keys
        argument = str(exc).partition(":")[0]
        if argument not in _FIT_ARGUMENTS:
            raise
        raise type(exc)(_FIT_ARGUMENTS[argument] + str(exc).removeprefix(argument)) from exc
    test = None
    if config.data.test and dataset.X_test is not None and dataset.y_test is not None:
        test = evaluate(
            result.model,
            (dataset.X_test, dataset.y_test),
            loss=loss_fn,
            metrics=train.metrics,
            transform=result.transform,
        )
    if result.run is not None:
        # the recorder's model.json (how to rebuild the model), plus the input `trainwise export` traces on
        description = json.loads((result.run / "model.json").read_text())
        description["input"] = input_spec(dataset.X)
        atomic_write_text(result.run / "model.json", json.dumps(description, indent=1))
        if test is not None:
            from trainwise.recorder import add_results, record_predictions

            add_results(result.run, "test", test)
            # the report's confusion matrix on the split the test metrics come from
            record_predictions(result.run, result.model, dataset.X_test, dataset.y_test, loss_fn=loss_fn,
                               transform=result.transform, class_names=dataset.class_names or None)  # fmt: skip
    return RecipeResult(config, result, test, prepared.notes)


def run_recipe(source: str | Path, overrides: Sequence[str] = (), **kwargs: Any) -> RecipeResult:
    """Run a built-in recipe or TOML file: `trainwise.run_recipe("w1-normalized")`.

    Args:
        source: a built-in recipe's name (`trainwise recipes` lists them) or the path of a .toml config file.
        overrides: "section.key=value" settings, as --set takes them, applied to the config.
        **kwargs: passed to run_config: run_root (the runs folder to record the run in; None: not recorded),
            progress, callbacks, on_note, on_model, resume.

    Returns:
        A RecipeResult: the config, fit's FitResult, the test metrics (None without test data) and the data notes.

    Raises:
        ConfigError: no such recipe or file, or a config or override that does not validate.
    """
    return run_config(load_config(source, overrides), **kwargs)
