import os
from pathlib import Path

import pytest
from hypothesis import settings

SRC = Path(__file__).resolve().parents[1] / "src"

# every built-in recipe, one per seed variant (../shared/seed-workloads.md), in sorted order
RECIPE_NAMES = [
    "w1-adam-raw",
    "w1-normalized",
    "w1-normalized-3000",
    "w1-quadratic",
    "w1-raw-lr1e-2",
    "w1-raw-lr1e-4",
    "w1-val-split",
    "w2-logistic",
    "w3-adam",
    "w3-custom-module",
    "w3-dynamic",
    "w3-sequential-sgd",
    "w4-rmsprop",
    "w4-rmsprop-as-written",
    "w4-sgd-sum",
    "w5-as-written",
    "w5-corrected",
    "w5-tuned",
]

# CI draws the same examples on every run, so a commit's verdict does not depend on luck; local runs keep
# drawing new ones (that is how the cases in tests/test_config_properties.py FOUND were found)
settings.register_profile("ci", derandomize=True)
settings.load_profile(os.environ.get("TRAINWISE_HYPOTHESIS_PROFILE", "default"))

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")

needs_fashion_mnist = pytest.mark.skipif(
    not FASHION_MNIST.exists(), reason="install dataset-fashion-mnist (apt) for the Fashion-MNIST tests"
)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs recorded by a test never land in the working tree."""
    monkeypatch.setenv("TRAINWISE_HOME", str(tmp_path_factory.mktemp("home")))


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a `python -m trainwise` subprocess: this checkout's src first on PYTHONPATH, so the
    code under test runs whether or not (or wherever) the package is installed."""
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    return env
