"""trainwise.Estimator: a PyTorch model as a scikit-learn estimator (what skorch is mostly used for).

    net = Estimator(make_model, loss="cross_entropy", lr=0.05, epochs=30, model_kwargs={"hidden": 16})
    cross_val_score(make_pipeline(StandardScaler(), net), X, y, cv=5)

One class serves both kinds: the loss decides (cross_entropy, nll, bce_with_logits, bce make a classifier;
any other loss a regressor; `task=` says it for a loss of your own). A classifier scores accuracy and a
regressor R^2, as sklearn's do, and sklearn's tools (is_classifier, stratified folds) read the kind from the
estimator's tags. Training is trainwise.fit, unchanged: `fit_kwargs` reaches every option it has.

scikit-learn is optional (`pip install 'trainwise[sklearn]'`): this module imports without it, and making an
Estimator then raises an ImportError that says so. `trainwise.Estimator` loads this module (and scikit-learn)
only when it is first asked for, so `import trainwise` stays as fast as it was.
"""

from __future__ import annotations

import inspect
import numbers
import warnings
from collections.abc import Callable
from types import MethodType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from trainwise import rng
from trainwise.errors import ConfigError
from trainwise.loop import FitResult, fit, predict
from trainwise.losses import CLASSIFICATION_LOSSES, LossFn, loss_name
from trainwise.models import inference

if TYPE_CHECKING:
    from typing import Self

    from trainwise.doctor import Finding

try:
    from sklearn.base import BaseEstimator
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, check_random_state

    _SKLEARN_MISSING: str | None = None
except ImportError as exc:  # the class below still exists; making one says what to install
    BaseEstimator = object
    _SKLEARN_MISSING = f"trainwise.Estimator needs scikit-learn: pip install 'trainwise[sklearn]' ({exc})"

__all__ = ["Estimator"]

TASKS = ("auto", "classification", "regression")
BINARY_LOSSES = frozenset({"bce_with_logits", "bce"})  # one output per sample: P(second class)
REGRESSION_LOSSES = frozenset({"mse", "l1", "huber", "smooth_l1"})
# the estimator's own parameters: fit_kwargs may not set them a second time
RESERVED_FIT_KWARGS = frozenset(
    {"model", "data", "loss", "optimizer", "lr", "epochs", "batch_size", "seed", "device", "doctor"}
)
MODEL_KWARGS = "model_kwargs__"


class _ClassifierOnly:
    """A method only a classifier has, as sklearn's available_if makes them: hasattr(regressor,
    "predict_proba") is False, which is how sklearn's tools (soft voting, "roc_auc" scoring) ask."""

    def __init__(self, method: Callable[..., np.ndarray]) -> None:
        self.method = method
        self.__doc__ = method.__doc__

    def __get__(self, obj: Any, owner: type | None = None) -> Callable[..., np.ndarray]:
        if obj is None:
            return self.method
        if not obj._is_classifier():
            raise AttributeError(f"{self.method.__name__}: this {type(obj).__name__} is a regressor")
        return MethodType(self.method, obj)


class Estimator(BaseEstimator):
    """A PyTorch model trained by trainwise.fit, with scikit-learn's estimator interface.

    fit(X, y) builds a fresh model with `model_fn(**model_kwargs)` and trains it, so every fit (every
    cross-validation fold, every grid point) starts from new weights drawn from `random_state`. Targets of a
    classifier may be any labels (strings, integers with gaps): `classes_` holds them sorted, the model
    sees their indices 0..k-1, and predict gives the labels back.

    Args:
        model_fn: builds the model: a function or an nn.Module class, called with `model_kwargs`. If it takes
            a parameter `n_features_in` or `n_outputs` (and model_kwargs does not set it), fit passes the
            number of input features (X.shape[1]) or of outputs (the classes for cross_entropy/nll, 1 for the
            binary losses, y's columns for regression).
        loss: a loss name ("cross_entropy", "mse", ...; see trainwise.fit) or a loss function; it decides
            classifier or regressor. cross_entropy and nll take one output per class, bce_with_logits and
            bce one output per sample (exactly two classes).
        task: "auto" (from the loss), or "classification" / "regression" for a loss function of your own (a
            classifier's outputs are then read as one score per class).
        optimizer, lr, epochs, batch_size: as trainwise.fit takes them (batch_size None: full batch).
        model_kwargs: keyword arguments for model_fn. Grid searches may also set one of them alone with
            the parameter name `model_kwargs__<name>` (e.g. GridSearchCV(net, {"model_kwargs__hidden": [8, 32]})).
        random_state: the seed of the weights' initialization, the batch order and dropout: the same value, the
            same model. None draws one from NumPy's global generator; a RandomState draws one from it.
        doctor: trainwise.fit's doctor mode. "quiet" collects its findings in `findings_` and warns only
            about errors (a loss that became NaN, ...); "warn" prints them all, "off" skips it.
        device: "auto" (CUDA or MPS when present), "cpu", "cuda", ...; predictions come back on the CPU.
        fit_kwargs: any other keyword of trainwise.fit: normalize, scheduler, weight_decay, momentum,
            val_split, callbacks, metrics, max_steps, progress (off here by default), run_dir (None: no run
            records), ...

    Fitted attributes: `model_` (the trained nn.Module), `result_` (trainwise.fit's FitResult), `history_`
    (per-epoch loss and metrics), `findings_` (the doctor's), `n_features_in_`, `feature_names_in_` (for
    inputs with column names), `classes_` (classifiers).
    """

    def __init__(
        self,
        model_fn: Callable[..., nn.Module],
        *,
        loss: str | LossFn,
        task: str = "auto",
        optimizer: str = "adam",
        lr: float | str = 0.01,
        epochs: int = 20,
        batch_size: int | None = 32,
        model_kwargs: dict[str, Any] | None = None,
        random_state: int | np.random.RandomState | None = 0,
        doctor: str = "quiet",
        device: str = "auto",
        fit_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if _SKLEARN_MISSING is not None:
            raise ImportError(_SKLEARN_MISSING)
        # sklearn's rule: __init__ stores the parameters as given and checks nothing (fit checks them), so
        # that clone() and set_params() rebuild exactly this estimator
        self.model_fn = model_fn
        self.loss = loss
        self.task = task
        self.optimizer = optimizer
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.model_kwargs = model_kwargs
        self.random_state = random_state
        self.doctor = doctor
        self.device = device
        self.fit_kwargs = fit_kwargs

    # ------------------------------------------------------------------ parameters and tags

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters; with deep=True also each model keyword as `model_kwargs__<name>`.

        Args:
            deep: include the nested parameters (the model keywords).
        """
        params: dict[str, Any] = super().get_params(deep=deep)
        if deep and isinstance(self.model_kwargs, dict):
            params.update({f"{MODEL_KWARGS}{name}": value for name, value in self.model_kwargs.items()})
        return params

    def set_params(self, **params: Any) -> Self:
        """Set parameters, as sklearn's set_params does; `model_kwargs__<name>=value` sets one model keyword.

        Args:
            params: parameter names and their new values.
        """
        nested = {
            key.removeprefix(MODEL_KWARGS): params.pop(key) for key in list(params) if key.startswith(MODEL_KWARGS)
        }
        super().set_params(**params)  # model_kwargs itself first, when both are given
        if nested:
            # a new dict: the one the caller passed (and a clone's original) stays as it was
            self.model_kwargs = {**(self.model_kwargs or {}), **nested}
        return self

    def _task(self) -> str:
        if self.task != "auto":
            return self.task
        key = loss_name(self.loss)
        return "classification" if key in CLASSIFICATION_LOSSES | BINARY_LOSSES else "regression"

    def _is_classifier(self) -> bool:
        return self._task() == "classification"

    @property
    def _estimator_type(self) -> str:  # what sklearn < 1.6 reads in is_classifier(); 1.6+ reads the tags
        return "classifier" if self._is_classifier() else "regressor"

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import ClassifierTags, RegressorTags

        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        if self._is_classifier():
            tags.estimator_type = "classifier"
            tags.classifier_tags = ClassifierTags()
        else:
            tags.estimator_type = "regressor"
            tags.regressor_tags = RegressorTags()
            tags.target_tags.multi_output = True  # y of shape (n, k): a model with k outputs
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    # ------------------------------------------------------------------ fit

    def fit(self, X: Any, y: Any) -> Self:
        """Build a fresh model with model_fn and train it on (X, y) with trainwise.fit.

        Args:
            X: inputs, an array-like of shape (n_samples, n_features) (or more dimensions, e.g. images).
            y: targets: labels for a classifier; numbers of shape (n_samples,) or (n_samples, k) for a regressor.
        """
        self._check_params()
        classifier = self._is_classifier()
        key = loss_name(self.loss)
        X, y = self._validate(X, y, reset=True)
        inputs = torch.tensor(X)  # a copy: read-only arrays (memmaps) are fine
        if classifier:
            check_classification_targets(y)
            self.classes_, codes = np.unique(y, return_inverse=True)
            if key in BINARY_LOSSES and len(self.classes_) != 2:
                raise ValueError(
                    f"loss {key!r} needs 2 classes, but y has {len(self.classes_)}; use loss 'cross_entropy' "
                    "(one output per class) for other class counts"
                )
            n_outputs = 1 if key in BINARY_LOSSES else len(self.classes_)
            target = torch.tensor(codes.reshape(-1), dtype=torch.float32 if key in BINARY_LOSSES else torch.long)
        else:
            target = torch.tensor(np.asarray(y, dtype=np.float32))
            n_outputs = 1 if target.ndim == 1 else target.shape[1]
        seed = self._seed()
        with rng.kept():  # the model's initialization draws from torch's generator, seeded like fit seeds it
            torch.manual_seed(seed)
            model = self._build_model(inputs.shape[1], n_outputs)
            sample_output = _sample_output(model, inputs[:1])  # also materializes lazy layers (nn.LazyLinear)
        self._target_1d = target.ndim == 1
        target = self._shaped_target(target, sample_output, n_outputs)
        result = fit(
            model,
            (inputs, target),
            **{"progress": False, "run_dir": None, **(self.fit_kwargs or {})},
            loss=self.loss,
            optimizer=self.optimizer,
            lr=self.lr,
            epochs=self.epochs,
            batch_size=self.batch_size,
            seed=seed,
            device=self.device,
            doctor=self.doctor,
        )
        self.result_: FitResult = result
        self.model_: nn.Module = result.model
        self.history_: dict[str, list[float]] = result.history
        self.findings_: list[Finding] = list(result.findings)
        errors = [finding for finding in self.findings_ if finding.severity == "error"]
        if errors and self.doctor == "quiet":  # "warn" printed them already; "quiet" must not hide a failed fit
            warnings.warn(
                f"{type(self).__name__}.fit: the doctor found {len(errors)} error(s), the first: {errors[0].format()}"
                " (all findings: findings_)",
                RuntimeWarning,
                stacklevel=2,
            )
        return self

    def _check_params(self) -> None:
        """The parameters' checks, at fit (sklearn's rule: not in __init__ or set_params)."""
        if isinstance(self.model_fn, nn.Module) or not callable(self.model_fn):
            raise ConfigError(
                f"model_fn: expected a function or nn.Module class that builds the model, got "
                f"{type(self.model_fn).__name__}; each fit (each fold) needs fresh weights, e.g. model_fn=lambda: "
                "nn.Linear(4, 1)"
            )
        if self.task not in TASKS:
            raise ConfigError(f"task: {self.task!r} is not a task; use one of {', '.join(TASKS)}")
        key = loss_name(self.loss)
        fixed = "classification" if key in CLASSIFICATION_LOSSES | BINARY_LOSSES else None
        fixed = "regression" if key in REGRESSION_LOSSES else fixed
        if fixed and self.task not in ("auto", fixed):
            raise ConfigError(f"task: loss {key!r} is a {fixed} loss, but task is {self.task!r}; use task='auto'")
        for name in ("model_kwargs", "fit_kwargs"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{name}: expected a dict or None, got {type(getattr(self, name)).__name__}")
        clash = sorted(RESERVED_FIT_KWARGS & set(self.fit_kwargs or {}))
        if clash:
            names = ", ".join(repr(name) for name in clash)
            raise ConfigError(
                f"fit_kwargs: {names}: the estimator's own parameters; set them as Estimator(..., lr=...)"
            )

    def _validate(self, X: Any, y: Any = None, *, reset: bool) -> Any:
        """sklearn's input checks (2-D numbers, no NaN, the feature count and names of fit); X as float32."""
        options: dict[str, Any] = {"reset": reset, "dtype": np.float32, "allow_nd": True}
        if y is not None or reset:  # fit: y is required, even when None is passed (sklearn's error says so)
            classifier = self._is_classifier()
            options.update(y=y, multi_output=not classifier, y_numeric=not classifier)
        from sklearn.utils import validation

        if hasattr(validation, "validate_data"):  # scikit-learn 1.6+
            return validation.validate_data(self, X, **options)
        return self._validate_data(X, **options)

    def _seed(self) -> int:
        if isinstance(self.random_state, numbers.Integral) and not isinstance(self.random_state, bool):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _build_model(self, n_features_in: int, n_outputs: int) -> nn.Module:
        kwargs = dict(self.model_kwargs or {})
        try:
            accepted = set(inspect.signature(self.model_fn).parameters)
        except (TypeError, ValueError):  # a builtin or C callable: no signature to read
            accepted = set()
        for name, value in (("n_features_in", n_features_in), ("n_outputs", n_outputs)):
            if name in accepted and name not in kwargs:
                kwargs[name] = value
        model = self.model_fn(**kwargs)
        if not isinstance(model, nn.Module):
            raise ConfigError(f"model_fn: returned {type(model).__name__}, not an nn.Module")
        return model

    def _shaped_target(self, target: torch.Tensor, sample_output: torch.Tensor, n_outputs: int) -> torch.Tensor:
        """y shaped as the model's output: MSE of an (n, 1) output against an (n,) target would broadcast to
        (n, n) and train on the wrong loss without an error. A model whose outputs cannot match is a ConfigError."""
        per_sample = tuple(sample_output.shape[1:])
        if self._is_classifier() and loss_name(self.loss) not in BINARY_LOSSES:
            if per_sample != (n_outputs,):
                raise ConfigError(
                    f"model_fn: the model gives outputs of shape {per_sample} per sample, but y has {n_outputs} "
                    f"classes: it needs ({n_outputs},), one score per class (model_fn can take `n_outputs`)"
                )
            return target
        fits = {(n_outputs,), ()} if target.ndim == 1 else {(n_outputs,)}  # y (n,): outputs (n, 1) or (n,)
        if per_sample not in fits:
            raise ConfigError(
                f"model_fn: the model gives outputs of shape {per_sample} per sample, but y has {n_outputs} "
                f"value(s) per sample (model_fn can take `n_outputs`)"
            )
        return target.reshape(target.shape[0], *per_sample)

    # ------------------------------------------------------------------ predict and score

    def _outputs(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        outputs = predict(self.model_, torch.tensor(X), transform=self.result_.transform)
        return outputs.double().numpy()  # float64, as sklearn's predictions are: probabilities sum to 1 exactly

    @_ClassifierOnly
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in the order of classes_.

        Args:
            X: inputs of the shape fit had.
        """
        outputs = self._outputs(X)
        key = loss_name(self.loss)
        if key in BINARY_LOSSES:
            flat = outputs.reshape(-1)
            positive = 1.0 / (1.0 + np.exp(-flat)) if key == "bce_with_logits" else np.clip(flat, 0.0, 1.0)
            return np.stack([1.0 - positive, positive], axis=1)
        # softmax: of logits (cross_entropy) and of log-probabilities (nll, where it is exp) alike
        shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels (classifier: values of classes_) or values (regressor: y's shape of fit).

        Args:
            X: inputs of the shape fit had.
        """
        check_is_fitted(self)
        if self._is_classifier():
            return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
        outputs = self._outputs(X)
        # y of shape (n,) in, predictions of shape (n,) out (the model's are (n, 1))
        return outputs.reshape(-1) if self._target_1d else outputs

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy for a classifier, R^2 for a regressor (sklearn's defaults, which model selection maximizes).

        Args:
            X: inputs.
            y: the true labels or values.
            sample_weight: optional weights of the samples.
        """
        if self._is_classifier():
            return float(accuracy_score(y, self.predict(X), sample_weight=sample_weight))
        return float(r2_score(y, self.predict(X), sample_weight=sample_weight))


def _sample_output(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """The model's output for one sample, in eval mode without gradients; the model's mode is put back."""
    with inference(model):
        output = model(X)
    if not isinstance(output, torch.Tensor):
        raise ConfigError(f"model_fn: the model returns {type(output).__name__}; the Estimator needs a tensor")
    return output
