"""The inputs family: the data as the model sees it. Each fault as tutorials and forum questions write it,
next to the healthy variant that must stay silent."""

from collections.abc import Callable, Iterator

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import trainwise
from tests.doctor.helpers import cpu_fit, found
from trainwise.doctor import Doctor, Finding, watch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """These models are tiny: one thread is fastest, and does not stall when other processes hold the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


INPUT_CODES = {"unscaled-inputs", "class-imbalance", "unshuffled-data", "train-val-overlap"}


def digits(n: int, seed: int = 0, size: int = 12, border: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST-like 1 x size x size images of raw 0..255 pixels: a black border, a bright class-specific stroke
    pattern in the middle, labels 0..9."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=generator)
    inner = size - 2 * border
    patterns = torch.zeros(10, size, size)
    patterns[:, border:-border, border:-border] = (torch.rand(10, inner, inner, generator=generator) > 0.5).float()
    brightness = torch.randint(120, 256, (n, size, size), generator=generator).float()
    return (patterns[y] * brightness).unsqueeze(1), y


def photos(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-like 3 x 8 x 8 photographs of raw 0..255 pixels (mean ~120 per channel), labels 0..4."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 5, (n,), generator=generator)
    tint = torch.rand(5, 3, 1, 1, generator=generator) * 80 - 40
    X = 120 + tint[y] + 50 * torch.randn(n, 3, 8, 8, generator=generator)
    return X.clamp(0, 255).round(), y


def houses(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A house-price table: square feet (~1500), bedrooms (~3), age in years (~30); price in $100k."""
    generator = torch.Generator().manual_seed(seed)
    sqft = 1500 + 500 * torch.randn(n, generator=generator)
    bedrooms = torch.randint(1, 6, (n,), generator=generator).float()
    age = 60 * torch.rand(n, generator=generator)
    price = 0.002 * sqft + 0.1 * bedrooms - 0.01 * age + 0.1 * torch.randn(n, generator=generator)
    return torch.stack([sqft, bedrooms, age], dim=1), price.unsqueeze(1)


def labelled(counts: list[int], features: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Exactly counts[k] samples of class k, in random order, in unit-scale features."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.full((count,), k) for k, count in enumerate(counts)])
    y = y[torch.randperm(len(y), generator=generator)]
    centers = torch.randn(len(counts), features, generator=generator)
    return centers[y] + torch.randn(len(y), features, generator=generator), y


def mlp(inputs: int, outputs: int) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(inputs, 32), nn.ReLU(), nn.Linear(32, outputs))


def cnn(channels: int, side: int, outputs: int) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(4 * (side // 2) ** 2, outputs),
    )  # fmt: skip


def loader(X: torch.Tensor, y: torch.Tensor, batch_size: int = 32, shuffle: bool = True) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    return DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=shuffle, generator=generator)


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batches: DataLoader,
    *,
    epochs: int = 1,
    steps: int | None = None,
    validate: Callable[[], float] | None = None,
) -> Doctor:
    """The usual hand-written loop, watched by the doctor; `validate` runs after each epoch."""
    with watch(model, optimizer, loss_fn=loss_fn, mode="quiet") as doctor:
        step = 0
        for _ in range(epochs):
            model.train()
            for xb, yb in batches:
                loss = loss_fn(model(xb), yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                doctor.record(loss, target=yb)
                step += 1
                if step == steps:
                    return doctor
            if validate is not None:
                model.eval()
                doctor.record(val_loss=validate())
    return doctor


def evaluate(model: nn.Module, loss_fn: Callable[..., torch.Tensor], batches: DataLoader) -> float:
    with torch.no_grad():
        return sum(float(loss_fn(model(xb), yb)) * len(yb) for xb, yb in batches) / len(batches.dataset)  # type: ignore[arg-type]


def fit(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], **kwargs: object) -> trainwise.loop.FitResult:
    options: dict[str, object] = {"loss": "cross_entropy", "optimizer": "sgd", "lr": 0.05, "batch_size": 32}
    options.update(kwargs)
    return cpu_fit(model, data, progress=False, device="cpu", doctor="quiet", **options)  # type: ignore[arg-type]


def input_codes(findings: list[Finding]) -> set[str]:
    return {f.code for f in findings} & INPUT_CODES


# ----------------------------------------------------------------------------- unscaled-inputs


def test_raw_0_255_pixels_into_a_cnn_with_sgd() -> None:
    X, y = digits(512)
    model = cnn(1, 12, 10)
    doctor = train(model, torch.optim.SGD(model.parameters(), lr=0.01), nn.CrossEntropyLoss(), loader(X, y), steps=5)
    finding = found(doctor.findings, "unscaled-inputs")
    assert finding.severity == "warning"
    assert finding.subject == "channel 0"
    assert finding.step == 0  # reported at the first step, before its symptom (a huge first loss)
    assert finding.evidence["rms"] > 20
    assert finding.evidence["mean"] == pytest.approx(float(X[:32].mean()), rel=0.3)
    assert "scale inputs by 0.1" in finding.suggestion  # RMS ~98 -> ~9.8


def test_raw_photos_with_adam() -> None:
    X, y = photos(256)
    model = cnn(3, 8, 5)
    doctor = train(model, torch.optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss(), loader(X, y), steps=3)
    finding = found(doctor.findings, "unscaled-inputs")
    rms = finding.evidence["rms"]
    assert rms > 100  # the adaptive optimizer's limit
    assert "scale inputs by 0.01" in finding.suggestion  # RMS ~130 -> ~1.3
    assert "With adam" not in finding.message  # adaptive optimizers do not scale steps with the inputs


def test_house_features_in_square_feet_with_fit_and_sgd() -> None:
    X, y = houses(400)
    result = fit(mlp(3, 1), (X, y), loss="mse", lr=1e-6, feature_names=["sqft", "bedrooms", "age"])
    finding = found(result.findings, "unscaled-inputs")
    assert finding.subject == "sqft"
    assert finding.evidence["rms"] == pytest.approx(float(X[:, 0].square().mean().sqrt()), rel=1e-4)
    assert finding.evidence["largest_to_median_rms"] > 20
    # features on different scales: one factor cannot fix them, so the fix is per-feature standardization
    assert "standardize each feature" in finding.suggestion
    assert "With sgd" in finding.message


def test_scaled_and_standardized_inputs_are_silent() -> None:
    X, y = digits(512)
    X = X / 255  # transforms.ToTensor()'s scaling
    flat = X.reshape(len(X), -1)  # images.view(images.shape[0], -1): 108 of 144 pixels are always black
    for model, inputs in ((cnn(1, 12, 10), X), (mlp(144, 10), flat)):
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        doctor = train(model, opt, nn.CrossEntropyLoss(), loader(inputs, y), steps=12)
        assert input_codes(doctor.findings) == set()
    X, y = houses(400)
    result = fit(mlp(3, 1), (X, y), loss="mse", lr=0.01, normalize="standard")
    assert input_codes(result.findings) == set()


# ----------------------------------------------------------------------------- class-imbalance


def test_a_95_5_split_in_fit() -> None:
    X, y = labelled([950, 50])  # e.g. fraud / not fraud
    result = fit(mlp(6, 2), (X, y), optimizer="adam", lr=1e-3, batch_size=64)
    finding = found(result.findings, "class-imbalance")
    assert finding.severity == "warning"
    assert finding.evidence["largest_to_smallest"] == pytest.approx(19.0)
    assert finding.evidence["rare_class"] == 1
    assert finding.evidence["rare_share"] == pytest.approx(0.05)
    assert "95% accuracy" in finding.message
    assert "19x" in finding.suggestion


def test_fraud_labels_as_bce_float_targets_in_fit() -> None:
    X, y = labelled([970, 30])
    targets = y.float().unsqueeze(1)  # 0./1. floats for BCEWithLogitsLoss
    result = fit(mlp(6, 1), (X, targets), loss="bce_with_logits", optimizer="adam", lr=1e-3)
    finding = found(result.findings, "class-imbalance")
    assert finding.evidence["largest_to_smallest"] == pytest.approx(970 / 30)
    assert finding.evidence["rare_share"] == pytest.approx(0.03)


def test_a_rare_third_class_in_a_shuffled_loader() -> None:
    X, y = labelled([1200, 300, 60])
    model = mlp(6, 3)
    doctor = train(model, torch.optim.SGD(model.parameters(), lr=0.05), nn.CrossEntropyLoss(), loader(X, y, 128))
    finding = found(doctor.findings, "class-imbalance")  # after 1000 labels, in the first epoch
    assert finding.evidence["rare_class"] == 2
    assert 12 < finding.evidence["largest_to_smallest"] < 35  # 20 in the whole set, estimated from the stream
    assert finding.evidence["classes"] == 3


def test_moderate_imbalance_is_silent() -> None:
    X, y = labelled([600, 400])
    assert input_codes(fit(mlp(6, 2), (X, y), optimizer="adam", lr=1e-3).findings) == set()
    X, y = labelled([750, 450, 300])
    model = mlp(6, 3)
    doctor = train(model, torch.optim.SGD(model.parameters(), lr=0.05), nn.CrossEntropyLoss(), loader(X, y, 128),
                   epochs=2)  # fmt: skip
    assert doctor.obs.labels_seen >= 1000  # enough labels were seen to judge the balance
    assert input_codes(doctor.findings) == set()


def test_a_count_target_that_is_mostly_zero_is_no_class() -> None:
    # visits per day: 0 or 1 on most days, regressed with MSE; its batches of only 0s and 1s are not classes
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(2048, 6, generator=generator)
    counts = torch.poisson(0.05 * torch.ones(2048, 1), generator=generator)
    model = mlp(6, 1)
    doctor = train(model, torch.optim.SGD(model.parameters(), lr=0.01), nn.MSELoss(), loader(X, counts, 128))
    assert input_codes(doctor.findings) == set()


# ----------------------------------------------------------------------------- unshuffled-data


def test_a_dataloader_over_data_sorted_by_label_without_shuffle() -> None:
    X, y = labelled([100] * 10)  # small classes: batches of 64 straddle two of them
    order = y.argsort(stable=True)
    model = mlp(6, 10)
    batches = loader(X[order], y[order], 64, shuffle=False)
    doctor = train(model, torch.optim.SGD(model.parameters(), lr=0.05), nn.CrossEntropyLoss(), batches, epochs=2)
    finding = found(doctor.findings, "unshuffled-data")
    assert finding.severity == "warning"
    assert finding.evidence["batches"] == 10
    # the classes seen so far (7 after 640 sorted labels) would nearly all be in each shuffled batch of 64
    assert finding.evidence["classes_per_batch"] < 2
    assert finding.evidence["shuffled_classes_per_batch"] > 3 * finding.evidence["classes_per_batch"]
    assert "shuffle=True" in finding.suggestion
    # the labels of sorted batches say nothing about the balance of the whole set
    assert not doctor.has("class-imbalance")


def test_fit_with_shuffle_off_on_sorted_two_class_data() -> None:
    X, y = labelled([300, 300])
    order = y.argsort(stable=True)
    result = fit(mlp(6, 2), (X[order], y[order]), shuffle=False, optimizer="adam", lr=1e-3)
    finding = found(result.findings, "unshuffled-data")
    assert finding.evidence["classes_per_batch"] == pytest.approx(1.1)  # batch 9 holds the end of class 0
    assert finding.evidence["shuffled_classes_per_batch"] == pytest.approx(2.0)


def test_cats_then_dogs_with_bce_and_no_shuffle() -> None:
    # an ImageFolder-style dataset lists one class folder after the other
    X, y = labelled([640, 640], features=12)
    order = y.argsort(stable=True)
    images, targets = X[order].reshape(-1, 3, 2, 2), y[order].float().unsqueeze(1)
    model = nn.Sequential(nn.Conv2d(3, 8, 2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 1))
    batches = loader(images, targets, 64, shuffle=False)
    doctor = train(model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), nn.BCEWithLogitsLoss(),
                   batches, steps=12)  # fmt: skip
    finding = found(doctor.findings, "unshuffled-data")
    assert finding.evidence["classes_per_batch"] == 1
    assert "grouped by label" in finding.message  # labels, not a sorted regression target


def test_regression_data_sorted_by_price() -> None:
    X, y = houses(640)
    X = (X - X.mean(0)) / X.std(0)
    order = y[:, 0].argsort()  # a table exported sorted by price
    model = mlp(3, 1)
    batches = loader(X[order], y[order], 32, shuffle=False)
    doctor = train(model, torch.optim.SGD(model.parameters(), lr=0.01), nn.MSELoss(), batches, steps=12)
    finding = found(doctor.findings, "unshuffled-data")
    assert "rises" in finding.message
    assert finding.evidence["batches"] == 10
    assert finding.evidence["first_mean"] < finding.evidence["last_mean"]


def test_shuffled_batches_are_silent_even_with_a_rare_class() -> None:
    X, y = labelled([100] * 10)
    model = mlp(6, 10)
    doctor = train(model, torch.optim.SGD(model.parameters(), lr=0.05), nn.CrossEntropyLoss(), loader(X, y, 64),
                   epochs=2)  # fmt: skip
    assert input_codes(doctor.findings) == set()
    # 0.4% positives: most shuffled batches of 32 hold one class anyway
    X, y = labelled([2490, 10])
    model = mlp(6, 2)
    doctor = train(model, torch.optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss(), loader(X, y, 32),
                   steps=40)  # fmt: skip
    assert not doctor.has("unshuffled-data")
    X, y = labelled([300, 300])
    order = y.argsort(stable=True)
    result = fit(mlp(6, 2), (X[order], y[order]), optimizer="adam", lr=1e-3)  # fit shuffles by default
    assert input_codes(result.findings) == set()


# ----------------------------------------------------------------------------- train-val-overlap


def test_validating_on_the_training_loader() -> None:
    X, y = labelled([300, 300])
    model = mlp(6, 2)
    loss_fn = nn.CrossEntropyLoss()
    train_batches = loader(X, y)
    doctor = train(model, torch.optim.SGD(model.parameters(), lr=0.05), loss_fn, train_batches, epochs=2,
                   validate=lambda: evaluate(model, loss_fn, loader(X, y, 128, shuffle=False)))  # fmt: skip
    finding = found(doctor.findings, "train-val-overlap")
    assert finding.severity == "warning"
    assert finding.evidence["shared"] == 600
    assert finding.evidence["validation_samples"] == 600
    assert finding.evidence["fraction"] == 1
    assert "random_split" in finding.suggestion


def test_fit_with_validation_rows_taken_from_the_training_set() -> None:
    X, y = labelled([300, 300, 300])
    result = fit(mlp(6, 3), (X, y), val_data=(X[:200], y[:200]))
    finding = found(result.findings, "train-val-overlap")
    assert finding.evidence["shared"] == 200
    assert finding.evidence["validation_samples"] == 200
    assert "val_split=0.2" in finding.suggestion


def test_half_of_the_validation_rows_leaked_from_training() -> None:
    X, y = labelled([500, 500])
    X_train, y_train = X[:800], y[:800]
    X_val, y_val = X[600:], y[600:]  # the split's boundaries overlap: rows 600..799 are in both
    model = mlp(6, 2)
    loss_fn = nn.CrossEntropyLoss()
    doctor = train(model, torch.optim.Adam(model.parameters(), lr=1e-3), loss_fn, loader(X_train, y_train), epochs=2,
                   validate=lambda: evaluate(model, loss_fn, loader(X_val, y_val, 64, shuffle=False)))  # fmt: skip
    finding = found(doctor.findings, "train-val-overlap")
    assert finding.evidence["shared"] == 200
    assert finding.evidence["validation_samples"] == 400


def test_a_disjoint_split_is_silent_also_next_to_a_training_accuracy_pass() -> None:
    X, y = labelled([300, 300, 300])
    assert input_codes(fit(mlp(6, 3), (X, y), val_split=0.2).findings) == set()

    train_set, val_set = torch.utils.data.random_split(
        TensorDataset(X, y), [700, 200], generator=torch.Generator().manual_seed(0)
    )
    train_batches = DataLoader(train_set, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    model = mlp(6, 3)
    loss_fn = nn.CrossEntropyLoss()

    def validate() -> float:
        # training accuracy over the whole training set, then the real validation
        evaluate(model, loss_fn, DataLoader(train_set, batch_size=100))
        return evaluate(model, loss_fn, DataLoader(val_set, batch_size=100))

    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with watch(model, opt, loss_fn=loss_fn, mode="quiet") as doctor:
        for _ in range(2):
            for xb, yb in train_batches:
                out = model(xb)
                loss = loss_fn(out, yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():  # the batch's accuracy, scored again without gradients
                    (model(xb).argmax(1) == yb).float().mean()
                doctor.record(loss, target=yb)
            doctor.record(val_loss=validate())
    assert input_codes(doctor.findings) == set()
