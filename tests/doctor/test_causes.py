"""The cause graph (findings.SYMPTOMS, MISREADINGS) and the checks that find causes behind symptoms: an lr
that threw the weights off before the loss went flat, layers kept outside the model, class ids fed to a
regression loss, a partial train/validation overlap, gradients exploding or vanishing through time."""

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import trainwise
from tests.doctor.helpers import blobs, found
from trainwise.doctor import CODES, Doctor
from trainwise.doctor.findings import MISREADINGS, SYMPTOMS


def codes(doctor: Doctor) -> set[str]:
    return {f.code for f in doctor.findings}


def quiet(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module) -> Doctor:
    """watch() printing nowhere; the loop below uses the very loss module it watches (doctor.loss_fn)."""
    printed: list[str] = []
    return trainwise.watch(model, optimizer, loss_fn=loss_fn, printer=printed.append)


def minibatches(
    doctor: Doctor,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    batch_size: int = 32,
) -> None:
    generator = torch.Generator().manual_seed(1)
    loss_fn = doctor.loss_fn
    assert loss_fn is not None
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=generator)
        for start in range(0, len(X), batch_size):
            rows = order[start : start + batch_size]
            loss = loss_fn(model(X[rows]), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            doctor.record(loss, target=y[rows])


def test_the_docs_draw_the_cause_graph_of_the_code() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "doctor.md").read_text(encoding="utf-8")
    block = text[text.index("## Causes and symptoms") :].split("```")[1]
    drawn: dict[str, dict[str, tuple[str, ...]]] = {">": {}, "x": {}}
    lines = block.replace("\n" + " " * 48, " ").splitlines()  # continuation lines join their arrow's line
    for line in lines:
        match = re.match(r"^([a-z-]+) ─+([>x]) +(.*)$", line)
        if match:
            cause, kind, rest = match.groups()
            drawn[kind][cause] = tuple(c for c in re.findall(r"[a-z-]+", rest.split("  ")[0]) if c in CODES)
    assert drawn[">"] == SYMPTOMS
    assert drawn["x"] == MISREADINGS


def test_a_cause_found_later_names_itself_in_its_symptom_and_withdraws_its_misreadings() -> None:
    model = nn.Linear(2, 1)
    printed: list[str] = []
    doctor = trainwise.watch(model, torch.optim.SGD(model.parameters(), lr=0.1), printer=printed.append)
    doctor.raise_finding("dead-relu", "units died", subject="fc1")
    doctor.raise_finding("lr-too-low", "tiny steps")
    doctor.raise_finding("lr-too-high", "the loss jumped")
    assert codes(doctor) == {"dead-relu", "lr-too-high"}
    assert found(doctor.findings, "dead-relu").cause == "lr-too-high"
    assert "Cause: lr-too-high." in found(doctor.findings, "dead-relu").format()
    assert doctor.withdrawn == [("lr-too-low", "lr-too-high")]
    assert "withdrawn lr-too-low: lr-too-high explains what it saw" in printed
    assert doctor.raise_finding("lr-too-low", "tiny steps again") is None  # never again while the cause stands
    assert found(doctor.findings, "lr-too-high").cause is None
    assert found(doctor.findings, "dead-relu").to_dict()["cause"] == "lr-too-high"
    doctor.close()


def test_a_jump_that_kills_the_relus_is_lr_too_high_not_lr_too_low() -> None:
    torch.manual_seed(0)
    centers = 2 * torch.randn(10, 20)
    y = torch.randint(0, 10, (2000,))
    X = centers[y] + torch.randn(2000, 20)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=3.0)
    loss_fn = nn.CrossEntropyLoss()
    with quiet(model, optimizer, loss_fn) as doctor:
        for _ in range(8):
            order = torch.randperm(1600)
            for start in range(0, 1600, 64):
                rows = order[start : start + 64]
                loss = loss_fn(model(X[rows]), y[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                doctor.record(loss, target=y[rows])
    high = found(doctor.findings, "lr-too-high")
    assert "lr-too-low" not in codes(doctor)
    assert high.evidence["peak_loss"] > 100 * high.evidence["start_loss"]
    assert high.evidence["loss"] > 0.9 * high.evidence["start_loss"]  # stuck at the untrained model's level
    assert found(doctor.findings, "dead-relu").cause == "lr-too-high"


class ListNet(nn.Module):
    """Hidden layers in a plain list and the head in a plain dict: they run, but the model does not own them."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(8, 16)
        self.hidden = [nn.Linear(16, 16), nn.Linear(16, 16)]
        self.heads = {"value": nn.Linear(16, 1)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.first(x))
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.heads["value"](x)


def test_layers_in_a_plain_list_or_dict_are_params_not_optimized_naming_the_attribute() -> None:
    torch.manual_seed(0)
    model = ListNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    X = torch.randn(64, 8)
    y = X.sum(1, keepdim=True)
    hooks_before = len(torch.nn.modules.module._global_forward_hooks)
    with quiet(model, optimizer, nn.MSELoss()) as doctor:
        minibatches(doctor, model, optimizer, X, y, epochs=1)
        assert len(torch.nn.modules.module._global_forward_hooks) == hooks_before  # only around the first forward
    findings = {f.subject: f for f in doctor.findings if f.code == "params-not-optimized"}
    assert set(findings) == {"self.hidden", "self.heads"}
    assert findings["self.hidden"].evidence == {"layers": 2, "parameters": 2 * (16 * 16 + 16)}
    assert "nn.ModuleList" in findings["self.hidden"].suggestion
    assert "nn.ModuleDict" in findings["self.heads"].suggestion
    # the same layers in nn.ModuleList / nn.ModuleDict: nothing to say
    model.hidden = nn.ModuleList(model.hidden)  # type: ignore[assignment]
    model.heads = nn.ModuleDict(model.heads)  # type: ignore[assignment]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with quiet(model, optimizer, nn.MSELoss()) as doctor:
        minibatches(doctor, model, optimizer, X, y, epochs=1)
    assert "params-not-optimized" not in codes(doctor)


def test_every_parameter_frozen_is_no_gradient_at_the_start() -> None:
    model = nn.Linear(4, 2).requires_grad_(False)
    doctor = quiet(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss())
    assert found(doctor.findings, "no-gradient").evidence == {"frozen_params": 2}
    doctor.close()


def regression_on_ids(targets: torch.Tensor) -> Doctor:
    torch.manual_seed(0)
    X = torch.randn(len(targets), 6) + targets.unsqueeze(1)
    y = targets.float().unsqueeze(1)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with quiet(model, optimizer, nn.MSELoss()) as doctor:
        minibatches(doctor, model, optimizer, X, y, epochs=2, batch_size=50)
    return doctor


def test_a_regression_loss_on_class_ids_is_wrong_loss_but_skewed_ratings_are_not() -> None:
    ids = torch.arange(600) % 5  # five balanced classes 0..4
    wrong = found(regression_on_ids(ids).findings, "wrong-loss")
    assert wrong.evidence["classes"] == 5
    assert "CrossEntropyLoss" in wrong.suggestion and "5 outputs" in wrong.suggestion
    # star ratings 1..5, skewed as ratings are: a number to regress on
    ratings = torch.multinomial(torch.tensor([0.05, 0.1, 0.2, 0.4, 0.25]), 600, replacement=True,
                                generator=torch.Generator().manual_seed(0)) + 1  # fmt: skip
    assert "wrong-loss" not in codes(regression_on_ids(ratings))


def validate(doctor: Doctor, model: nn.Module, X_val: torch.Tensor, y_val: torch.Tensor) -> None:
    model.eval()
    with torch.no_grad():
        doctor.record(val_loss=F.cross_entropy(model(X_val), y_val))
    model.train()


def overlap_run(shared: int) -> Doctor:
    """400 training rows; 100 validation rows of which `shared` are exact copies of training rows."""
    X, y = blobs(n=500, classes=3, features=10)
    X_val = torch.cat([X[:shared], X[400 : 500 - shared]])
    y_val = torch.cat([y[:shared], y[400 : 500 - shared]])
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    with quiet(model, optimizer, nn.CrossEntropyLoss()) as doctor:
        for _ in range(2):
            minibatches(doctor, model, optimizer, X[:400], y[:400], epochs=1)
            validate(doctor, model, X_val, y_val)
    return doctor


def test_a_partial_overlap_is_found_and_a_duplicate_or_two_is_not() -> None:
    leak = found(overlap_run(35).findings, "train-val-overlap")
    assert leak.evidence == {"shared": 35, "validation_samples": 100, "fraction": 0.35}
    assert "train-val-overlap" not in codes(overlap_run(2))


def test_rows_of_few_discrete_values_repeat_by_nature_and_need_half_to_count() -> None:
    from trainwise.doctor.inputs import repeats_by_nature

    one_hot = torch.eye(4)[torch.randint(0, 4, (200,))]  # 4 possible rows
    assert repeats_by_nature(one_hot, trained_rows=1000)
    assert not repeats_by_nature(torch.randn(200, 5), trained_rows=1000)


class SequenceNet(nn.Module):
    def __init__(self, nonlinearity: str, gain: float) -> None:
        super().__init__()
        self.rnn = nn.RNN(4, 32, nonlinearity=nonlinearity, batch_first=True)
        with torch.no_grad():
            weight = torch.linalg.qr(torch.randn(32, 32))[0]  # orthogonal: every singular value 1
            self.rnn.weight_hh_l0.copy_(gain * weight)
        self.out = nn.Linear(32, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(x)[0][:, -1])


def sequence_run(nonlinearity: str, gain: float) -> Doctor:
    torch.manual_seed(0)
    X = torch.randn(256, 30, 4)
    y = (X[:, 0, 0] > 0).long()  # the class is in the first time step
    model = SequenceNet(nonlinearity, gain)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    with quiet(model, optimizer, nn.CrossEntropyLoss()) as doctor:
        minibatches(doctor, model, optimizer, X, y, epochs=1)
    return doctor


def test_gradients_exploding_or_vanishing_through_time_inside_a_recurrent_layer() -> None:
    exploding = found(sequence_run("relu", 2.0).findings, "exploding-gradients")
    assert exploding.subject == "rnn" and exploding.evidence["time_steps"] == 30
    assert exploding.evidence["backward_growth_through_time"] > 100
    vanishing = found(sequence_run("tanh", 0.3).findings, "vanishing-gradients")
    assert vanishing.evidence["backward_growth_through_time"] < 1e-8
    healthy = sequence_run("tanh", 1.0)
    assert not {"exploding-gradients", "vanishing-gradients"} & codes(healthy)
