"""Built-in callbacks: early stopping, LR scheduling, gradient clipping, progress display."""

import functools
import io
import math
import time
from types import SimpleNamespace
from typing import Any

import IPython.display
import pytest
import torch
from rich.console import Console
from torch import nn

import trainwise
import trainwise.callbacks as callbacks_module
from trainwise.callbacks import (
    Callback,
    CallbackList,
    EarlyStopping,
    GradientClipping,
    LRScheduler,
    ProgressBar,
    best_epoch,
    scheduler_class,
)
from trainwise.errors import ConfigError

# Every fit here trains on the CPU, on any machine: "auto" would pick a GPU, and the tests compare the
# weights with snapshots and CPU-made expectations.
fit = functools.partial(trainwise.fit, device="cpu")


def data(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(n, 3, generator=generator)
    return X, X @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(n, 1, generator=generator)


class LossSequence(Callback):
    """Overwrites the logged val_loss with a scripted sequence, to drive early stopping exactly."""

    def __init__(self, values: list[float]) -> None:
        self.values = values

    def on_validation_end(self, epoch: int, logs: dict[str, Any]) -> None:
        logs["val_loss"] = self.values[epoch]


def test_early_stopping_waits_patience_epochs_and_restores_the_best_weights() -> None:
    X, y = data()
    snapshots: list[torch.Tensor] = []

    class Snapshot(Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
            snapshots.append(self.state.model.weight.detach().clone())

    stopper = EarlyStopping(patience=3)
    scripted = [5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 1.0, 0.5]
    model = nn.Linear(3, 1)
    result = fit(model, (X, y), loss="mse", lr=0.01, epochs=8, val_data=(X, y),
                 callbacks=[LossSequence(scripted), stopper, Snapshot()], progress=False)  # fmt: skip
    assert result.epochs == 6 and result.status == "stopped"  # best at epoch 3, then 3 without improvement
    assert stopper.best_epoch == 2 and stopper.stopped_epoch == 5
    assert torch.equal(model.weight, snapshots[2])


def test_early_stopping_monitors_accuracy_upwards() -> None:
    stopper = EarlyStopping(monitor="val_accuracy", patience=1)
    X, y = data()

    class Accuracy(Callback):
        def on_validation_end(self, epoch: int, logs: dict[str, Any]) -> None:
            logs["val_accuracy"] = [0.5, 0.7, 0.6, 0.9][epoch]

    result = fit(nn.Linear(3, 1), (X, y), loss="mse", lr=0.01, epochs=4, val_data=(X, y),
                 callbacks=[Accuracy(), stopper], progress=False)  # fmt: skip
    assert result.epochs == 3 and stopper.best_epoch == 1


def test_early_stopping_rejects_unknown_monitor_and_bad_patience() -> None:
    X, y = data()
    with pytest.raises(ConfigError, match="'val_acc' is not logged"):
        fit(nn.Linear(3, 1), (X, y), loss="mse", lr=0.01, epochs=2, callbacks=[EarlyStopping("val_acc")],
            progress=False)  # fmt: skip
    with pytest.raises(ConfigError, match="patience"):
        EarlyStopping(patience=0)


def lrs_of(scheduler: LRScheduler, epochs: int, batch_size: int | None = None) -> list[float]:
    X, y = data()
    return fit(nn.Linear(3, 1), (X, y), loss="mse", lr=0.1, epochs=epochs, batch_size=batch_size,
               callbacks=[scheduler], progress=False).history["lr"]  # fmt: skip


def test_lr_schedulers_follow_torch() -> None:
    # logs["lr"] is read after the epoch's scheduler step has not yet happened: epoch e trains at lr(e)
    assert lrs_of(LRScheduler("step", step_size=2, gamma=0.5), 5) == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    cosine = lrs_of(LRScheduler("cosine"), 4)
    assert cosine == pytest.approx([0.1, 0.1 * (1 + 0.7071068) / 2, 0.05, 0.1 * (1 - 0.7071068) / 2], rel=1e-5)
    one_cycle = LRScheduler("onecycle")
    lrs_of(one_cycle, 3, batch_size=16)
    assert one_cycle.interval == "step" and one_cycle.scheduler.total_steps == 12


class StepLRs(Callback):
    """The lr each batch trains at."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_batch_begin(self, batch: int, logs: dict[str, Any]) -> None:
        self.lrs.append(self.state.optimizer.param_groups[0]["lr"])


def test_warmup_cosine_is_a_linear_warmup_then_torchs_cosine() -> None:
    X, y = data(48)  # 3 batches of 16, 4 epochs: 12 steps
    seen = StepLRs()
    fit(nn.Linear(3, 1), (X, y), loss="mse", lr=0.1, epochs=4, batch_size=16, progress=False,
        callbacks=[LRScheduler("warmup_cosine", warmup_steps=4, min_lr=0.01), seen])  # fmt: skip
    warmup = [0.1 * (step + 1) / 4 for step in range(4)]
    cosine = [0.01 + 0.09 * (1 + math.cos(math.pi * step / 8)) / 2 for step in range(8)]
    assert seen.lrs == pytest.approx(warmup + cosine, rel=1e-6)
    # total_steps is filled from the run; max_steps shortens it
    short = StepLRs()
    fit(nn.Linear(3, 1), (X, y), loss="mse", lr=0.1, epochs=4, batch_size=16, max_steps=6, progress=False,
        callbacks=[LRScheduler("warmup_cosine", warmup_steps=2), short])  # fmt: skip
    assert short.lrs == pytest.approx([0.05, 0.1, *(0.05 * (1 + math.cos(math.pi * s / 4)) for s in range(4))])


def test_scheduler_objects_and_functions_of_the_optimizer() -> None:
    from torch.optim.lr_scheduler import LambdaLR, StepLR

    X, y = data()
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    result = fit(model, (X, y), loss="mse", optimizer=optimizer, epochs=3, scheduler=StepLR(optimizer, 1, 0.5),
                 progress=False)  # fmt: skip
    assert result.history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    # an optimizer fit makes from its name: a function of it gives the scheduler
    result = fit(nn.Linear(3, 1), (X, y), loss="mse", lr=0.1, epochs=3, progress=False,
                 scheduler=lambda opt: LambdaLR(opt, lambda epoch: 1 / (epoch + 1)))  # fmt: skip
    assert result.history["lr"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    other = torch.optim.SGD(nn.Linear(3, 1).parameters(), lr=0.1)
    with pytest.raises(ConfigError, match=r"^scheduler: this scheduler sets another optimizer's lr"):
        fit(nn.Linear(3, 1), (X, y), loss="mse", lr=0.1, scheduler=StepLR(other, 1), progress=False)
    with pytest.raises(ConfigError, match=r"^scheduler: options \['gamma'\] go to a scheduler given by name"):
        LRScheduler(StepLR(other, 1), gamma=0.5)


def test_plateau_scheduler_and_unknown_names() -> None:
    plateau = LRScheduler("plateau", patience=0, factor=0.5)
    X, y = data()
    losses = [3.0, 3.0, 3.0]

    class Flat(Callback):
        def on_validation_end(self, epoch: int, logs: dict[str, Any]) -> None:
            logs["val_loss"] = losses[epoch]

    result = fit(nn.Linear(3, 1), (X, y), loss="mse", lr=0.1, epochs=3, val_data=(X, y),
                 callbacks=[Flat(), plateau], progress=False)  # fmt: skip
    assert result.history["lr"] == pytest.approx([0.1, 0.1, 0.05])
    assert scheduler_class("CosineAnnealingLR") is scheduler_class("cosine")
    with pytest.raises(ConfigError, match="unknown scheduler 'cosin'"):
        scheduler_class("cosin")
    with pytest.raises(ConfigError, match="StepLR cannot be made"):
        lrs_of(LRScheduler("step"), 1)  # step_size is required


def test_gradient_clipping_bounds_the_norm_seen_by_the_optimizer() -> None:
    norms: list[float] = []

    class Norm(Callback):
        def on_before_step(self, batch: int, logs: dict[str, Any]) -> None:
            grads = [p.grad.flatten() for p in self.state.model.parameters()]
            norms.append(torch.cat(grads).norm().item())

    X, y = data()
    fit(nn.Linear(3, 1), (X, 100 * y), loss="mse", lr=1e-4, epochs=3, callbacks=[GradientClipping(max_norm=1.0),
        Norm()], progress=False)  # fmt: skip
    assert max(norms) == pytest.approx(1.0, rel=1e-4)
    norms.clear()
    fit(nn.Linear(3, 1), (X, 100 * y), loss="mse", lr=1e-4, epochs=1, clip_grad_norm=2.0, callbacks=[Norm()],
        progress=False)  # fmt: skip
    assert norms[0] == pytest.approx(2.0, rel=1e-4)
    with pytest.raises(ConfigError):
        GradientClipping()


def test_plain_progress_prints_periodic_epoch_lines() -> None:
    out = io.StringIO()
    X, y = data()
    fit(nn.Linear(3, 1), (X, y), loss="mse", lr=0.01, epochs=30, callbacks=[ProgressBar(mode="plain", file=out)],
        progress=False)  # fmt: skip
    lines = out.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["1/30", "3/30", "6/30", "9/30", "12/30", "15/30", "18/30",
                                                   "21/30", "24/30", "27/30", "30/30"]  # fmt: skip
    assert all("loss" in line for line in lines)


def test_rich_progress_renders_epochs_and_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a narrow terminal's own COLUMNS would cut the metrics off
    out = io.StringIO()
    X, y = data()
    fit(nn.Linear(3, 1), (X, y), loss="mse", lr=0.01, epochs=5, batch_size=16, val_data=(X, y),
        callbacks=[ProgressBar(mode="rich", file=out)], progress=False)  # fmt: skip
    text = out.getvalue()
    assert "5/5" in text and "val_loss" in text


def test_callback_list_only_calls_overridden_hooks() -> None:
    class EpochOnly(Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None: ...

    callbacks = CallbackList([EpochOnly()], state=None)  # type: ignore[arg-type]
    assert callbacks.active("on_batch_begin") == callbacks.active("on_batch_end") == []
    assert len(callbacks.active("on_epoch_end")) == 1 and callbacks.active("on_before_step") == []


def test_best_epoch_skips_nonfinite_values() -> None:
    history = {"loss": [3.0, float("nan"), 1.0, float("inf")], "lr": [0.1] * 4}
    assert best_epoch(history) == {"epoch": 3, "loss": 1.0, "lr": 0.1}
    assert best_epoch({"loss": [float("nan")]}) == {}


class FakeClock:
    """time.perf_counter for the progress bar: `advance` moves it, so times left are exact."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def drive(bar: ProgressBar, clock: FakeClock, *, epochs: int, steps: int, batches: int, seconds: float) -> None:
    """Run `batches` steps of the first epoch, each taking `seconds` on the clock."""
    bar.state = SimpleNamespace(epochs=epochs, steps_per_epoch=steps, step=0, epoch=0)  # type: ignore[assignment]
    bar.on_train_begin({})
    bar.on_epoch_begin(0, {})
    for batch in range(batches):
        clock.now += seconds
        bar.state.step += 1
        bar.on_batch_end(batch, {"loss": torch.tensor(2.5)})


def test_rich_progress_labels_the_inner_bar_batches_and_shows_time_left(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(callbacks_module.time, "perf_counter", clock)
    bar = ProgressBar(mode="rich", refresh_hz=1e6, file=io.StringIO())
    drive(bar, clock, epochs=3, steps=10, batches=4, seconds=5.0)
    console = Console(width=150, record=True, file=io.StringIO())
    console.print(bar._progress.make_tasks_table(bar._progress.tasks))
    bar.on_train_end({})
    epoch_line, batch_line = console.export_text().splitlines()[:2]
    assert epoch_line.split()[:2] == ["epoch", "0/3"]
    # 6 batches left at 5 s each; the run: 3 epochs of 10 batches at 5 s each (nothing finished yet)
    assert batch_line.split()[:2] == ["batches", "4/10"] and "0:00:30" in batch_line and "loss 2.5" in batch_line
    assert "0:02:30" in epoch_line
    assert "-:--:--" not in epoch_line + batch_line


def test_notebook_progress_updates_one_html_display_at_a_bounded_rate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shown: list[Any] = []

    class Handle:
        def update(self, view: Any) -> None:
            shown.append(view)

    def display(view: Any, display_id: bool = False) -> Handle:
        assert display_id is True
        shown.append(view)
        return Handle()

    monkeypatch.setattr(IPython.display, "display", display)
    X, y = data()
    bar = ProgressBar(mode="notebook", refresh_hz=4.0)
    start = time.perf_counter()
    result = fit(nn.Linear(3, 1), (X, y), loss="mse", lr=0.01, epochs=200, batch_size=16, callbacks=[bar],
                 progress=False)  # fmt: skip
    seconds = time.perf_counter() - start
    # the first display, updates at most 4 a second (+1 for the last batch of an epoch), and the last
    assert 2 <= len(shown) <= 4 * seconds + 4
    last = shown[-1]
    text = repr(last)
    assert text.splitlines()[0].startswith("epoch 200/200  0:00:00 left  loss ")
    assert f"loss {result.history['loss'][-1]:.4g}" in text
    assert text.splitlines()[1].startswith("batches 4/4")
    html = last._repr_html_()
    assert html.count("<progress") == 2 and "value='200' max='200'" in html
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_progress_mode_is_checked() -> None:
    with pytest.raises(ConfigError, match="use 'auto', 'rich', 'notebook' or 'plain'"):
        ProgressBar(mode="fancy")


def test_ema_weights_equal_a_hand_computed_average() -> None:
    X, y = data()
    trained: list[torch.Tensor] = []

    class Weights(Callback):
        def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
            trained.append(self.state.model.weight.detach().clone())

    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    result = fit(model, (X, y), loss="mse", lr=0.05, epochs=3, batch_size=16, ema=0.8, val_data=(X, y),
                 callbacks=[Weights()], progress=False)  # fmt: skip
    average = trained[0]  # the first step's weights start the average, then a = 0.8 a + 0.2 w
    for weights in trained[1:]:
        average = 0.8 * average + 0.2 * weights
    assert torch.allclose(model.weight, average, atol=1e-6)  # the model ends with the average
    assert not torch.allclose(trained[-1], average, atol=1e-3)  # which differs from the trained weights
    # validation ran on the average: the last epoch's val_loss is the final model's loss
    assert result.history["val_loss"][-1] == pytest.approx(
        float(nn.functional.mse_loss(model(X), y).detach()), rel=1e-5
    )
    with pytest.raises(ConfigError, match=r"^ema: the decay must be between 0 and 1 \(0.999 is usual\), got 1.5$"):
        fit(nn.Linear(3, 1), (X, y), loss="mse", lr=0.05, ema=1.5, progress=False)


def test_auto_mode_follows_the_metrics_own_direction() -> None:
    from trainwise.callbacks import monitor_mode
    from trainwise.metrics import make_metrics

    score = SimpleNamespace(name="multiclass_f1_score", higher_is_better=True)
    error = SimpleNamespace(name="mean_absolute_percentage_error", higher_is_better=False)
    assert monitor_mode("val_multiclass_f1_score", "auto", [score, error]) == "max"
    assert monitor_mode("mean_absolute_percentage_error", "auto", [score, error]) == "min"
    assert monitor_mode("val_multiclass_f1_score", "min", [score]) == "min"  # an explicit mode wins
    assert monitor_mode("val_accuracy") == "max" and monitor_mode("val_loss") == "min"  # by name, without metrics
    assert monitor_mode("val_mae", "auto", make_metrics(["mae"])) == "min"
