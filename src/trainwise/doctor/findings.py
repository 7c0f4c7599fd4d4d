"""Findings: what the doctor reports, and the codes it may use."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]

CODES: dict[str, Severity] = {
    # errors: training is broken
    "nonfinite-loss": "error",
    "nonfinite-data": "error",
    "label-out-of-range": "error",
    "loss-broadcast": "error",
    "missing-zero-grad": "error",
    "no-gradient": "error",
    "params-not-optimized": "error",
    # warnings: training works badly
    "lr-too-high": "warning",
    "lr-too-low": "warning",
    "unscaled-inputs": "warning",
    "output-class-mismatch": "warning",
    "softmax-into-cross-entropy": "warning",
    "nll-without-log-softmax": "warning",
    "wrong-loss": "warning",
    "vanishing-gradients": "warning",
    "exploding-gradients": "warning",
    "dead-relu": "warning",
    "bad-init": "warning",
    "over-regularized": "warning",
    "overfitting": "warning",
    "eval-mode-missing": "warning",
    "class-imbalance": "warning",
    "unshuffled-data": "warning",
    "train-val-overlap": "warning",
    "not-learning": "warning",
    # info: worth knowing
    "sum-reduction": "info",
    "doctor-error": "info",  # the doctor's own code failed; that part is off, training is unaffected
}

# The cause graph, in one place (docs/doctor.md draws it). SYMPTOMS: a cause and the findings it produces; a
# symptom found with its cause is reported with it (Finding.cause names the cause). MISREADINGS: a cause and the
# findings that would name its effects wrongly: while the cause is known they are not raised, and one raised
# before its cause was found is withdrawn when it is (it is never a second diagnosis contradicting the first).
SYMPTOMS: dict[str, tuple[str, ...]] = {
    "nonfinite-data": ("nonfinite-loss",),
    "lr-too-high": ("dead-relu", "nonfinite-loss", "exploding-gradients", "not-learning"),
    "exploding-gradients": ("nonfinite-loss",),
    "unscaled-inputs": ("lr-too-high", "nonfinite-loss", "exploding-gradients"),
    "missing-zero-grad": ("lr-too-high", "nonfinite-loss", "exploding-gradients"),
    "bad-init": ("dead-relu", "not-learning", "vanishing-gradients"),
}
MISREADINGS: dict[str, tuple[str, ...]] = {
    # the validation loss climbs because batchnorm/dropout run in training mode, not because the model memorises
    "eval-mode-missing": ("overfitting",),
    # copies of one unit (a symmetric start) make the steps look too large or too small for the lr
    "bad-init": ("lr-too-high", "lr-too-low"),
    # tiny steps after a divergence are dead units and huge weights, not a timid lr
    "lr-too-high": ("lr-too-low",),
    # NaN in the batch makes the loss and the gradients non-finite whatever the lr
    "nonfinite-data": ("lr-too-high", "exploding-gradients"),
    # batches of one class leave units that fire for other classes silent, and the loss jumps as each new
    # class (or target range) arrives: not dead units, not a too-high lr
    "unshuffled-data": ("dead-relu", "lr-too-high"),
    # the parts that train move as they should; the ones left out make the whole look slow
    "params-not-optimized": ("lr-too-low",),
    # outputs that never get a label are pushed down at every step: a steady gradient that reads as a timid lr
    "output-class-mismatch": ("lr-too-low",),
    # labels unrelated to the inputs, memorised: the validation loss never was better than chance
    "not-learning": ("overfitting",),
}


def causes_of(code: str) -> list[str]:
    """The codes that produce `code` as a symptom."""
    return [cause for cause, symptoms in SYMPTOMS.items() if code in symptoms]


def misread_by(code: str) -> list[str]:
    """The codes whose effects `code` would misname."""
    return [cause for cause, codes in MISREADINGS.items() if code in codes]


SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
COLUMNS = ("severity", "code", "step", "message", "fix")
FINDING_HEADER = "<tr>" + "".join(f"<th>{name}</th>" for name in COLUMNS) + "</tr>"


@dataclass
class Finding:
    """One diagnosis: what happened (message), the numbers behind it (evidence) and the fix (suggestion).

    The doctor makes them; their fields are attributes of the same names.

    Args:
        code: what was found, e.g. "nonfinite-loss" or "lr-too-low" (findings.CODES lists them).
        severity: "error" (training is broken), "warning" or "info".
        message: what happened, in a sentence or two.
        evidence: the numbers behind it, by name; empty by default.
        suggestion: the fix; "" when there is none to give.
        step, epoch: the optimizer steps taken and the epoch (counted from 0) when it was found; None if unknown.
        subject: what it is about, e.g. a layer, parameter or feature name; None for the model as a whole.
        cause: the code of another finding that explains this one; None if none does.
    """

    code: str
    severity: Severity
    message: str
    evidence: dict[str, float] = field(default_factory=dict)
    suggestion: str = ""
    step: int | None = None
    epoch: int | None = None
    subject: str | None = None
    cause: str | None = None  # the finding that explains this one (the cause graph's SYMPTOMS)

    def format(self) -> str:
        """'warning lr-too-low [subject] (step 40): message Evidence: ... Fix: ...' on one line."""
        where = f" at step {self.step}" if self.step is not None else ""
        subject = f" [{self.subject}]" if self.subject else ""
        evidence = ", ".join(f"{k} {_number(v)}" for k, v in self.evidence.items())
        parts = [f"{self.severity} {self.code}{subject}{where}: {self.message}"]
        if self.cause:
            parts.append(f"Cause: {self.cause}.")
        if evidence:
            parts.append(f"Evidence: {evidence}.")
        if self.suggestion:
            parts.append(f"Fix: {self.suggestion}")
        return " ".join(parts)

    def __repr__(self) -> str:
        message = self.message if len(self.message) <= 80 else self.message[:77] + "..."
        subject = f", subject={self.subject!r}" if self.subject else ""
        return f"Finding({self.severity} {self.code}{subject}, step={self.step}: {message!r})"

    def cells(self) -> tuple[str, str, str, str, str]:
        """The table columns (severity, code, step, message, fix) as text; the evidence joins the message."""
        evidence = ", ".join(f"{k} {_number(v)}" for k, v in self.evidence.items())
        code = f"{self.code} [{self.subject}]" if self.subject else self.code
        message = f"{self.message} Evidence: {evidence}." if evidence else self.message
        if self.cause:
            message += f" Cause: {self.cause}."
        return self.severity, code, "" if self.step is None else str(self.step), message, self.suggestion

    def html_row(self) -> str:
        return "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in self.cells()) + "</tr>"

    def _repr_html_(self) -> str:
        """One-row table in Jupyter; the user's text (messages name their layers and features) is escaped."""
        return f"<table>{FINDING_HEADER}{self.html_row()}</table>"

    def __rich__(self) -> Any:
        from rich.table import Table

        table = Table()
        for column in COLUMNS:
            table.add_column(column, overflow="fold")
        table.add_row(*self.cells())
        return table

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "evidence": {k: (v if math.isfinite(v) else str(v)) for k, v in self.evidence.items()},
            "suggestion": self.suggestion,
            "step": self.step,
            "epoch": self.epoch,
            "subject": self.subject,
            "cause": self.cause,
        }


def _number(value: float) -> str:
    if isinstance(value, int) or (math.isfinite(value) and value == int(value) and abs(value) < 1e9):
        return str(int(value))
    return f"{value:.3g}"


def nice_number(value: float) -> float:
    """Round down to 1, 2 or 5 times a power of ten: a learning rate a person would type."""
    if value <= 0 or not math.isfinite(value):
        return value
    exponent = math.floor(math.log10(value))
    for mantissa in (5, 2, 1):
        if mantissa * 10**exponent <= value * (1 + 1e-9):
            return float(f"{mantissa}e{exponent}")
    return float(f"1e{exponent}")
