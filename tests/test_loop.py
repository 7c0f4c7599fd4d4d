"""fit / evaluate / predict: the loop's contract, its hooks and its numbers."""

import functools
import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import trainwise
from tests.host_reads import HostReads
from trainwise.callbacks import Callback
from trainwise.errors import ConfigError
from trainwise.loop import FitResult, backward_and_step, evaluate, predict
from trainwise.runs import RunIndex

# Every fit here trains on the CPU, on any machine: "auto" would pick a GPU, and the tests compare the
# model and its outputs with CPU tensors. A test that passes device= itself still decides.
fit = functools.partial(trainwise.fit, device="cpu")

T_U = [35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4]
T_C = [0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0]


def classification_data(n: int = 90, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    X = torch.randn(n, 4, generator=generator) + y.unsqueeze(1).float()
    return X, y


class Recorder(Callback):
    """Writes down every hook call."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.batch_losses: list[float] = []
        self.batch_sizes: list[int] = []

    def on_train_begin(self, logs: dict[str, Any]) -> None:
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any]) -> None:
        self.calls.append(f"epoch_begin {epoch}")

    def on_batch_begin(self, batch: int, logs: dict[str, Any]) -> None:
        self.calls.append(f"batch_begin {batch}")

    def on_before_step(self, batch: int, logs: dict[str, Any]) -> None:
        self.calls.append(f"before_step {batch}")

    def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
        self.calls.append(f"batch_end {batch}")
        self.batch_losses.append(float(logs["loss"]))
        self.batch_sizes.append(int(logs["size"]))

    def on_validation_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self.calls.append(f"validation_end {epoch}")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self.calls.append(f"epoch_end {epoch}")

    def on_train_end(self, logs: dict[str, Any]) -> None:
        self.calls.append(f"train_end {logs['status']}")


def test_hooks_fire_in_the_documented_order() -> None:
    X, y = classification_data(6)
    recorder = Recorder()
    fit(nn.Linear(4, 3), (X, y), loss="cross_entropy", lr=0.1, epochs=2, batch_size=4,
        val_data=(X, y), callbacks=[recorder], progress=False)  # fmt: skip
    per_epoch = lambda e: [  # noqa: E731
        f"epoch_begin {e}",
        "batch_begin 0", "before_step 0", "batch_end 0",
        "batch_begin 1", "before_step 1", "batch_end 1",
        f"validation_end {e}", f"epoch_end {e}",
    ]  # fmt: skip
    assert recorder.calls == ["train_begin", *per_epoch(0), *per_epoch(1), "train_end completed"]


def test_epoch_loss_is_the_sample_weighted_mean_of_batch_losses() -> None:
    X, y = classification_data(10)
    recorder = Recorder()
    result = fit(nn.Linear(4, 3), (X, y), loss="cross_entropy", lr=0.1, epochs=1, batch_size=4,
                 callbacks=[recorder], progress=False)  # fmt: skip
    assert recorder.batch_sizes == [4, 4, 2]
    expected = sum(loss * n for loss, n in zip(recorder.batch_losses, recorder.batch_sizes, strict=True)) / 10
    assert result.history["loss"][0] == pytest.approx(expected, rel=1e-6)


def test_sum_reduction_epoch_loss_is_the_total() -> None:
    X, y = torch.randn(10, 2), torch.randn(10, 1)
    recorder = Recorder()
    result = fit(nn.Linear(2, 1), (X, y), loss=nn.MSELoss(reduction="sum"), lr=1e-3, epochs=1, batch_size=3,
                 callbacks=[recorder], progress=False)  # fmt: skip
    assert result.history["loss"][0] == pytest.approx(sum(recorder.batch_losses), rel=1e-6)


def test_full_batch_w1_from_numpy_vectors() -> None:
    model = nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.fill_(0.0)
    result = fit(model, (np.array(T_U), np.array(T_C)[:, None]), loss="mse", lr=1e-2, epochs=5000,
                 normalize=0.1, progress=False)  # fmt: skip
    assert isinstance(result, FitResult)
    assert result.history["loss"][0] == pytest.approx(80.3643, abs=1e-3)
    assert result.history["loss"][-1] == pytest.approx(2.927647, abs=1e-4)
    assert set(result.history) == {"loss", "lr", "epoch_seconds"}
    assert result.history["lr"] == [0.01] * 5000
    assert result.epochs == 5000 and result.status == "completed" and result.findings == []
    # predict applies the same scaling: w * 0.1 * t_u + b
    prediction = result.predict([50.0]).item()
    assert prediction == pytest.approx(model.weight.item() * 5.0 + model.bias.item(), rel=1e-5)
    assert predict(model, [[5.0]]).item() == pytest.approx(prediction, rel=1e-5)


def test_metrics_and_validation_and_best_epoch() -> None:
    X, y = classification_data(120)
    result = fit(nn.Linear(4, 3), (X, y), loss="cross_entropy", optimizer="adam", lr=0.05, epochs=15,
                 batch_size=16, val_split=0.25, stratify=True, metrics=["accuracy", "top2_accuracy"],
                 progress=False)  # fmt: skip
    history = result.history
    for key in ("loss", "val_loss", "accuracy", "val_accuracy", "top2_accuracy", "val_top2_accuracy"):
        assert len(history[key]) == 15
    assert 0.5 < history["val_accuracy"][-1] <= 1.0
    assert all(t >= a for t, a in zip(history["top2_accuracy"], history["accuracy"], strict=True))
    best = int(result.best["epoch"])
    assert result.best["val_loss"] == min(history["val_loss"]) == history["val_loss"][best - 1]


def test_evaluate_is_exact_over_batches_and_restores_train_mode() -> None:
    X, y = classification_data(50)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    model.train()
    whole = evaluate(model, (X, y), loss="cross_entropy", metrics=["accuracy"])
    batched = evaluate(model, (X, y), loss="cross_entropy", metrics=["accuracy"], batch_size=7)
    assert model.training
    with torch.no_grad():
        model.eval()
        logits = model(X)
    assert whole["loss"] == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-6)
    assert batched["loss"] == pytest.approx(whole["loss"], rel=1e-6)
    assert whole["accuracy"] == batched["accuracy"] == (logits.argmax(1) == y).sum().item() / 50


def test_same_seed_same_run_other_seed_other_shuffle() -> None:
    X, y = classification_data(64)

    def history(seed: int) -> list[float]:
        torch.manual_seed(0)
        model = nn.Linear(4, 3)
        return fit(model, (X, y), loss="cross_entropy", lr=0.1, epochs=3, batch_size=8, seed=seed,
                   progress=False).history["loss"]  # fmt: skip

    assert history(1) == history(1)
    assert history(1) != history(2)


def test_torch_dataset_and_dataloader_inputs() -> None:
    X, y = classification_data(40)
    torch.manual_seed(0)
    from_dataset = fit(nn.Linear(4, 3), TensorDataset(X, y), loss="cross_entropy", lr=0.1, epochs=2,
                       batch_size=40, shuffle=False, val_split=0.0, progress=False)  # fmt: skip
    torch.manual_seed(0)
    from_tensors = fit(nn.Linear(4, 3), (X, y), loss="cross_entropy", lr=0.1, epochs=2, progress=False)
    assert from_dataset.history["loss"] == pytest.approx(from_tensors.history["loss"], rel=1e-6)
    loader = DataLoader(TensorDataset(X, y), batch_size=8)
    result = fit(nn.Linear(4, 3), loader, loss="cross_entropy", lr=0.1, epochs=2, val_data=(X, y), progress=False)
    assert len(result.history["val_loss"]) == 2


def test_builtin_dataset_by_name() -> None:
    result = fit(nn.Linear(1, 1), "temperature", loss="mse", lr=1e-2, epochs=10, normalize="standard",
                 progress=False)  # fmt: skip
    assert result.transform is not None and result.transform.method == "standard"
    assert result.history["loss"][-1] < result.history["loss"][0]


def test_optimizer_instance_and_kwargs() -> None:
    X, y = classification_data(30)
    model = nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    assert fit(model, (X, y), loss="cross_entropy", optimizer=opt, epochs=1, progress=False).history["lr"] == [0.2]
    result = fit(nn.Linear(4, 3), (X, y), loss="cross_entropy", optimizer="SGD", lr=0.1, momentum=0.9,
                 nesterov=True, epochs=1, progress=False)  # fmt: skip
    assert result.history["lr"] == [0.1]


def test_stop_flag_ends_training_after_the_epoch() -> None:
    class StopAtTwo(Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
            if epoch == 1:
                self.state.stop_training = True

    X, y = classification_data(20)
    result = fit(nn.Linear(4, 3), (X, y), loss="cross_entropy", lr=0.1, epochs=10, callbacks=[StopAtTwo()],
                 progress=False)  # fmt: skip
    assert result.epochs == 2 and result.status == "stopped"


def test_interrupt_returns_the_model_and_errors_are_reraised_after_train_end() -> None:
    class Raise(Callback):
        def __init__(self, error: BaseException) -> None:
            self.error = error

        def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
            if self.state.step == 3:
                raise self.error

    X, y = classification_data(20)
    interrupted = fit(nn.Linear(4, 3), (X, y), loss="cross_entropy", lr=0.1, epochs=5, batch_size=5,
                      callbacks=[Raise(KeyboardInterrupt())], progress=False)  # fmt: skip
    assert interrupted.status == "interrupted" and interrupted.epochs == 0
    recorder = Recorder()
    with pytest.raises(RuntimeError, match="boom"):
        fit(nn.Linear(4, 3), (X, y), loss="cross_entropy", lr=0.1, epochs=5, batch_size=5,
            callbacks=[recorder, Raise(RuntimeError("boom"))], progress=False)  # fmt: skip
    assert recorder.calls[-1] == "train_end failed"


def test_bad_arguments_are_config_errors() -> None:
    X, y = classification_data(10)
    with pytest.raises(ConfigError, match="lr"):
        fit(nn.Linear(4, 3), (X, y), loss="cross_entropy", epochs=1)
    with pytest.raises(ConfigError, match="epochs"):
        fit(nn.Linear(4, 3), (X, y), loss="cross_entropy", lr=0.1, epochs=0)
    with pytest.raises(ConfigError, match="batch_size"):
        fit(nn.Linear(4, 3), (X, y), loss="cross_entropy", lr=0.1, batch_size=0)
    with pytest.raises(ConfigError, match="unknown optimizer 'sgdd'"):
        fit(nn.Linear(4, 3), (X, y), loss="cross_entropy", optimizer="sgdd", lr=0.1)


def test_run_dir_writes_a_record_and_an_index_row(tmp_path: Any) -> None:
    X, y = torch.tensor(T_U).unsqueeze(1), torch.tensor(T_C).unsqueeze(1)
    result = fit(nn.Linear(1, 1), (X, y), loss="mse", lr=1e-2, epochs=20, normalize=0.1, run_dir=tmp_path,
                 run_name="w1 api", progress=False)  # fmt: skip
    assert result.run is not None and result.run.parent == tmp_path and result.run.name.endswith("-w1-api")
    files = {p.name for p in result.run.iterdir()}
    assert {"metrics.csv", "model.safetensors", "summary.json", "loss-curve.png", "fit.png", "transform.json"} <= files
    rows = (result.run / "metrics.csv").read_text().splitlines()
    assert rows[0] == "epoch,loss,lr,epoch_seconds" and len(rows) == 21
    assert float(rows[-1].split(",")[1]) == pytest.approx(result.history["loss"][-1])
    [row] = RunIndex(tmp_path).list()
    assert row.status == "completed" and row.metrics["loss"] == pytest.approx(result.history["loss"][-1])


def test_fit_result_displays_itself() -> None:
    X, y = classification_data(20)
    result = fit(nn.Linear(4, 3), (X, y), loss="cross_entropy", lr=0.1, epochs=3, metrics=["accuracy"],
                 progress=False)  # fmt: skip
    html = result._repr_html_()
    assert "<table>" in html and "accuracy" in html and f"{result.history['loss'][-1]:.6g}" in html
    from rich.console import Console

    console = Console(record=True, width=100)
    console.print(result)
    text = console.export_text()
    assert "accuracy" in text and "3 epochs" in text
    assert result.summary()["final"]["loss"] == result.history["loss"][-1]


def test_nonfinite_loss_is_recorded_not_hidden() -> None:
    X, y = torch.tensor(T_U).unsqueeze(1), torch.tensor(T_C).unsqueeze(1)
    result = fit(nn.Linear(1, 1), (X, y), loss="mse", lr=1e-2, epochs=100, progress=False)
    assert not math.isfinite(result.history["loss"][-1])
    assert math.isfinite(result.best["loss"])


# ----------------------------------------------------------------------------- the fast path's options


def _small_fit(**kwargs: Any) -> FitResult:
    X, y = classification_data(96)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    options: dict[str, Any] = {
        "loss": "cross_entropy", "lr": 0.2, "epochs": 6, "batch_size": 16, "progress": False, "device": "cpu",
    }  # fmt: skip
    return fit(model, (X, y), **{**options, **kwargs})


@functools.cache
def _cpp_compiler_problem() -> str | None:
    """Why torch.compile cannot build code here, or None. On the CPU its backend (inductor) compiles C++ with
    the system compiler (config.cpp.cxx, else g++); without one that works, the first compiled call fails."""
    import subprocess
    import tempfile

    from torch._inductor import cpp_builder

    try:
        compiler = cpp_builder.get_cpp_compiler()
    except Exception as exc:
        return f"torch.compile needs a C++ compiler and finds none here ({type(exc).__name__})"
    with tempfile.TemporaryDirectory() as folder:
        command = [compiler, "-x", "c++", "-shared", "-fPIC", "-o", f"{folder}/probe.so", "-"]
        try:
            built = subprocess.run(command, input="int probe() { return 0; }", capture_output=True, text=True)
        except OSError as exc:
            return f"torch.compile's C++ compiler {compiler!r} does not run here ({exc})"
    if built.returncode != 0:
        reason = (built.stderr.strip().splitlines() or ["no message"])[0]
        return f"torch.compile's C++ compiler {compiler!r} cannot build a shared library here ({reason})"
    return None


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compile_gives_the_eager_loss_curve() -> None:
    problem = _cpp_compiler_problem()
    if problem is not None:
        pytest.skip(problem)
    torch._dynamo.reset()
    try:
        compiled = _small_fit(compile=True)
    except ConfigError as exc:
        if "torch.compile cannot run here" in str(exc):
            pytest.skip(str(exc))
        raise
    finally:
        torch._dynamo.reset()
    eager = _small_fit()
    assert compiled.history["loss"] == pytest.approx(eager.history["loss"], rel=1e-4)
    assert compiled.status == "completed" and compiled.history["loss"][-1] < compiled.history["loss"][0]


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compile_without_a_working_compiler_is_one_config_error() -> None:
    import torch._inductor.config as inductor_config

    torch._dynamo.reset()
    try:
        no_compiler = inductor_config.patch({"cpp.cxx": ("trainwise-no-such-compiler",), "fx_graph_cache": False})
        expected = r"^compile: torch.compile cannot run here \(.*\); set compile = false$"
        with no_compiler, pytest.raises(ConfigError, match=expected):
            _small_fit(compile=True, doctor="off", epochs=1)
    finally:
        torch._dynamo.reset()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_the_cpu_trains(precision: str) -> None:
    result = _small_fit(precision=precision)
    full = _small_fit()
    losses = result.history["loss"]
    assert result.status == "completed" and all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.8 * losses[0]
    assert losses == pytest.approx(full.history["loss"], rel=0.05)  # the same run, to low precision


def test_fp16_keeps_its_gradient_scaler_state_for_checkpoints() -> None:
    from trainwise.callbacks import MixedPrecision

    amp = MixedPrecision("fp16", torch.device("cpu"), nn.Linear(2, 1))
    assert amp.scaler is not None and amp.dtype == torch.float16
    saved = amp.state_dict()
    assert saved is not None and saved["scale"] == 65536.0
    other = MixedPrecision("fp16", torch.device("cpu"), nn.Linear(2, 1))
    other.load_state_dict({**saved, "scale": 1024.0})
    assert other.scaler is not None and other.scaler.get_scale() == 1024.0
    assert MixedPrecision("bf16", torch.device("cpu"), nn.Linear(2, 1)).state_dict() is None


def test_precision_and_compile_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"^precision: 'fp32' is not allowed; use '32', 'bf16', 'fp16'$"):
        _small_fit(precision="fp32")
    with pytest.raises(ConfigError, match=r"^compile: must be true or false"):
        _small_fit(compile="yes")


def test_an_optimizer_with_its_own_zero_grad_keeps_it() -> None:
    class Counting(torch.optim.SGD):
        calls = 0

        def zero_grad(self, set_to_none: bool = True) -> None:
            Counting.calls += 1
            super().zero_grad(set_to_none)

    X, y = classification_data(20)
    model = nn.Linear(4, 3)
    fit(model, (X, y), loss="cross_entropy", optimizer=Counting(model.parameters(), lr=0.1), epochs=2, batch_size=10,
        progress=False)  # fmt: skip
    assert Counting.calls == 4


def test_full_batch_epoch_loss_is_the_step_loss_exactly() -> None:
    X, y = torch.tensor(T_U).unsqueeze(1) * 0.1, torch.tensor(T_C).unsqueeze(1)
    recorder = Recorder()
    result = fit(nn.Linear(1, 1), (X, y), loss="mse", lr=1e-2, epochs=3, callbacks=[recorder], progress=False)
    assert result.history["loss"] == recorder.batch_losses


def test_a_step_of_ones_own_replaces_train_step_and_keeps_clipping() -> None:
    """fit(step=...): an L1 penalty on the weights, ending with backward_and_step, gives a hand-written loop's
    updates with the same penalty and gradient clipping, and its loss is what the epochs report."""

    def penalized_step(state: Any, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        xb, yb = batch
        output = state.network(xb)
        loss = state.loss_fn(output, yb) + 0.01 * state.model.weight.abs().sum()
        backward_and_step(state, loss)
        for metric in state.metrics:
            metric.update(output, yb)
        return loss.detach()

    X, y = classification_data(40)
    torch.manual_seed(0)
    model, twin = nn.Linear(4, 3), nn.Linear(4, 3)
    twin.load_state_dict(model.state_dict())
    result = fit(model, (X, y), loss="cross_entropy", lr=0.1, epochs=2, batch_size=10, shuffle=False,
                 clip_grad_norm=0.5, metrics=["accuracy"], step=penalized_step, progress=False)  # fmt: skip
    optimizer = torch.optim.SGD(twin.parameters(), lr=0.1)
    epoch_losses = []
    for _ in range(2):
        total = 0.0
        for start in range(0, 40, 10):
            xb, yb = X[start : start + 10], y[start : start + 10]
            loss = nn.functional.cross_entropy(twin(xb), yb) + 0.01 * twin.weight.abs().sum()
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(twin.parameters(), 0.5)
            optimizer.step()
            total += loss.item() * 10
        epoch_losses.append(total / 40)
    assert torch.allclose(model.weight, twin.weight, atol=1e-6) and torch.allclose(model.bias, twin.bias, atol=1e-6)
    assert result.history["loss"] == pytest.approx(epoch_losses, rel=1e-5)
    assert 0 < result.history["accuracy"][-1] <= 1


def test_train_step_is_the_default_step_and_public() -> None:
    X, y = classification_data(40)
    runs = []
    for step in (None, trainwise.train_step):
        torch.manual_seed(0)
        model = nn.Linear(4, 3)
        fit(model, (X, y), loss="cross_entropy", lr=0.1, epochs=2, batch_size=10, step=step, progress=False)
        runs.append(model.weight.detach().clone())
    assert torch.equal(runs[0], runs[1])


def test_fit_puts_the_callers_global_random_state_back() -> None:
    """fit seeds torch's generator for its own run (dropout draws from it) and leaves the caller's as it was."""
    import random

    X, y = classification_data(40)
    models = [nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.5), nn.Linear(16, 3)) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())

    def reseed() -> None:
        torch.manual_seed(123)
        np.random.seed(5)
        random.seed(7)

    reseed()
    expected = (torch.rand(3).tolist(), np.random.rand(2).tolist(), random.random())
    reseed()
    runs = [
        fit(model, (X, y), loss="cross_entropy", lr=0.1, epochs=2, batch_size=10, progress=False) for model in models
    ]
    assert (torch.rand(3).tolist(), np.random.rand(2).tolist(), random.random()) == expected
    assert runs[0].history["loss"] == runs[1].history["loss"]  # the same seed, the same dropout masks


def test_max_steps_ends_training_mid_epoch_and_that_epoch_is_validated_and_logged() -> None:
    X, y = classification_data(50)
    recorder = Recorder()
    result = fit(nn.Linear(4, 3), (X, y), loss="cross_entropy", lr=0.1, epochs=5, max_steps=6, batch_size=10,
                 val_split=0.2, callbacks=[recorder], progress=False)  # fmt: skip
    # 40 training rows: 4 steps an epoch, so the second epoch ends after its second step
    assert result.status == "completed" and result.epochs == 2 and len(result.history["val_loss"]) == 2
    assert recorder.calls.count("epoch_end 1") == 1 and recorder.calls[-3:] == [
        "validation_end 1", "epoch_end 1", "train_end completed"
    ]  # fmt: skip
    assert len(recorder.batch_losses) == 6
    assert result.history["loss"][1] == pytest.approx(sum(recorder.batch_losses[4:]) / 2, rel=1e-6)
    with pytest.raises(ConfigError, match=r"^max_steps: must be at least 1"):
        fit(nn.Linear(4, 3), (X, y), loss="cross_entropy", lr=0.1, max_steps=0, progress=False)


# ----------------------------------------------------------------------------- gradient accumulation


def _mlp_weights(batch_size: int, accumulate: int, optimizer: str, loss: Any = "mse", **kw: Any) -> Any:
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(100, 5, generator=generator)
    y = X @ torch.randn(5, 1, generator=generator)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))
    result = fit(model, (X, y), loss=loss, optimizer=optimizer, lr=0.01, epochs=3, batch_size=batch_size,
                 accumulate=accumulate, progress=False, **kw)  # fmt: skip
    return result, torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("loss", ["mse", nn.MSELoss(reduction="sum")])
def test_accumulated_batches_take_the_steps_of_the_big_batch(optimizer: str, loss: Any) -> None:
    # 100 samples: batches of 8 in groups of 4 (the last group one batch of 4) against batches of 32, 32, 32, 4
    small, small_weights = _mlp_weights(8, 4, optimizer, loss, scheduler="onecycle")
    big, big_weights = _mlp_weights(32, 1, optimizer, loss, scheduler="onecycle")
    assert torch.allclose(small_weights, big_weights, atol=1e-6)
    assert small.history["loss"] == pytest.approx(big.history["loss"], rel=1e-5)
    assert small.history["lr"] == pytest.approx(big.history["lr"], rel=1e-9)  # the schedule counts steps
    # the doctor sees no forgotten zero_grad in it (a summed loss gets its info note on the batch size)
    assert (
        [f for f in small.findings if f.severity != "info"] == [f for f in big.findings if f.severity != "info"] == []
    )


def test_accumulation_counts_optimizer_steps_and_stops_at_a_group_end() -> None:
    steps: list[tuple[int, int, bool]] = []

    losses: list[tuple[float, float]] = []

    class Steps(Callback):
        def on_before_step(self, batch: int, logs: dict[str, Any]) -> None:
            losses.append((float(logs["loss"].detach()), math.nan))

        def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
            steps.append((batch, self.state.step, self.state.stepped))
            if self.state.stepped:
                losses[-1] = (losses[-1][0], float(logs["loss"]))

    X, y = classification_data(90)
    fit(nn.Linear(4, 3), (X, y), loss="cross_entropy", lr=0.1, epochs=5, batch_size=20, accumulate=2,
        max_steps=5, callbacks=[Steps()], progress=False)  # fmt: skip
    # 5 batches an epoch: steps after batches 1, 3 and 4 (the leftover); the 5th step ends the second epoch
    assert steps == [(0, 0, False), (1, 1, True), (2, 1, False), (3, 2, True), (4, 3, True),
                     (0, 3, False), (1, 4, True), (2, 4, False), (3, 5, True)]  # fmt: skip
    # on_before_step sees the batch's own loss, not the one scaled to add the group's gradients up
    assert len(losses) == 5 and all(before == after for before, after in losses)
    with pytest.raises(ConfigError, match=r"^accumulate: must be a whole number of batches, at least 1, got 0$"):
        fit(nn.Linear(4, 3), (X, y), loss="cross_entropy", lr=0.1, accumulate=0)


# ----------------------------------------------------------------------------- batches that are not (x, y)

_G = torch.Generator().manual_seed(5)
_X = torch.randn(64, 4, generator=_G)
_Y = (_X @ torch.randn(4, 3, generator=_G)).argmax(1)


class _Items(torch.utils.data.Dataset):
    """The same samples as TensorDataset(_X, _Y), as dicts or as (x[:2], x[2:], y) triples."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __len__(self) -> int:
        return len(_X)

    def __getitem__(self, i: int) -> Any:
        if self.kind == "dict":
            return {"features": _X[i], "labels": _Y[i]}
        return _X[i, :2], _X[i, 2:], _Y[i]


class _ByName(nn.Linear):
    def __init__(self) -> None:
        super().__init__(4, 3)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(features)


class _TwoInputs(nn.Linear):
    def __init__(self) -> None:
        super().__init__(4, 3)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(torch.cat([a, b], 1))


class _NanoGPTStyle(nn.Linear):
    """logits, loss = model(x, targets), as nanoGPT's GPT.forward."""

    def __init__(self) -> None:
        super().__init__(4, 3)

    def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None) -> Any:  # type: ignore[override]
        logits = super().forward(x)
        return logits, None if targets is None else nn.functional.cross_entropy(logits, targets)


class _HuggingFaceStyle(nn.Linear):
    """model(**batch) -> {"loss", "logits"}, as a transformers model given labels."""

    def __init__(self) -> None:
        super().__init__(4, 3)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> Any:  # type: ignore[override]
        logits = super().forward(features)
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


def _trained(model: nn.Module, data: Any, loss: Any) -> tuple[torch.Tensor, dict[str, list[float]]]:
    torch.manual_seed(0)
    model.reset_parameters()  # type: ignore[operator]
    result = fit(model, data, loss=loss, lr=0.5, epochs=3, batch_size=16, val_split=0.25, metrics=["accuracy"],
                 progress=False)  # fmt: skip
    assert result.findings == []
    return model.weight.detach().clone(), result.history


@pytest.mark.parametrize(
    ("model", "data", "loss"),
    [
        (_ByName(), _Items("dict"), "cross_entropy"),  # model(**inputs), the labels left out
        (_TwoInputs(), _Items("triples"), "cross_entropy"),  # model(*inputs)
        (_NanoGPTStyle(), TensorDataset(_X, _Y), None),  # logits, loss = model(x, y)
        (_HuggingFaceStyle(), _Items("dict"), None),  # model(**batch)["loss"], metrics on ["logits"]
        (_ByName(), "hugging face", "cross_entropy"),  # a datasets.Dataset, read in its torch format
    ],
    ids=["dict", "tuple", "nanogpt", "huggingface-model", "huggingface-dataset"],
)
def test_any_batch_structure_trains_as_the_pair_batches_do(model: nn.Module, data: Any, loss: Any) -> None:
    if data == "hugging face":
        import datasets

        data = datasets.Dataset.from_dict({"features": _X.tolist(), "labels": _Y.tolist()})
    expected_weights, expected = _trained(nn.Linear(4, 3), TensorDataset(_X, _Y), "cross_entropy")
    weights, history = _trained(model, data, loss)
    assert torch.allclose(weights, expected_weights, atol=1e-6)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert history[key] == pytest.approx(expected[key], rel=1e-5), key
    measured = evaluate(model, data, loss=loss, metrics=["accuracy"])
    assert measured == pytest.approx(evaluate(_as_linear(model), (_X, _Y), loss="cross_entropy", metrics=["accuracy"]),
                                     rel=1e-5)  # fmt: skip


def _as_linear(model: nn.Module) -> nn.Linear:
    linear = nn.Linear(4, 3)
    linear.load_state_dict(model.state_dict())
    return linear


def test_a_model_that_computes_no_loss_is_told_what_to_return() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^loss: with loss=None the model computes its loss and gets the target too, "
        r"but calling it so failed \(TypeError: Linear.forward\(\) takes 2 positional arguments",
    ):
        fit(nn.Linear(4, 3), (_X, _Y), loss=None, lr=0.1, progress=False)  # fmt: skip

    class LogitsOnly(nn.Linear):
        def forward(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
            return super().forward(x)

    with pytest.raises(ConfigError) as caught:
        fit(LogitsOnly(4, 3), (_X, _Y), loss=None, lr=0.1, progress=False)
    assert str(caught.value) == (
        "loss: with loss=None the model must compute the loss, but it returned a tensor of shape (64, 3); return "
        "(output, loss), an object with .loss or a dict with 'loss', or give fit a loss ('mse', ...)"
    )


# ----------------------------------------------------------------------------- validation every N epochs


def test_validation_every_n_epochs_and_the_last() -> None:
    from trainwise.callbacks import EarlyStopping
    from trainwise.plots import plot_history

    X, y = classification_data(90)
    validated: list[tuple[int, float]] = []

    class Validations(Callback):
        def on_validation_end(self, epoch: int, logs: dict[str, Any]) -> None:
            validated.append((epoch, float(logs["val_loss"])))

    model = nn.Linear(4, 3)
    result = fit(model, (X, y), loss="cross_entropy", lr=0.1, epochs=7, val_split=0.2, val_every=3,
                 metrics=["accuracy"], callbacks=[Validations()], progress=False)  # fmt: skip
    assert [epoch for epoch, _ in validated] == [2, 5, 6]
    for key in ("val_loss", "val_accuracy"):
        values = result.history[key]
        assert [math.isnan(v) for v in values] == [True, True, False, True, True, False, False]
    assert result.history["val_loss"][6] == validated[-1][1] and result.best["epoch"] in (3, 6, 7)
    figure = plot_history(result.history)
    (line,) = [line for line in figure.axes[0].lines if line.get_label() == "val_loss"]  # joined, not "non-finite"
    assert list(line.get_xdata()) == [3, 6, 7]
    # early stopping counts validated epochs only: patience 1 over validations every 2 epochs
    steady = EarlyStopping(patience=1, min_delta=10.0)  # no change is an improvement
    result = fit(nn.Linear(4, 3), (X, y), loss="cross_entropy", lr=0.1, epochs=9, val_split=0.2, val_every=2,
                 callbacks=[steady], progress=False)  # fmt: skip
    assert result.status == "stopped" and result.epochs == 4  # validated at 2 (the best) and 4 (no better): stop
    with pytest.raises(ConfigError, match=r"^val_every: must be a whole number of epochs, at least 1, got 0$"):
        fit(nn.Linear(4, 3), (X, y), loss="cross_entropy", lr=0.1, val_every=0)


def test_validation_every_n_steps_within_epochs(tmp_path: Any) -> None:
    import io

    from trainwise.callbacks import ProgressBar
    from trainwise.plots import plot_history
    from trainwise.run_report import read_validations

    X, y = classification_data(90)
    Xv, yv = classification_data(30, seed=1)
    batch_losses: list[float] = []
    seen: list[tuple[int, float]] = []  # (batch, epoch loss so far) at each validation within an epoch

    class Watch(Callback):
        def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
            batch_losses.append(float(logs["loss"]) * logs["size"])

        def on_validation_end(self, epoch: int, logs: dict[str, Any]) -> None:
            if "step" in logs:  # validated within the epoch: before this batch's on_batch_end
                seen.append((self.state.batch, logs["loss"]))

    def train(**options: Any) -> FitResult:
        torch.manual_seed(0)
        return fit(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), (X, y), loss="cross_entropy",
                   optimizer="adam", lr=0.05, epochs=2, batch_size=10, val_data=(Xv, yv), metrics=["accuracy"],
                   doctor="off", **options)  # fmt: skip

    shown = io.StringIO()
    result = train(val_every_steps=4, callbacks=[Watch(), ProgressBar(mode="plain", file=shown)], progress=False,
                   run_dir=tmp_path)  # fmt: skip
    plain = train(progress=False)
    # 9 batches an epoch: within it at steps 4 and 8, then the epoch's own validation (step 9)
    rows = result.validations
    assert rows["step"] == [4, 8, 9, 12, 16, 18]
    assert rows["epoch"] == pytest.approx([4 / 9, 8 / 9, 1, 1 + 3 / 9, 1 + 7 / 9, 2])
    # validating changes nothing of the training: the weights, the epochs' losses and metrics
    assert all(torch.equal(a, b) for a, b in zip(result.model.parameters(), plain.model.parameters(), strict=True))
    assert result.history == {**plain.history, "epoch_seconds": result.history["epoch_seconds"]}
    assert [rows["val_loss"][2], rows["val_loss"][5]] == result.history["val_loss"]
    assert [rows["accuracy"][2], rows["accuracy"][5]] == result.history["accuracy"]
    # the row at step 4 is the model after 4 steps: a run that stops there validates the same weights
    assert rows["val_loss"][0] == pytest.approx(train(max_steps=4, progress=False).history["val_loss"][-1], rel=1e-6)
    # each row's loss is the epoch's mean so far
    assert [batch for batch, _ in seen] == [4, 8, 3, 7]
    for (batch, loss), start in zip(seen, (0, 0, 9, 9), strict=True):
        assert loss == pytest.approx(sum(batch_losses[start : start + batch]) / (batch * 10), rel=1e-5)
    assert "step 4 (epoch 0.44): loss " in shown.getvalue() and "val_loss " in shown.getvalue()
    (run,) = [path for path in tmp_path.iterdir() if path.is_dir()]
    assert read_validations(run) == rows
    figure = plot_history(result.history, validations=rows)
    (line,) = [line for line in figure.axes[0].lines if line.get_label() == "val_loss"]
    assert list(line.get_xdata()) == pytest.approx(rows["epoch"]) and list(line.get_ydata()) == rows["val_loss"]
    assert train(progress=False).validations == {}  # without val_every_steps: the history alone
    with pytest.raises(ConfigError, match=r"^val_every_steps: must be a whole number of steps, at least 1, got 0$"):
        train(val_every_steps=0)


@pytest.mark.parametrize("metrics", [[], ["accuracy", "top2_accuracy"]])
def test_the_step_reads_nothing_from_the_device_with_the_doctor_off(metrics: list[str]) -> None:
    # an epoch of 25 steps and one of 50 make the same reads: none belongs to a step (on a GPU each would
    # stall the launch queue); the epoch's own reads stay few
    def reads(samples: int) -> int:
        X, y = classification_data(samples)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        with HostReads() as counter:
            fit(model, (X, y), loss="cross_entropy", lr=0.1, epochs=1, batch_size=4, metrics=metrics, doctor="off",
                progress=False)  # fmt: skip
        return counter.reads

    assert reads(100) == reads(200) <= 4
