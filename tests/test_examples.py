"""examples/: the seed workloads as their authors wrote them, plain PyTorch scripts without trainwise, run
unmodified through `trainwise doctor`: it finds the mistakes the write-ups made, and the corrected versions
(the same scripts with a flag) are silent."""

import json
from pathlib import Path

import pytest

from trainwise.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
SMALL = ["--limit", "10000"]  # a slice of Fashion-MNIST keeps these seconds long; the mistakes show as well


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("w1_temperature.py", [], {"unscaled-inputs", "lr-too-high", "nonfinite-loss"}),
        ("w1_temperature.py", ["--fixed"], set()),
        # lr 0.5 suits MNIST; on Fashion-MNIST's harder images the loss jumps and stalls (valid loss 2.1 after
        # two epochs, against 0.5 at a tenth of it)
        ("w2_logistic_regression.py", SMALL, {"lr-too-high"}),
        ("w3_two_layer_net.py", [], {"sum-reduction"}),
        ("w3_two_layer_net.py", ["--adam"], set()),
        ("w4_polynomial_sin.py", [], {"lr-too-low"}),
        ("w4_polynomial_sin.py", ["--lr", "1e-3"], set()),
        ("w5_fashion_mlp.py", ["--epochs", "1", *SMALL], {"output-class-mismatch"}),
        ("w5_fashion_mlp.py", ["--epochs", "1", "--outputs", "10", *SMALL], set()),
    ],
)
def test_trainwise_doctor_finds_the_write_ups_mistakes_in_the_unmodified_scripts(
    script: str, args: list[str], expected: set[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if script.startswith(("w2", "w5")) and not FASHION.is_file():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    out = tmp_path / "findings.json"
    assert main(["doctor", "--json", str(out), str(EXAMPLES / script), *args]) == 0
    assert {f["code"] for f in json.loads(out.read_text())} == expected, capsys.readouterr().err
