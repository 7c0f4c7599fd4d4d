"""The doctor's corpus: small training programs, each with one realistic fault (or none), in the format of
the project's doctor-corpus format (docs/doctor.md, "Measured accuracy"). Every program in programs/ has a
docstring naming the fault and its source, EXPECT = {"codes": [...], "also_ok": [...]}, and train(tw=None):
without trainwise it returns its own measurement of the fault ({"ok": ..., "check": ...}), with trainwise it
watches its loop with tw.watch and returns the doctor's findings.

    python -m tests.doctor.corpus                 # score the doctor on every program, table per code
    python -m tests.doctor.corpus --proof         # run every program without the doctor: is each fault real?
    python -m tests.doctor.corpus --autowatch     # each loop unmodified, under trainwise.autowatch()
    python -m tests.doctor.corpus lr_too_high_    # only the programs whose file name contains the text

Each program runs in its own forked process (one CPU thread, fresh global state), two at a time per core.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import multiprocessing
import os
import time
import traceback
import types
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROGRAMS = Path(__file__).parent / "programs"
TIMEOUT_S = 120


@dataclass
class Outcome:
    """One program's run: what it expects and what the doctor said (or what the program measured)."""

    name: str
    codes: list[str]
    also_ok: list[str]
    seconds: float
    reported: list[tuple[str, str]] = field(default_factory=list)  # (code, severity), distinct, in order
    proof: dict[str, Any] | None = None
    crash: str | None = None

    @property
    def healthy(self) -> bool:
        return not self.codes

    @property
    def alarms(self) -> set[str]:
        """The distinct error/warning codes reported."""
        return {code for code, severity in self.reported if severity != "info"}

    @property
    def detected(self) -> bool:
        """Every expected code reported (an info code counts at any severity) and no crash."""
        found = {code for code, _ in self.reported}
        return self.crash is None and all(code in found for code in self.codes)

    @property
    def false_alarm(self) -> bool:
        return self.healthy and (self.crash is not None or bool(self.alarms))

    @property
    def wrong_codes(self) -> set[str]:
        return self.alarms - set(self.codes) - set(self.also_ok)


def discover(patterns: Sequence[str] = ()) -> list[Path]:
    paths = sorted(p for p in PROGRAMS.glob("*.py") if not p.name.startswith("_"))
    if patterns:
        paths = [p for p in paths if any(text in p.stem for text in patterns)]
    return paths


def load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"corpus_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Trainwise(types.ModuleType):
    """trainwise as the programs see it, with watch() keeping the doctors it makes: when the doctor stops a
    program on purpose (TrainingError: labels the loss would crash on), its findings are still read."""

    def __init__(self) -> None:
        import trainwise

        super().__init__("trainwise")
        self.__dict__.update({k: v for k, v in vars(trainwise).items() if k != "watch"})
        self.doctors: list[Any] = []

    def watch(self, *args: Any, **kwargs: Any) -> Any:
        import trainwise

        doctor = trainwise.watch(*args, **kwargs)
        self.doctors.append(doctor)
        return doctor


def _codes(findings: Iterable[Any]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for finding in findings:
        seen.setdefault(finding.code, finding.severity)
    return list(seen.items())


def _run(args: tuple[str, str]) -> Outcome:
    """In a forked child: run one program with the doctor through watch(), unmodified under autowatch(), or
    without the doctor (the proof)."""
    import torch

    from trainwise import TrainingError, autowatch

    path, how = Path(args[0]), args[1]
    proof = how == "proof"
    torch.set_num_threads(1)
    start = time.perf_counter()
    outcome = Outcome(path.stem, [], [], 0.0)
    tw = _Trainwise()
    try:
        module = load(path)
        outcome.codes = list(module.EXPECT["codes"])
        outcome.also_ok = list(module.EXPECT.get("also_ok", []))
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            if how == "autowatch":
                with autowatch(mode="quiet") as session:
                    module.train()
                result = session.findings
            else:
                result = module.train() if proof else module.train(tw=tw)
        if proof:
            outcome.proof = dict(result)
        else:
            outcome.reported = _codes(result)
    except TrainingError:  # the doctor stopped the program with its diagnosis, as a user would see it
        outcome.reported = _codes(f for doctor in tw.doctors for f in doctor.findings)
    except Exception as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
        outcome.crash = f"{type(exc).__name__}: {exc}{where}"
    outcome.seconds = time.perf_counter() - start
    return outcome


def _warm_up() -> None:
    """Import torch and trainwise and take a few watched optimizer steps once, here, so each fork starts
    warm: the first steps of a process pay about 2 s of lazy initialisation, more than most programs run."""
    import torch
    from torch import nn

    import trainwise

    for optimizer in (torch.optim.SGD, torch.optim.Adam):
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        opt = optimizer(model.parameters(), lr=0.1)
        loss_fn = nn.CrossEntropyLoss()
        with trainwise.watch(model, opt, loss_fn=loss_fn, mode="quiet") as doctor:
            for _ in range(3):
                target = torch.randint(0, 2, (16,))
                loss = loss_fn(model(torch.randn(16, 4)), target)
                opt.zero_grad()
                loss.backward()
                opt.step()
                doctor.record(loss, target=target)


def run(paths: Iterable[Path], *, how: str = "watch", processes: int | None = None) -> list[Outcome]:
    """Run the programs, each in a fresh forked process, and return their outcomes in the order given: `how`
    is "watch" (train(tw=trainwise)), "autowatch" (train() unmodified, under trainwise.autowatch()) or
    "proof" (train() without the doctor)."""
    _warm_up()
    jobs = [(str(p), how) for p in paths]
    processes = processes or max(1, 2 * (os.cpu_count() or 1))
    context = multiprocessing.get_context("fork")
    with context.Pool(processes=processes, maxtasksperchild=1) as pool:
        pending = [pool.apply_async(_run, (job,)) for job in jobs]
        outcomes = []
        for (path, _), result in zip(jobs, pending, strict=True):
            try:
                outcomes.append(result.get(timeout=TIMEOUT_S))
            except multiprocessing.TimeoutError:
                outcomes.append(Outcome(Path(path).stem, [], [], TIMEOUT_S, crash=f"timed out after {TIMEOUT_S} s"))
    return outcomes


@dataclass
class Score:
    faults: int
    detected: int
    healthy: int
    false_alarms: int
    reported: int  # distinct error/warning codes per program, summed
    right: int  # of those, the ones in codes or also_ok
    crashes: int

    @property
    def detection(self) -> float:
        return self.detected / self.faults if self.faults else 1.0

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.healthy if self.healthy else 0.0

    @property
    def precision(self) -> float:
        return self.right / self.reported if self.reported else 1.0


def score(outcomes: Sequence[Outcome]) -> Score:
    faults = [o for o in outcomes if not o.healthy]
    healthy = [o for o in outcomes if o.healthy]
    reported = sum(len(o.alarms) for o in outcomes)
    return Score(
        faults=len(faults),
        detected=sum(o.detected for o in faults),
        healthy=len(healthy),
        false_alarms=sum(o.false_alarm for o in healthy),
        reported=reported,
        right=reported - sum(len(o.wrong_codes) for o in outcomes),
        crashes=sum(o.crash is not None for o in outcomes),
    )


def table(outcomes: Sequence[Outcome]) -> str:
    """Per code: the programs that expect it, how many were diagnosed, and how often the code was reported
    where it was not expected (false codes); then the totals. Markdown, as docs/doctor.md keeps it."""
    expected: dict[str, list[Outcome]] = defaultdict(list)
    false_codes: dict[str, int] = defaultdict(int)
    reported: dict[str, int] = defaultdict(int)
    for o in outcomes:
        for code in o.codes:
            expected[code].append(o)
        for code in o.alarms:
            reported[code] += 1
        for code in o.wrong_codes:
            false_codes[code] += 1
    lines = ["| code | programs | diagnosed | reported | false | precision |", "|---|---:|---:|---:|---:|---:|"]
    for code in sorted(set(expected) | set(reported)):
        programs = expected.get(code, [])
        found = sum(o.detected for o in programs)
        precision = 1 - false_codes[code] / reported[code] if reported[code] else 1.0
        lines.append(
            f"| {code} | {len(programs)} | {found} | {reported[code]} | {false_codes[code]} | {precision:.2f} |"
        )
    s = score(outcomes)
    lines += [
        "",
        f"faults diagnosed: {s.detected} of {s.faults} ({s.detection:.0%}); "
        f"healthy runs with a warning: {s.false_alarms} of {s.healthy} ({s.false_alarm_rate:.0%}); "
        f"precision {s.precision:.2f} ({s.right} of {s.reported} error/warning codes right); crashes {s.crashes}",
    ]
    return "\n".join(lines)


def misses(outcomes: Sequence[Outcome]) -> list[str]:
    """One line per program the doctor got wrong: a missed fault, a false alarm, a wrong code, a crash."""
    lines = []
    for o in outcomes:
        got = ", ".join(f"{code}({severity[0]})" for code, severity in o.reported) or "nothing"
        if o.crash:
            lines.append(f"CRASH  {o.name}: {o.crash}")
        elif not o.healthy and not o.detected:
            lines.append(f"MISSED {o.name}: expected {', '.join(o.codes)}; got {got}")
        elif o.false_alarm:
            lines.append(f"ALARM  {o.name}: healthy; got {got}")
        elif o.wrong_codes:
            lines.append(f"WRONG  {o.name}: expected {', '.join(o.codes)}; got {got}")
    return lines


def proof_lines(outcomes: Sequence[Outcome]) -> list[str]:
    """One line per program run without the doctor: its own measurement of the fault."""
    lines = []
    for o in outcomes:
        if o.crash or o.proof is None:
            lines.append(f"CRASH  {o.name}: {o.crash}")
            continue
        ok = o.proof.get("ok")
        numbers = ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in o.proof.items()
            if k not in ("ok", "check")
        )
        verdict = "ok  " if ok else "FAIL"
        lines.append(f"{verdict}   {o.name} ({o.seconds:.1f} s): {o.proof.get('check', '')}; {numbers}")
    return lines
