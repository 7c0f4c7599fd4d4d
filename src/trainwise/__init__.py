"""trainwise: train PyTorch models the way the tutorials do, done right and fast.

result = trainwise.fit(model, (X, y), loss="mse", optimizer="sgd", lr=1e-2, epochs=5000)
"""

from typing import TYPE_CHECKING, Any

from trainwise.callbacks import Callback, EarlyStopping, GradientClipping, History, LRScheduler, ProgressBar
from trainwise.checkpoint import Checkpoint, load, save
from trainwise.comparison import Comparison, compare
from trainwise.config import load_config
from trainwise.datasets import Dataset, load_dataset
from trainwise.doctor import AutowatchSession, Doctor, Finding, autowatch, check, watch
from trainwise.doctor.session import (  # %load_ext trainwise / %unload_ext trainwise
    load_ipython_extension as load_ipython_extension,
)
from trainwise.doctor.session import (
    unload_ipython_extension as unload_ipython_extension,
)
from trainwise.errors import ConfigError, DataError, TrainingError, TrainwiseError
from trainwise.gradient_check import GradcheckResult, gradcheck
from trainwise.loggers import MLflowLogger, TensorBoardLogger
from trainwise.loop import FitResult, evaluate, fit, predict, train_step
from trainwise.lr_finder import LRFindResult, lr_find
from trainwise.metrics import Metric
from trainwise.models import build_model, summary
from trainwise.recipes import run_recipe
from trainwise.run_report import report

if TYPE_CHECKING:
    from trainwise.estimator import Estimator

__all__ = [
    "AutowatchSession",
    "Callback",
    "Checkpoint",
    "Comparison",
    "ConfigError",
    "DataError",
    "Dataset",
    "Doctor",
    "EarlyStopping",
    "Estimator",
    "Finding",
    "FitResult",
    "GradcheckResult",
    "GradientClipping",
    "History",
    "LRFindResult",
    "LRScheduler",
    "MLflowLogger",
    "Metric",
    "ProgressBar",
    "TensorBoardLogger",
    "TrainingError",
    "TrainwiseError",
    "autowatch",
    "build_model",
    "check",
    "compare",
    "evaluate",
    "fit",
    "gradcheck",
    "load",
    "load_config",
    "load_dataset",
    "lr_find",
    "predict",
    "report",
    "run_recipe",
    "save",
    "summary",
    "train_step",
    "watch",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # trainwise.Estimator loads scikit-learn (an optional extra; about a second to import): only when asked for
    if name == "Estimator":
        from trainwise.estimator import Estimator

        return Estimator
    raise AttributeError(f"module 'trainwise' has no attribute {name!r}")
