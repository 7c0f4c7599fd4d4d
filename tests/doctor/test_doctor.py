"""The doctor's API: watch() and its modes, findings and reports, check(), and its place in fit and the CLI."""

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import trainwise
from tests.doctor.helpers import cpu_fit, full_batch_steps
from tests.host_reads import HostReads
from trainwise.doctor import CODES, Doctor, Finding, check, watch
from trainwise.doctor.findings import nice_number
from trainwise.errors import TrainingError

T_U = torch.tensor([35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4]).unsqueeze(1)
T_C = torch.tensor([0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0]).unsqueeze(1)


def linear_w1() -> nn.Linear:
    model = nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.zero_()
    return model


def w1_loop(doctor: Doctor, model: nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> None:
    loss_fn = nn.MSELoss()
    full_batch_steps(doctor, model, optimizer, loss_fn, T_U, T_C, steps)


def test_every_code_has_a_severity_of_the_issue() -> None:
    errors = {c for c, s in CODES.items() if s == "error"}
    assert errors == {"nonfinite-loss", "nonfinite-data", "label-out-of-range", "loss-broadcast",
                      "missing-zero-grad", "no-gradient", "params-not-optimized"}  # fmt: skip
    assert {c for c, s in CODES.items() if s == "info"} == {"sum-reduction", "doctor-error"}
    assert len(CODES) == 27


def test_watch_prints_each_finding_once_and_removes_its_hooks() -> None:
    model = linear_w1()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    printed: list[str] = []
    with watch(model, optimizer, loss_fn=nn.MSELoss(), printer=printed.append) as doctor:
        w1_loop(doctor, model, optimizer, 30)
    assert isinstance(doctor, Doctor)
    found = [f.code for f in doctor.findings]
    assert found[0] == "nonfinite-loss"  # errors first
    assert sorted(found) == ["lr-too-high", "nonfinite-loss", "unscaled-inputs"]
    assert len(printed) == 3 and all(line.split()[1] in found for line in printed)
    assert not model._forward_hooks and not model._forward_pre_hooks
    assert not optimizer._optimizer_step_pre_hooks and not optimizer._optimizer_step_post_hooks


def test_stop_mode_raises_at_the_first_error_only() -> None:
    model = linear_w1()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    doctor = watch(model, optimizer, loss_fn=nn.MSELoss(), mode="stop", printer=lambda _: None)
    with pytest.raises(TrainingError, match="nonfinite-loss"):
        w1_loop(doctor, model, optimizer, 30)
    # warnings came first and did not stop it
    assert {f.code for f in doctor.findings} >= {"lr-too-high", "unscaled-inputs"}
    doctor.close()


def test_quiet_mode_collects_without_printing(capsys: pytest.CaptureFixture[str]) -> None:
    model = linear_w1()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    with watch(model, optimizer, loss_fn=nn.MSELoss(), mode="quiet") as doctor:
        w1_loop(doctor, model, optimizer, 50)
    assert [f.code for f in doctor.findings] == ["unscaled-inputs"]
    assert capsys.readouterr().err == ""


def test_findings_are_deduplicated_taking_the_latest_measurement_whole() -> None:
    model = nn.Linear(2, 1)
    doctor = watch(model, torch.optim.SGD(model.parameters(), lr=0.1), mode="quiet")
    doctor.raise_finding("dead-relu", "first", evidence={"dead_fraction": 0.7}, subject="relu1")
    doctor.raise_finding("dead-relu", "again", evidence={"dead_fraction": 0.9}, subject="relu1")
    doctor.raise_finding("dead-relu", "other layer", evidence={"dead_fraction": 0.8}, subject="relu2")
    assert len(doctor.findings) == 2
    first = next(f for f in doctor.findings if f.subject == "relu1")
    assert first.message == "again" and first.evidence == {"dead_fraction": 0.9}  # message and numbers agree
    assert first.step == 0  # when it was first raised
    assert doctor.raised["dead-relu"] == 3
    doctor.close()


def test_report_and_finding_serialisation() -> None:
    model = linear_w1()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    with watch(model, optimizer, loss_fn=nn.MSELoss(), mode="quiet") as doctor:
        w1_loop(doctor, model, optimizer, 30)
    report = doctor.report()
    assert report.splitlines()[0] == "trainwise doctor: 3 finding(s) in 30 steps"
    assert "Fix: lower lr to about 0.0001" in report
    encoded = json.dumps([f.to_dict() for f in doctor.findings])  # NaN/inf evidence must still be JSON
    assert json.loads(encoded)[0]["code"] == "nonfinite-loss"
    healthy = nn.Linear(1, 1)
    quiet = watch(healthy, torch.optim.SGD(healthy.parameters(), lr=0.01), mode="quiet")
    assert quiet.report() == "trainwise doctor: no problems found in 0 steps."
    quiet.close()


def test_finding_format_is_one_line() -> None:
    finding = Finding("lr-too-low", "warning", "Too slow.", {"lr": 1e-6, "steps": 20}, "raise lr", step=4)
    assert finding.format() == "warning lr-too-low at step 4: Too slow. Evidence: lr 1e-06, steps 20. Fix: raise lr"
    assert "\n" not in finding.format()


def test_nice_numbers_are_1_2_5_steps() -> None:
    assert [nice_number(v) for v in (1.7e-4, 3.4e-3, 0.0099, 7.0, 1e-3)] == [1e-4, 2e-3, 5e-3, 5.0, 1e-3]


def test_fit_collects_findings_and_the_record_stores_them(tmp_path: Path) -> None:
    result = cpu_fit(linear_w1(), (T_U, T_C), loss="mse", lr=1e-2, epochs=30, doctor="quiet",
                           run_dir=tmp_path, feature_names=["t_u"], progress=False)  # fmt: skip
    assert {f.code for f in result.findings} == {"lr-too-high", "nonfinite-loss", "unscaled-inputs"}
    assert result.run is not None
    stored = json.loads((result.run / "findings.json").read_text())
    assert [f["code"] for f in stored] == [f.code for f in result.findings]
    assert next(f for f in stored if f["code"] == "unscaled-inputs")["subject"] == "t_u"
    assert json.loads((result.run / "summary.json").read_text())["findings"] == 3
    off = cpu_fit(linear_w1(), (T_U, T_C), loss="mse", lr=1e-2, epochs=30, doctor="off", progress=False)
    assert off.findings == []


def test_fit_rejects_an_unknown_doctor_mode() -> None:
    with pytest.raises(trainwise.ConfigError, match="doctor: 'loud' is not a mode"):
        cpu_fit(linear_w1(), (T_U, T_C), loss="mse", lr=1e-2, doctor="loud", progress=False)


def test_check_finds_the_w5_mistake_without_changing_the_model() -> None:
    generator = torch.Generator().manual_seed(0)
    X, y = torch.rand(300, 1, 28, 28, generator=generator), torch.arange(300) % 10
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 18))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    findings = check(model, (X, y), loss="cross_entropy")
    assert [f.code for f in findings] == ["output-class-mismatch"]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_check_reports_labels_beyond_the_outputs_instead_of_crashing() -> None:
    X, y = torch.randn(64, 4), torch.arange(1, 65) % 10 + 1  # labels 1..10 for 10 outputs
    findings = check(nn.Linear(4, 10), (X, y), loss="cross_entropy")
    assert [f.code for f in findings] == ["label-out-of-range"]
    assert findings[0].evidence["label"] == 10 and "map the labels to 0..9" in findings[0].suggestion


def test_cli_fit_prints_findings_in_the_summary_and_check_command(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {"TRAINWISE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    fit = subprocess.run([sys.executable, "-m", "trainwise", "fit", "w1-raw-lr1e-2"], capture_output=True,
                         text=True, env=env, timeout=120)  # fmt: skip
    assert fit.returncode == 0
    assert "doctor: 3 finding(s)" in fit.stdout and "lr-too-high" in fit.stdout
    # findings also appeared as they happened, on stderr with the progress lines
    assert "warning unscaled-inputs [t_u] at step 0" in fit.stderr
    checked = subprocess.run(
        [sys.executable, "-m", "trainwise", "check", "w5-as-written", "--json", "--set", "data.limit=500"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    if "fashion-mnist" in checked.stderr:
        pytest.skip("dataset-fashion-mnist is not installed")
    assert checked.returncode == 0, checked.stderr
    assert [f["code"] for f in json.loads(checked.stdout)] == ["output-class-mismatch"]
    healthy = subprocess.run([sys.executable, "-m", "trainwise", "check", "w1-normalized"], capture_output=True,
                             text=True, env=env, timeout=120)  # fmt: skip
    assert healthy.returncode == 0 and healthy.stdout.strip() == "doctor: no problems found"
    assert math.isfinite(0.0)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sampled_update_sizes_are_the_weights_change(momentum: float) -> None:
    """Plain SGD's update is taken as lr x grad (no copy of the weights); with momentum it is measured
    as the weights' change. Both must equal the change the step really made."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 3))
    optimizer = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.05},
                                 {"params": model[2].parameters(), "lr": 0.2}], momentum=momentum)  # fmt: skip
    x, y = torch.randn(64, 20), torch.randint(0, 3, (64,))
    with watch(model, optimizer, loss_fn=nn.CrossEntropyLoss(), mode="quiet", warmup=3) as doctor:
        for _ in range(3):
            before = {name: p.detach().clone() for name, p in model.named_parameters()}
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    moved = {name: float((p.detach() - before[name]).norm()) for name, p in model.named_parameters()}
    assert doctor._plain_sgd_lrs() == ([0.05, 0.05, 0.2, 0.2] if momentum == 0 else None)
    assert len(doctor.obs.samples) == 3
    assert doctor.obs.samples[-1].update_norms == pytest.approx(moved, rel=1e-4)


# ----------------------------------------------------------------------------------------- notebook display


def test_doctor_and_finding_show_themselves_in_notebooks_and_reprs() -> None:
    model = linear_w1()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    with watch(model, optimizer, loss_fn=nn.MSELoss(), mode="quiet", feature_names=["<t_u>"]) as doctor:
        w1_loop(doctor, model, optimizer, 30)
    assert repr(doctor) == "Doctor(mode='quiet', steps=30, findings=3: nonfinite-loss, unscaled-inputs, lr-too-high)"
    page = doctor._repr_html_()
    assert page.count("<tr>") == 4  # a header and one row per finding
    assert "<th>severity</th><th>code</th><th>step</th><th>message</th><th>fix</th>" in page
    assert "<td>warning</td><td>unscaled-inputs [&lt;t_u&gt;]</td>" in page  # user text escaped
    assert "<td>Input &lt;t_u&gt; has mean 51.8" in page
    assert "<t_u>" not in page and "lower lr to about 0.0001" in page
    assert "Linear (2 parameter tensors), SGD (lr 0.01), loss mse, 30 steps" in page
    finding = next(f for f in doctor.findings if f.code == "lr-too-high")
    assert repr(finding).startswith("Finding(warning lr-too-high, step=") and len(repr(finding)) < 140
    row = finding._repr_html_()
    assert row.count("<tr>") == 2 and "<td>lr-too-high</td>" in row and "Evidence: lr 0.01" in row


def test_a_healthy_doctor_shows_no_findings_and_what_it_watched() -> None:
    from rich.console import Console

    model = nn.Linear(1, 1)
    doctor = watch(model, torch.optim.Adam(model.parameters(), lr=0.01), mode="quiet")
    doctor.close()
    assert repr(doctor) == "Doctor(mode='quiet', steps=0, findings=0)"
    page = doctor._repr_html_()
    assert "no findings" in page and "Adam (lr 0.01)" in page and "<td>" not in page
    console = Console(width=200, record=True)
    console.print(doctor)
    assert "no findings" in console.export_text()
    finding = Finding("dead-relu", "warning", "Units <a> died.", {"dead_fraction": 0.75}, "use LeakyReLU", step=3)
    console.print(finding)
    text = console.export_text()
    assert "dead-relu" in text and "Units <a> died. Evidence: dead_fraction 0.75." in text


def test_the_docs_code_table_lists_every_code_with_its_severity() -> None:
    import re

    text = (Path(__file__).resolve().parents[2] / "docs" / "doctor.md").read_text(encoding="utf-8")
    table = dict(re.findall(r"^\| ([a-z-]+) \| (error|warning|info) \|$", text, re.M))
    assert table == CODES
    assert "**doctor-error**" in text


def test_target_sums_count_a_repeated_full_batch_once_per_step_and_exactly() -> None:
    from trainwise.doctor.core import TargetSums

    sums = TargetSums()
    full, other = torch.tensor([[1.0], [3.0]]), torch.tensor([[5.0]])
    for _ in range(3):
        sums.add(full)  # the same tensor three times: summed once, counted three times
    sums.add(other)
    full.mul_(2)  # changed in place: its new values are summed afresh
    sums.add(full)
    totals = sums.totals()
    assert totals is not None and sums.count == 9
    assert totals[0].tolist() == [3 * 4.0 + 5.0 + 8.0] and totals[1].tolist() == [3 * 10.0 + 25.0 + 40.0]


def test_train_rows_know_each_distinct_row_and_see_a_whole_pass_repeat() -> None:
    from trainwise.doctor.core import TrainRows, row_keys

    X = torch.randn(1000, 5)
    rows = TrainRows()
    for start in range(0, 1000, 10):
        rows.add(X[start : start + 10])
    assert len(rows) == 1000 and rows.repeated_batches == 0
    assert rows.count_known(row_keys(torch.cat([X[:7], torch.randn(4, 5)]))) == 7
    for start in range(0, 300, 10):  # the second epoch: batches made only of known rows
        rows.add(X[start : start + 10])
    rows.merge()
    assert rows.repeated_batches == 30 and len(rows) == 1000
    full = torch.randn(11, 1)  # a full-batch loop passes the same tensor every step
    rows = TrainRows()
    for _ in range(4):
        rows.add(full)
    assert rows.repeated_batches == 3 and len(rows) == 11


def test_the_zero_grad_probe_compares_at_most_4096_entries_of_a_large_gradient() -> None:
    from trainwise.doctor.core import ZeroGradProbe

    weight = nn.Parameter(torch.zeros(512, 784))
    probe = ZeroGradProbe(weight)
    first, second = torch.randn(512, 784), torch.randn(512, 784)
    weight.grad = first.clone()
    probe.remember(0)
    probe.add_incoming(second)
    assert probe.incoming is not None and probe.incoming.numel() <= 4096
    weight.grad = first + second  # zero_grad forgotten: the old gradient is carried
    assert probe.carried(1) is True
    weight.grad = second.clone()
    assert probe.carried(1) is False


def test_sampled_steps_read_the_device_only_with_their_statistics() -> None:
    # on the CPU the doctor reads each step's loss at once (cheap there); every other number a sampled step
    # measures (ReLU units alive, logits clipped at 0, softmax rows, the norms) travels in the one packed
    # read at the step's end (tolist, which the counter does not see): 100 more steps, sampled ones among
    # them, make exactly 100 more reads
    class Samples(trainwise.Callback):
        def on_train_end(self, logs: dict) -> None:
            self.count = len(self.state.doctor.doctor.obs.samples)

    def reads(samples: int) -> tuple[int, int]:
        torch.manual_seed(0)
        y = torch.arange(samples) % 3
        X = torch.randn(samples, 4) + y.unsqueeze(1).float()
        model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3), nn.ReLU())
        sampled = Samples()
        with HostReads() as counter:
            cpu_fit(model, (X, y), loss="cross_entropy", lr=0.1, epochs=1, batch_size=32, callbacks=[sampled])
        return counter.reads, sampled.count

    (fewer, sampled_fewer), (more, sampled_more) = reads(3200), reads(6400)
    assert sampled_more > sampled_fewer >= 10
    assert more - fewer == 100
