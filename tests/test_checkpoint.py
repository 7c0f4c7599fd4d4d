import json
from pathlib import Path

import pytest
import torch
from torch import nn

import trainwise
from trainwise.checkpoint import atomic_path, atomic_write_text
from trainwise.errors import TrainwiseError
from trainwise.models import build_model
from trainwise.recipes import run_recipe


def test_a_built_model_round_trips_bit_for_bit(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("mlp", 784, 10, hidden=[32, 16])
    x = torch.randn(5, 784)
    folder = trainwise.save(model, tmp_path / "mlp", config={"note": "test"})
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.safetensors"]
    description = json.loads((folder / "model.json").read_text())
    assert description["model"] == {"name": "mlp", "in_features": 784, "out_features": 10,
                                    "options": {"hidden": [32, 16]}}  # fmt: skip
    assert description["config"] == {"note": "test"} and description["version"] == 1
    loaded = trainwise.load(folder)
    assert loaded is not model
    assert torch.equal(loaded(x), model(x))


def test_an_import_path_model_is_rebuilt_from_its_path(tmp_path: Path) -> None:
    model = build_model("trainwise.models:TwoLayerNet", 1000, 10, d_in=20, hidden=7, d_out=3)
    trainwise.save(model, tmp_path / "net")
    loaded = trainwise.load(tmp_path / "net")
    assert type(loaded).__name__ == "TwoLayerNet"
    pairs = zip(model.state_dict().values(), loaded.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_a_run_folder_loads_like_a_saved_model(tmp_path: Path) -> None:
    result = run_recipe("w1-normalized", ["train.epochs=50"], progress=False, run_root=tmp_path)
    assert result.fit.run is not None
    loaded = trainwise.load(result.fit.run)
    assert torch.equal(loaded.weight, result.fit.model.weight) and torch.equal(loaded.bias, result.fit.model.bias)


def test_a_user_model_needs_an_instance_to_load_into(tmp_path: Path) -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(3, 2)

    model = Net()
    trainwise.save(model, tmp_path / "net")
    with pytest.raises(TrainwiseError, match=r"was not built by trainwise.*pass model="):
        trainwise.load(tmp_path / "net")
    other = trainwise.load(tmp_path / "net", model=Net())
    assert torch.equal(other.layer.weight, model.layer.weight)


def test_another_architecture_or_a_damaged_file_is_a_clear_error(tmp_path: Path) -> None:
    trainwise.save(build_model("mlp", 4, 2, hidden=[8]), tmp_path / "a")
    with pytest.raises(TrainwiseError, match=r"does not fit the model.*another architecture"):
        trainwise.load(tmp_path / "a", model=build_model("mlp", 4, 2, hidden=[9]))
    weights = tmp_path / "a" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    with pytest.raises(TrainwiseError, match=r"not a readable safetensors file.*truncated"):
        trainwise.load(tmp_path / "a")
    description = json.loads((tmp_path / "a" / "model.json").read_text())
    (tmp_path / "a" / "model.json").write_text(json.dumps({**description, "version": 99}))
    with pytest.raises(TrainwiseError, match="format version 99; this trainwise reads version 1"):
        trainwise.load(tmp_path / "a")
    with pytest.raises(TrainwiseError, match="no such file or folder"):
        trainwise.load(tmp_path / "missing")


class Pickled(nn.Module):  # module level, so torch.save(model) can pickle it
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 1)


def test_legacy_torch_files_never_unpickle_code_unless_trusted(tmp_path: Path) -> None:
    model = Pickled()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    filled = trainwise.load(tmp_path / "weights.pt", model=Pickled())
    assert torch.equal(filled.layer.weight, model.layer.weight)
    with pytest.raises(TrainwiseError, match=r"a state_dict .*pass model="):
        trainwise.load(tmp_path / "weights.pt")
    torch.save(model, tmp_path / "whole.pth")  # the W5 write-up's way
    with pytest.raises(TrainwiseError, match=r"pickled Python object.*trust_pickle=True"):
        trainwise.load(tmp_path / "whole.pth")
    trusted = trainwise.load(tmp_path / "whole.pth", trust_pickle=True)
    assert isinstance(trusted, Pickled) and torch.equal(trusted.layer.weight, model.layer.weight)


def test_atomic_writes_keep_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    atomic_write_text(target, "old")
    with pytest.raises(OSError), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise OSError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary file left behind
    atomic_write_text(target, "new")
    assert target.read_text() == "new"


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_export_torchscript_and_safetensors_predict_like_the_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("mlp", 6, 3, hidden=[8], dropout=0.5)
    model.train()
    x = torch.randn(4, 6)
    traced = trainwise.checkpoint.export(model, tmp_path / "m.pt", format="torchscript", example=x[:1])
    assert model.training  # left as it was
    model.eval()
    assert torch.allclose(torch.jit.load(str(traced))(x), model(x))  # traced in eval mode: dropout off
    folder = trainwise.checkpoint.export(model, tmp_path / "m", format="safetensors", example=x[:1])
    assert torch.equal(trainwise.load(folder).eval()(x), model(x))


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_cli_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trainwise.cli import main

    runs = str(tmp_path / "runs")
    assert main(["fit", "w1-normalized", "--set", "train.epochs=20", "--quiet", "--runs-dir", runs]) == 0
    output = tmp_path / "w1.pt"
    assert main(["export", "latest", "--format", "torchscript", "--output", str(output), "--runs-dir", runs]) == 0
    scripted = torch.jit.load(str(output))
    inputs = torch.tensor([[3.57], [5.59]])  # t_u already scaled by 0.1, as the model was trained
    assert torch.equal(
        scripted(inputs), trainwise.load(next(p for p in (tmp_path / "runs").iterdir() if p.is_dir()))(inputs)
    )
    assert main(["export", "latest", "--format", "pickle", "--runs-dir", runs]) == 2
    assert "invalid choice: 'pickle'" in capsys.readouterr().err
