"""The network family on realistic faults: dead ReLUs (very negative biases, a learning rate that kills
them), bad initializations (constant or zero hidden weights, N(0, 1) weights on 784 inputs) and
train/eval mode mix-ups; and their healthy near-misses (a few dead units, a zero-initialized output
layer, PyTorch's default init, proper eval()/train() switching)."""

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.doctor.helpers import Net, blobs, generator, regression
from tests.doctor.helpers import cpu_fit as fit
from trainwise.doctor import Doctor, Finding, check, watch

MY_CODES = {"dead-relu", "bad-init", "eval-mode-missing"}
ModelFactory = Callable[[], nn.Module]
DataFactory = Callable[[], tuple[torch.Tensor, torch.Tensor]]
OptimizerFactory = Callable[..., torch.optim.Optimizer]


def images(n: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """8x8 images whose class is the quadrant holding a bright square."""
    g = generator(seed)
    y = torch.arange(n) % 4
    X = 0.1 * torch.randn(n, 1, 8, 8, generator=g)
    for i, label in enumerate(y.tolist()):
        row, col = divmod(label, 2)
        X[i, 0, row * 4 : row * 4 + 4, col * 4 : col * 4 + 4] += 1.0
    return X, y


def pixels(n: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST-shaped rows: 784 intensities in [0, 1], 10 classes."""
    g = generator(seed)
    return torch.rand(n, 784, generator=g), torch.randint(0, 10, (n,), generator=g)


def mlp(features: int = 16, hidden: int = 32, classes: int = 4) -> nn.Sequential:
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, classes))  # fmt: skip


def linear(model: nn.Module, index: int) -> nn.Linear:
    """The model's index-th Linear layer."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)][index]


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 2 * 2, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: tuple[torch.Tensor, torch.Tensor],
    *,
    steps: int = 40,
    batch_size: int = 32,
    loss_fn: nn.Module | None = None,
) -> Doctor:
    """The usual hand-written classification step over random minibatches."""
    X, y = data
    g = generator(1)
    with watch(model, optimizer, loss_fn=loss_fn, mode="quiet") as doctor:
        for _ in range(steps):
            index = torch.randint(0, len(X), (batch_size,), generator=g)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(X[index]), y[index])
            loss.backward()
            optimizer.step()
            doctor.record(loss, target=y[index])
    return doctor


def codes(findings: list[Finding] | Doctor) -> set[str]:
    items = findings.findings if isinstance(findings, Doctor) else findings
    return {f.code for f in items}


def of(findings: list[Finding] | Doctor, code: str) -> dict[str | None, Finding]:
    """The findings of one code by subject."""
    items = findings.findings if isinstance(findings, Doctor) else findings
    return {f.subject: f for f in items if f.code == code}


def problems(findings: list[Finding] | Doctor) -> list[str]:
    items = findings.findings if isinstance(findings, Doctor) else findings
    return [f.format() for f in items if f.severity != "info"]


# ----------------------------------------------------------------------------- dead-relu


def test_relu_biases_initialised_to_minus_5_are_dead_relu() -> None:
    torch.manual_seed(0)
    model = mlp()
    nn.init.constant_(linear(model, 0).bias, -5.0)  # every unit of the first layer starts below zero for all inputs
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    doctor = train(model, optimizer, blobs(), loss_fn=nn.CrossEntropyLoss())
    # (numerics adds vanishing-gradients: the first layer's gradient is exactly zero)
    assert codes(doctor) & MY_CODES == {"dead-relu"}
    [finding] = of(doctor, "dead-relu").values()
    assert finding.severity == "warning" and finding.subject == "1"  # the ReLU module after layer 0
    assert finding.evidence == {"dead_fraction": 1.0, "batches": 3}
    assert finding.step == 3  # three sampled batches in a row, from the start
    assert "100% of the units after 1" in finding.message and "biases at zero" in finding.suggestion


def test_huge_sgd_step_kills_functional_relus_in_fit() -> None:
    """Regression with F.relu in forward(): one huge SGD step pushes fc2's units below zero for good, and the
    model predicts a constant from then on."""
    torch.manual_seed(0)
    X, y = regression()
    result = fit(Net(features=8, outputs=1), (X, 10 * y + 5), loss="mse", lr=0.1, epochs=4, batch_size=32,
                 progress=False, doctor="quiet")  # fmt: skip
    assert codes(result.findings) == {"dead-relu"}
    finding = of(result.findings, "dead-relu")["fc2"]
    assert finding.severity == "warning"
    assert finding.evidence == {"dead_fraction": 1.0, "batches": 3}
    assert "of fc2 output zero for every sample" in finding.message
    losses = result.history["loss"]
    assert losses[-1] == pytest.approx(losses[-2], rel=1e-3)  # stuck: a constant prediction


def test_huge_lr_kills_the_relus_of_a_conv_net() -> None:
    torch.manual_seed(0)
    model = ConvNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=3.0)
    doctor = train(model, optimizer, images(), loss_fn=nn.CrossEntropyLoss())
    assert codes(doctor) == {"dead-relu", "lr-too-high"}  # the symptom with its cause
    dead = of(doctor, "dead-relu")
    assert set(dead) == {"conv1", "conv2"}  # channels of each conv layer, read through F.relu
    assert all(f.evidence["dead_fraction"] >= 0.7 and f.evidence["batches"] == 3 for f in dead.values())
    assert all(f.cause == "lr-too-high" for f in dead.values())
    assert dead["conv2"].evidence["dead_fraction"] == 1.0
    assert doctor.obs.losses[-1] > math.log(4)  # no better than chance
    (high,) = of(doctor, "lr-too-high").values()
    # the loss jumped far above its start, then sat at the untrained model's level: stuck, not diverging
    assert high.evidence["peak_loss"] > 10 * high.evidence["start_loss"]
    assert high.evidence["loss"] > 0.9 * high.evidence["start_loss"]
    assert "jumped from" in high.message and "no better than the untrained model" in high.message


@pytest.mark.parametrize("model", ["nn.ReLU modules", "F.relu in forward"])
def test_a_fifth_of_dead_units_is_not_dead_relu(model: str) -> None:
    torch.manual_seed(0)
    net = mlp() if model == "nn.ReLU modules" else Net()
    first = linear(net, 0)
    with torch.no_grad():
        first.bias[:7] = -50.0  # 7 of 32 units (22%) can never switch on
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    doctor = train(net, optimizer, blobs(), loss_fn=nn.CrossEntropyLoss())
    fractions = doctor.obs.dead_fractions.get("1") if model == "nn.ReLU modules" else None
    assert fractions is None or min(fractions) >= 0.2  # they are seen, and are below the threshold
    assert problems(doctor) == []


def test_functional_relu_net_trained_to_zero_loss_is_silent() -> None:
    """Units active only on samples the loss is already sure about get no gradient: they are not dead."""
    torch.manual_seed(0)
    model = ConvNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    doctor = train(model, optimizer, images(), steps=100, loss_fn=nn.CrossEntropyLoss())
    assert doctor.obs.losses[-1] < 1e-3
    assert problems(doctor) == []


def test_negative_units_before_tanh_are_not_dead_relu() -> None:
    class TanhNet(Net):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.tanh(self.fc2(torch.tanh(self.fc1(x)))))

    torch.manual_seed(0)
    model = TanhNet()
    nn.init.constant_(model.fc1.bias, -5.0)  # negative for every sample, but tanh still passes a gradient
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    doctor = train(model, optimizer, blobs(), loss_fn=nn.CrossEntropyLoss())
    assert "dead-relu" not in codes(doctor)


# ----------------------------------------------------------------------------- bad-init


def test_zero_init_of_every_layer_is_bad_init_and_not_dead_relu() -> None:
    def init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    torch.manual_seed(0)
    model = mlp()
    model.apply(init_weights)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    doctor = train(model, optimizer, blobs(), loss_fn=nn.CrossEntropyLoss())
    assert codes(doctor) & MY_CODES == {"bad-init"}  # the dead ReLUs are the init's doing: one finding
    found = of(doctor, "bad-init")
    assert set(found) == {"0.weight", "2.weight"}  # the hidden layers; the output layer 4 may start at zero
    for finding in found.values():
        assert finding.severity == "warning" and finding.step == 0
        assert finding.evidence == {"units": 32, "value": 0.0, "stuck": 1.0}
        assert "stay copies of each other forever" in finding.message


def test_constant_hidden_weights_in_a_custom_module_are_bad_init_in_fit() -> None:
    torch.manual_seed(0)
    model = Net()
    for layer in (model.fc1, model.fc2):
        nn.init.constant_(layer.weight, 0.05)  # biases keep their random default
    result = fit(model, blobs(), loss="cross_entropy", optimizer="adam", lr=1e-3, epochs=2, batch_size=32,
                 progress=False, doctor="quiet")  # fmt: skip
    found = of(result.findings, "bad-init")
    assert set(found) == {"fc1.weight", "fc2.weight"}
    assert found["fc1.weight"].evidence == {"units": 32, "value": pytest.approx(0.05), "stuck": 0.0}
    assert "one feature instead of 32" in found["fc1.weight"].message
    assert codes(result.findings) & MY_CODES == {"bad-init"}


def test_zero_hidden_weights_are_found_before_training_by_check() -> None:
    torch.manual_seed(0)
    model = Net()
    nn.init.zeros_(model.fc1.weight)
    findings = check(model, blobs(), loss="cross_entropy")
    found = of(findings, "bad-init")
    assert set(found) == {"fc1.weight"}
    assert found["fc1.weight"].evidence["stuck"] == 0.0  # fc2 weighs fc1's units differently
    assert "bias is negative outputs zero for every input" in found["fc1.weight"].message


def test_standard_normal_weights_on_784_inputs_start_far_above_chance_without_a_loss_module() -> None:
    """`nn.init.normal_(w)` (std 1) on 784 pixel inputs: logits in the tens, a first cross-entropy near 50.
    The doctor is not told the loss: it computes the first batch's cross-entropy from what it saw."""
    torch.manual_seed(0)
    X, y = pixels()
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    nn.init.normal_(linear(model, 0).weight)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    g = generator(1)
    with watch(model, optimizer, mode="quiet") as doctor:
        for step in range(12):
            index = torch.randint(0, len(X), (64,), generator=g)
            if step == 0:
                with torch.no_grad():
                    first = float(F.cross_entropy(model(X[index]), y[index]))
            optimizer.zero_grad()
            loss = F.cross_entropy(model(X[index]), y[index], reduction="sum")  # a summed loss, unknown to the doctor
            loss.backward()
            optimizer.step()
            doctor.record(loss, target=y[index])
    assert first > 20  # about 30: nine times the 2.3 of a fresh classifier
    assert codes(doctor) & MY_CODES == {"bad-init"}
    [finding] = of(doctor, "bad-init").values()
    assert finding.subject is None and finding.step == 1
    assert finding.evidence["initial_loss"] == pytest.approx(first, rel=1e-4)
    assert finding.evidence["chance_loss"] == pytest.approx(math.log(10))
    assert "N(0, 1)" in finding.suggestion


def test_standard_normal_weights_in_every_layer_are_bad_init_in_fit() -> None:
    """A from-scratch tutorial's `torch.randn(784, 64)`-style weights in both layers."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    for index in (0, 1):
        nn.init.normal_(linear(model, index).weight, std=1.0)
    result = fit(model, pixels(), loss="cross_entropy", lr=1e-3, epochs=1, batch_size=64, progress=False,
                 doctor="quiet")  # fmt: skip
    [finding] = of(result.findings, "bad-init").values()
    assert finding.evidence["initial_loss"] > 50  # against ln 10 = 2.3 for a fresh classifier
    assert finding.evidence["chance_loss"] == pytest.approx(math.log(10))


@pytest.mark.parametrize("loss_fn", [nn.CrossEntropyLoss(), None], ids=["loss module", "no loss module"])
def test_default_init_and_a_zero_initialised_output_layer_are_silent(loss_fn: nn.Module | None) -> None:
    torch.manual_seed(0)
    for model in (mlp(), Net(), nn.Sequential(nn.Flatten(), nn.Linear(16, 4))):
        last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        for zero_output in (False, True):
            if zero_output:
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
            doctor = train(model, optimizer, blobs(), steps=20, loss_fn=loss_fn)
            assert "bad-init" not in codes(doctor), (model, zero_output)
            assert problems(doctor) == []


def test_default_init_on_784_inputs_with_a_summed_loss_is_silent() -> None:
    """A summed cross-entropy starts at batch_size * ln C: not a bad start, whatever the doctor is told."""
    torch.manual_seed(0)
    X, y = pixels()
    model = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    g = generator(1)
    with watch(model, optimizer, mode="quiet") as doctor:
        for _ in range(12):
            index = torch.randint(0, len(X), (64,), generator=g)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(X[index]), y[index], reduction="sum")
            loss.backward()
            optimizer.step()
            doctor.record(loss, target=y[index])
    assert doctor.obs.losses[0] > 3 * math.log(10) + 1  # what a mean-loss check alone would call huge
    assert "bad-init" not in codes(doctor)


# ----------------------------------------------------------------------------- eval-mode-missing


def dropout_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 4))


def batchnorm_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(8 * 4 * 4, 4))  # fmt: skip


def epochs_with_validation(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: tuple[torch.Tensor, torch.Tensor],
    *,
    epochs: int = 5,
    call_eval: bool = True,
    call_train: str = "every epoch",
    no_grad: bool = True,
) -> Doctor:
    """A tutorial's epoch loop with a validation pass after each epoch."""
    X, y = data
    n_val = len(X) // 4
    X_val, y_val, X_train, y_train = X[:n_val], y[:n_val], X[n_val:], y[n_val:]
    g = generator(1)
    with watch(model, optimizer, loss_fn=nn.CrossEntropyLoss(), mode="quiet") as doctor:
        if call_train == "once":
            model.train()
        for _ in range(epochs):
            if call_train == "every epoch":
                model.train()
            order = torch.randperm(len(X_train), generator=g)
            for start in range(0, len(X_train), 32):
                index = order[start : start + 32]
                optimizer.zero_grad()
                loss = F.cross_entropy(model(X_train[index]), y_train[index])
                loss.backward()
                optimizer.step()
                doctor.record(loss, target=y_train[index])
            if call_eval:
                model.eval()
            if no_grad:
                with torch.no_grad():
                    val_loss = F.cross_entropy(model(X_val), y_val).item()
            else:
                val_loss = F.cross_entropy(model(X_val), y_val).item()
            doctor.record(val_loss=val_loss)
    return doctor


@pytest.mark.parametrize(
    ("make_model", "data", "make_optimizer"),
    [
        (dropout_mlp, blobs, lambda p: torch.optim.SGD(p, lr=0.05)),
        (batchnorm_cnn, images, lambda p: torch.optim.Adam(p, lr=1e-3)),
    ],
    ids=["dropout MLP, SGD", "batchnorm CNN, Adam"],
)
def test_validation_without_model_eval_is_eval_mode_missing(
    make_model: ModelFactory, data: DataFactory, make_optimizer: OptimizerFactory
) -> None:
    torch.manual_seed(0)
    model = make_model()
    doctor = epochs_with_validation(model, make_optimizer(model.parameters()), data(), call_eval=False)
    assert codes(doctor) & MY_CODES == {"eval-mode-missing"}
    found = of(doctor, "eval-mode-missing")
    assert set(found) == {"validation"}
    assert found["validation"].severity == "warning"
    assert found["validation"].evidence == {"forwards": 5}  # every one of the 5 validation passes
    assert "model.eval()" in found["validation"].suggestion


@pytest.mark.parametrize(
    ("make_model", "data", "make_optimizer"),
    [
        (batchnorm_cnn, images, lambda p: torch.optim.Adam(p, lr=1e-3)),
        (dropout_mlp, blobs, lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    ],
    ids=["batchnorm CNN, Adam", "dropout MLP, SGD momentum"],
)
def test_model_train_not_called_again_after_validation_is_eval_mode_missing(
    make_model: ModelFactory, data: DataFactory, make_optimizer: OptimizerFactory
) -> None:
    torch.manual_seed(0)
    model = make_model()
    doctor = epochs_with_validation(model, make_optimizer(model.parameters()), data(), call_train="once")
    assert codes(doctor) & MY_CODES == {"eval-mode-missing"}
    found = of(doctor, "eval-mode-missing")
    assert set(found) == {"training"}
    assert found["training"].evidence["steps_in_eval_mode"] >= 3
    # raised in the second epoch, at the third sampled step after the first validation
    steps_per_epoch = math.ceil(0.75 * len(data()[0]) / 32)
    step = found["training"].step
    assert step is not None and steps_per_epoch < step <= 3 * steps_per_epoch
    assert "model.train()" in found["training"].suggestion


@pytest.mark.parametrize("no_grad", [True, False], ids=["under no_grad", "eval() without no_grad"])
@pytest.mark.parametrize("make_model", [dropout_mlp, batchnorm_cnn], ids=["dropout", "batchnorm"])
def test_proper_eval_and_train_switching_is_silent(make_model: ModelFactory, no_grad: bool) -> None:
    torch.manual_seed(0)
    model = make_model()
    data = blobs() if make_model is dropout_mlp else images()
    doctor = epochs_with_validation(model, torch.optim.Adam(model.parameters(), lr=1e-3), data, no_grad=no_grad)
    assert "eval-mode-missing" not in codes(doctor)


def test_skipping_eval_on_a_net_without_dropout_or_batchnorm_is_silent() -> None:
    torch.manual_seed(0)
    model = Net()
    doctor = epochs_with_validation(model, torch.optim.SGD(model.parameters(), lr=0.05), blobs(), call_eval=False,
                                    call_train="once")  # fmt: skip
    assert "eval-mode-missing" not in codes(doctor)
