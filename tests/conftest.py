from pathlib import Path

import pytest

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")

needs_fashion_mnist = pytest.mark.skipif(
    not FASHION_MNIST.exists(), reason="install dataset-fashion-mnist (apt) for the Fashion-MNIST tests"
)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs recorded by a test never land in the working tree."""
    monkeypatch.setenv("TRAINWISE_HOME", str(tmp_path_factory.mktemp("home")))
