"""Side-by-side comparison of runs: train a grid of config values, or read recorded runs, and rank them.

    comparison = trainwise.compare("w1-normalized", {"optim.name": ["sgd", "adam"], "optim.lr": ["1e-3", "1e-2"]})

Both ways end in the same place: one `CompareRow` per run (its loss curve, final metrics, time and
findings), ranked by `rank()` into a `Comparison` that prints as a table and plots the loss curves.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
import sys
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainwise._display import TextTable, brief_repr, html_table
from trainwise.config import Config, apply_overrides, load_config, validate
from trainwise.errors import ConfigError, TrainingError, TrainwiseError

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.table import Table

__all__ = [
    "MAX_RUNS",
    "CompareRow",
    "Comparison",
    "compare",
    "compare_runs",
    "default_plot_path",
    "higher_is_better",
    "parse_vary",
    "rank",
]

# A grid grows multiplicatively; past this many trainings a typo in --vary costs an afternoon.
MAX_RUNS = 64
# Config keys that describe a run rather than set it: never worth a column in `runs compare`.
_DESCRIPTIVE_KEYS = frozenset({"description", "workload"})
# History columns that are bookkeeping, not results.
_NOT_METRICS = frozenset({"lr", "epoch_seconds", "epoch"})
_MISSING = "-"
_SPLIT_NAMES = {"val": "validation", "test": "test"}

Progress = bool | Callable[[str], None]


@dataclass(frozen=True)
class CompareRow:
    """One run of a comparison: what was varied, its per-epoch training loss and how it ended."""

    label: str  # the varied values, e.g. "optim.name=adam, optim.lr=1e-2": the plot's legend entry
    values: dict[str, str]  # varied key -> the value as shown
    loss: list[float]  # training loss per epoch
    final: dict[str, float]  # the last epoch's loss and metrics, val_* and test_* included
    seconds: float  # training time: the sum of the epoch times, as in the run record's summary
    findings: dict[str, int] = field(default_factory=dict)  # the doctor's findings per severity
    status: str = "completed"
    run: str | None = None  # the run record's id, when the run was recorded
    rank: int = 0

    @property
    def final_loss(self) -> float:
        return float(self.final.get("loss", self.loss[-1] if self.loss else math.nan))

    @property
    def best_epoch(self) -> int | None:
        """The 1-based epoch of the lowest finite training loss (None when no epoch had one)."""
        finite = [(value, i) for i, value in enumerate(self.loss) if math.isfinite(value)]
        return min(finite)[1] + 1 if finite else None

    @property
    def best_loss(self) -> float:
        epoch = self.best_epoch
        return self.loss[epoch - 1] if epoch is not None else math.nan

    @property
    def diverged(self) -> bool:
        """The run ended without a finite training loss (diverged, failed or trained no epoch)."""
        return not math.isfinite(self.final_loss)

    @property
    def diverged_at(self) -> int | None:
        """The first epoch whose training loss was not finite."""
        return next((i + 1 for i, value in enumerate(self.loss) if not math.isfinite(value)), None)

    def metric(self, name: str) -> float | None:
        """A final value by name ("loss", "val_loss", "test_accuracy", ...); None when the run lacks it."""
        if name == "loss":
            return self.final_loss
        value = self.final.get(name)
        return None if value is None else float(value)

    def __repr__(self) -> str:
        fields = {
            "rank": self.rank,
            "label": self.label,
            "final_loss": self.final_loss,
            "best_epoch": self.best_epoch,
            "loss": self.loss,
            "status": self.status,
            "seconds": round(self.seconds, 2),
            "run": self.run,
        }
        return brief_repr("CompareRow", fields)

    def to_dict(self) -> dict[str, Any]:
        """The row as plain data (the per-epoch curve left out): what `--json` prints."""
        return {
            "rank": self.rank,
            "label": self.label,
            "values": dict(self.values),
            "run": self.run,
            "status": self.status,
            "diverged": self.diverged,
            "diverged_at": self.diverged_at,
            "epochs": len(self.loss),
            "final_loss": self.final_loss,
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "metrics": {k: v for k, v in self.final.items() if k != "loss"},
            "seconds": self.seconds,
            "findings": {severity: self.findings.get(severity, 0) for severity in ("error", "warning", "info")},
        }


@dataclass
class Comparison:
    """Runs ranked best first by `rank_by` (a final metric; accuracy-like ones rank highest first).

    Runs whose training loss ended non-finite (diverged), and runs the doctor stopped, rank last whatever
    the metric says.

    compare and compare_runs make it (through rank()); its fields are attributes of the same names.

    Args:
        rows: one CompareRow per run, best first (row.rank counts from 1).
        keys: the varied config keys, one table column each.
        rank_by: the final metric the rows are ranked by (default "loss"; e.g. "val_accuracy", "test_loss").
        title: the table's and the plot's title (the recipe's name); "" for none.
    """

    rows: list[CompareRow]
    keys: list[str]  # the varied keys: one table column each
    rank_by: str = "loss"
    title: str = ""

    @property
    def best(self) -> CompareRow:
        return self.rows[0]

    @property
    def descending(self) -> bool:
        return higher_is_better(self.rank_by)

    def to_dicts(self) -> list[dict[str, Any]]:
        return [row.to_dict() for row in self.rows]

    def metric_names(self) -> list[str]:
        """The final metrics any row has, training ones first, then val_*, then test_*."""
        names: dict[str, None] = {}
        for row in self.rows:
            names.update(dict.fromkeys(k for k in row.final if k != "loss" and k not in _NOT_METRICS))
        return sorted(names, key=lambda k: k.startswith("val_") + 2 * k.startswith("test_"))

    def _header(self) -> list[str]:
        return ["#", *self.keys, "final loss", "best loss (epoch)", *self.metric_names(), "seconds", "findings"]

    def _cells(self, row: CompareRow) -> list[str]:
        best = row.best_epoch
        return [
            str(row.rank),
            *(row.values.get(key, _MISSING) for key in self.keys),
            _final_loss_text(row),
            f"{row.best_loss:.6g} ({best})" if best is not None else _MISSING,
            *(_number(row.final.get(name)) for name in self.metric_names()),
            f"{row.seconds:.2f}",
            _findings_text(row.findings),
        ]

    def _caption(self) -> str:
        order = "highest" if self.descending else "lowest"
        return f"ranked by {self.rank_by}, {order} first; diverged runs last"

    def table(self) -> TextTable:
        """The ranked table: rank, the varied values, final and best loss, final metrics, seconds, findings.
        `print()` shows it as text; a rich Console renders it with colours (the best run green, diverged red)."""
        from rich.table import Table
        from rich.text import Text

        table = Table(title=self.title or None, caption=self._caption(), header_style="bold")
        header = self._header()
        numeric_from = 1 + len(self.keys)
        for i, name in enumerate(header):
            table.add_column(name, justify="right" if i == 0 or i >= numeric_from else "left")
        for row in self.rows:
            style = "red" if row.diverged else "bold green" if row.rank == 1 else ""
            # Text cells: brackets in a value ("[100, 50]") must never be read as rich markup.
            table.add_row(*(Text(cell) for cell in self._cells(row)), style=style)
        return TextTable(table)

    def __rich__(self) -> Table:
        return self.table().renderable

    def __repr__(self) -> str:
        fields = {"title": self.title or None, "rank_by": self.rank_by, "runs": len(self.rows), "best": self.best.label}
        return brief_repr("Comparison", fields)

    def _repr_html_(self) -> str:
        styles = ["color:#b00" if row.diverged else "font-weight:bold" if row.rank == 1 else "" for row in self.rows]
        rows = [self._cells(row) for row in self.rows]
        return html_table(self._header(), rows, title=self.title, caption=self._caption(), row_styles=styles)

    def plot(self, path: str | Path | None = None) -> Figure:
        """The runs' per-epoch training loss on one axes, one labelled curve each, best run first."""
        from trainwise.plots import plot_compare

        title = f"{self.title}: training loss" if self.title else "training loss"
        return plot_compare({row.label: row.loss for row in self.rows}, path, title=title, ylabel="training loss")


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of `metric` is better: losses and errors rank lowest first, accuracy and r2 highest."""
    from trainwise.metrics import make_metrics

    base = metric.removeprefix("val_").removeprefix("test_")
    if base == "loss":
        return False
    try:
        return make_metrics([base])[0].higher_is_better
    except ConfigError:  # a metric trainwise does not know (a recorded custom one): treat it like a loss
        return False


def rank(rows: Iterable[CompareRow], *, keys: Sequence[str], rank_by: str = "loss", title: str = "") -> Comparison:
    """Rank rows by the final value of `rank_by`: runs without that value come after the runs with it,
    and diverged or failed runs come last. Ties keep the given order."""
    rows = list(rows)
    if not rows:
        raise TrainwiseError("nothing to compare: no runs")
    if all(row.metric(rank_by) is None for row in rows):
        logged = sorted({"loss", *(k for row in rows for k in row.final if k not in _NOT_METRICS)})
        raise TrainwiseError(f"rank by {rank_by!r}: no run logged it; these runs logged {', '.join(logged)}")
    sign = -1.0 if higher_is_better(rank_by) else 1.0

    def order(item: tuple[int, CompareRow]) -> tuple[int, float, int]:
        index, row = item
        value = row.metric(rank_by)
        if row.diverged or row.status == "failed":
            return 2, 0.0, index
        if value is None or not math.isfinite(value):  # trained fine but has no such number
            return 1, 0.0, index
        return 0, sign * value, index

    ranked = sorted(enumerate(rows), key=order)
    return Comparison([replace(row, rank=n) for n, (_, row) in enumerate(ranked, 1)], list(keys), rank_by, title)


# ----------------------------------------------------------------------------- a grid of trainings


def parse_vary(items: Sequence[str]) -> dict[str, list[str]]:
    """CLI --vary arguments, "section.key=v1,v2,...", as {key: [values]}; values stay text (the config types them).

    Commas inside [...] or quotes do not split, so `model.hidden=[100],[50,50]` is two values.
    """
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"--vary {item!r}: expected section.key=value1,value2,..., e.g. --vary optim.lr=1e-3,1e-2"
            )
        if key in grid:
            raise ConfigError(f"--vary {key}: the key is given twice; list all its values in one --vary {key}=a,b,c")
        values = _split_values(text)
        if not any(values):
            raise ConfigError(f"--vary {item!r}: no values after '='; e.g. --vary {key}=1e-3,1e-2")
        grid[key] = values
    return _checked_grid(grid)


def _split_values(text: str) -> list[str]:
    """Split at the commas that are outside brackets, braces and quotes."""
    values, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            values.append(text[start:i].strip())
            start = i + 1
    values.append(text[start:].strip())
    return values


def _checked_grid(grid: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    if not grid:
        raise ConfigError("nothing to vary: give at least one key and its values, e.g. --vary optim.lr=1e-3,1e-2")
    for key, values in grid.items():
        if any(not value for value in values):
            raise ConfigError(f"--vary {key}: an empty value in {','.join(values)!r}; remove the extra comma")
        repeated = next((value for value in values if values.count(value) > 1), None)
        if repeated is not None:
            raise ConfigError(f"--vary {key}: the value {repeated} is listed twice; list each value once")
    return {key: list(values) for key, values in grid.items()}


def _config_text(value: Any, *, nested: bool = False) -> str:
    """A Python value as the TOML text of an override ("1e-3" and "sgd" pass through as typed)."""
    if isinstance(value, str):
        return json.dumps(value) if nested else value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_config_text(v, nested=True) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {_config_text(v, nested=True)}" for k, v in value.items()) + "}"
    raise ConfigError(f"cannot write {type(value).__name__} {value!r} as a config value; use a string or number")


def _grid_of(vary: Mapping[str, Sequence[Any]]) -> dict[str, list[str]]:
    grid: dict[str, list[str]] = {}
    for raw_key, values in vary.items():
        key = str(raw_key).strip()
        if isinstance(values, str) or not isinstance(values, Sequence):
            raise ConfigError(f"vary[{key!r}]: give a list of values, e.g. {{{key!r}: ['1e-3', '1e-2']}}")
        if key in grid:
            raise ConfigError(f"vary: the key {key} is given twice; list all its values under one key")
        grid[key] = [_config_text(value) for value in values]
        if not grid[key]:
            raise ConfigError(f"vary[{key!r}]: no values; give at least one")
    return _checked_grid(grid)


def _load(source: str | Path | Config, overrides: Sequence[str]) -> Config:
    if isinstance(source, Config):
        return validate(apply_overrides(source.to_dict(), overrides))
    return load_config(source, overrides)


def _printer(progress: Progress) -> Callable[[str], None]:
    if callable(progress):
        return progress
    if progress:
        return lambda line: print(line, file=sys.stderr)
    return lambda line: None


def compare(
    recipe_or_config: str | Path | Config,
    vary: Mapping[str, Sequence[Any]],
    *,
    overrides: Sequence[str] = (),
    run_root: Path | None = None,
    progress: Progress = False,
    plot: str | Path | None = None,
    rank_by: str = "loss",
    max_runs: int = MAX_RUNS,
) -> Comparison:
    """Train every combination of the `vary` values on top of a recipe, TOML file or Config and rank the runs.

    vary maps config keys to values: {"optim.name": ["sgd", "adam"], "optim.lr": [1e-3, 1e-2]} trains four
    runs. overrides ("section.key=value", like --set) apply to every run. Every combination's config is
    validated before the first training, so a typo in the last value fails at once. With run_root each
    run is recorded like `trainwise fit`. progress True prints a line per run on stderr (or pass a
    function that takes the line). plot: write the loss-curve overlay there as a PNG.

    Args:
        recipe_or_config: a built-in recipe name, a TOML file's path, or a Config.
        vary: config keys ("section.key") -> the values to try; strings are read as TOML values (like --set),
            numbers, bools, lists and dicts are converted. Every combination is trained.
        overrides: "section.key=value" settings (like --set) applied to every run.
        run_root: the runs folder to record each run in; None: the runs are not recorded.
        progress: True prints a line per run on stderr, a function gets each line instead; False: silent.
        plot: a path to write the loss-curve overlay to as a PNG; None: no plot.
        rank_by: the final metric to rank by: "loss" (default), a metric the configs log, or its val_ or test_
            form ("val_accuracy"); accuracy-like metrics rank highest first.
        max_runs: the most combinations allowed (default 64).

    Returns:
        The Comparison of the runs, best first.

    Raises:
        ConfigError: an empty or malformed `vary`, a bad override, a combination whose config is invalid, a
            rank_by the runs do not log, or more than max_runs combinations (all before the first training).
    """
    grid = _grid_of(vary)
    count = math.prod(len(values) for values in grid.values())
    if max_runs < 1:
        raise ConfigError(f"--max-runs {max_runs}: must be at least 1")
    if count > max_runs:
        sizes = " x ".join(str(len(values)) for values in grid.values()) + " = " if len(grid) > 1 else ""
        raise ConfigError(
            f"--vary: {sizes}{count} combinations is more than {max_runs}; vary fewer keys or values, "
            "or raise the limit with --max-runs"
        )
    base = _load(recipe_or_config, overrides)  # a bad recipe or --set is reported once, as itself
    combos = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]
    configs = []
    for combo in combos:
        settings = [f"{key}={value}" for key, value in combo.items()]
        try:
            configs.append(_load(recipe_or_config, [*overrides, *settings]))
        except ConfigError as exc:
            raise ConfigError(f"combination {', '.join(settings)}: {exc}") from None
    _check_rank_by(rank_by, configs)

    say = _printer(progress)
    rows = []
    for i, (combo, config) in enumerate(zip(combos, configs, strict=True), 1):
        label = ", ".join(f"{key}={value}" for key, value in combo.items())
        say(f"[{i}/{count}] {label}")
        rows.append(_train(config, label, combo, run_root, say))
    comparison = rank(rows, keys=list(grid), rank_by=rank_by, title=base.name)
    if plot is not None:
        comparison.plot(plot)
    return comparison


def _check_rank_by(rank_by: str, configs: Sequence[Config]) -> None:
    """Before any training: the metric must be the loss or one the configs log, on a split they have."""
    from trainwise.metrics import make_metrics

    split = "val" if rank_by.startswith("val_") else "test" if rank_by.startswith("test_") else None
    base = rank_by.removeprefix(f"{split}_") if split else rank_by
    logged = {"loss"}
    for config in configs:
        logged.update(metric.name for metric in make_metrics(config.train.metrics))
    if base not in logged:
        choices = ", ".join(f"{prefix}{name}" for name in sorted(logged) for prefix in ("", "val_", "test_"))
        raise ConfigError(f"rank by {rank_by!r}: not a metric these runs log; choose from {choices}")
    if split is not None and not any(_has_split(config, split) for config in _distinct_data(configs)):
        fix = "set data.val_split, e.g. --set data.val_split=0.2" if split == "val" else "rank by a val_ metric or loss"
        raise ConfigError(
            f"rank by {rank_by!r}: {configs[0].data.name} has no {_SPLIT_NAMES[split]} data in these runs; {fix}"
        )


def _distinct_data(configs: Sequence[Config]) -> list[Config]:
    """One config per distinct [data] section: each data set is loaded once to see its splits."""
    seen: dict[str, Config] = {}
    for config in configs:
        seen.setdefault(json.dumps(config.data.model_dump(mode="json"), sort_keys=True), config)
    return list(seen.values())


def _has_split(config: Config, split: str) -> bool:
    if split == "val" and config.data.val_split:
        return True
    if split == "test" and not config.data.test:
        return False
    from trainwise.recipes import load_data

    dataset, _ = load_data(config)
    return (dataset.X_val if split == "val" else dataset.X_test) is not None


def _train(
    config: Config, label: str, values: dict[str, str], run_root: Path | None, say: Callable[[str], None]
) -> CompareRow:
    from trainwise.callbacks import Callback
    from trainwise.recipes import run_config

    probe = Callback()  # fit hands every callback its state: what a run the doctor stopped got to
    try:
        result = run_config(
            config, run_root=run_root, progress=False, callbacks=[probe], on_note=lambda note: say(f"note: {note}")
        )
    except TrainingError as exc:  # doctor="stop": this run ends, the grid goes on
        state = getattr(probe, "state", None)
        if state is None:
            raise
        say(f"stopped by the doctor at its first error ({str(exc).split(':')[0]}); the grid goes on")
        history = state.history
        return CompareRow(
            label,
            values,
            list(history.get("loss", [])),
            _final(history, None),
            sum(history.get("epoch_seconds", [])),
            dict(Counter(finding.severity for finding in state.findings)),
            status="failed",
        )
    fit = result.fit
    if fit.status == "interrupted":  # Ctrl-C stops the whole grid, not just this run
        raise KeyboardInterrupt
    return CompareRow(
        label,
        values,
        list(fit.history.get("loss", [])),
        _final(fit.history, result.test),
        sum(fit.history.get("epoch_seconds", [])),
        dict(Counter(finding.severity for finding in fit.findings)),
        status=fit.status,
        run=fit.run.name if fit.run is not None else None,
    )


def _final(history: Mapping[str, Sequence[float]], test: Mapping[str, float] | None) -> dict[str, float]:
    final = {k: float(v[-1]) for k, v in history.items() if v and k not in _NOT_METRICS}
    final.update({f"test_{k}": float(v) for k, v in (test or {}).items()})
    return final


# ----------------------------------------------------------------------------- recorded runs


def compare_runs(
    refs: Sequence[str],
    *,
    runs_dir: Path | None = None,
    rank_by: str = "loss",
    plot: str | Path | None = None,
) -> Comparison:
    """Rank recorded runs (ids, unique prefixes, 'latest' or paths) from their metrics.csv, summary.json,
    findings.json and config.toml; the config keys whose values differ between them become columns."""
    from trainwise.runs import RunIndex, runs_root

    if not refs:
        raise TrainwiseError("runs compare: give the runs to compare, e.g. `trainwise runs compare ID ID`")
    index = RunIndex(runs_dir if runs_dir is not None else runs_root())
    found: dict[str, Path] = {}
    for ref in refs:
        run = index.get(ref)
        if run.id in found:
            raise TrainwiseError(f"run {run.id} is listed twice (as {ref!r}); list each run once")
        found[run.id] = run.path
    records = {run_id: _read_run(run_id, path) for run_id, path in found.items()}
    configs = {run_id: record[0] for run_id, record in records.items()}
    keys = _differing_keys(list(configs.values()))
    rows = []
    for run_id, (config, loss, summary, findings) in records.items():
        values = {key: _shown(config[key]) if key in config else _MISSING for key in keys}
        label = run_id + (": " + ", ".join(f"{key}={value}" for key, value in values.items()) if keys else "")
        final = {
            k: float(v)
            for k, v in summary["final"].items()
            if k not in _NOT_METRICS and isinstance(v, int | float) and not isinstance(v, bool)
        }
        final.setdefault("loss", loss[-1] if loss else math.nan)
        rows.append(
            CompareRow(
                label,
                {"run": run_id, **values},
                loss,
                final,
                float(summary.get("seconds") or 0.0),
                dict(Counter(str(finding["severity"]) for finding in findings)),
                status=str(summary.get("status", "unknown")),
                run=run_id,
            )
        )
    names = {str(config.get("name", "")) for config in configs.values()}
    title = names.pop() if len(names) == 1 else "runs"
    comparison = rank(rows, keys=["run", *keys], rank_by=rank_by, title=title)
    if plot is not None:
        comparison.plot(plot)
    return comparison


def _read_run(run_id: str, path: Path) -> tuple[dict[str, Any], list[float], dict[str, Any], list[dict[str, Any]]]:
    """(flattened config, training loss per epoch, summary, findings) of a run folder."""

    def read(name: str) -> str:
        file = path / name
        if not file.is_file():
            raise TrainwiseError(f"run {run_id}: {name} is missing from {path}; the run did not finish writing it")
        try:
            return file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TrainwiseError(f"run {run_id}: cannot read {name} ({exc})") from None

    def unreadable(name: str, problem: str) -> TrainwiseError:
        return TrainwiseError(f"run {run_id}: {name} in {path} {problem}")

    try:
        config = tomllib.loads(read("config.toml"))
    except tomllib.TOMLDecodeError as exc:
        raise unreadable("config.toml", f"is not valid TOML ({exc})") from None
    parsed: dict[str, Any] = {}
    for name in ("summary.json", "findings.json"):
        try:
            parsed[name] = json.loads(read(name))
        except ValueError as exc:
            raise unreadable(name, f"is not valid JSON ({exc})") from None
    summary, findings = parsed["summary.json"], parsed["findings.json"]
    if not isinstance(summary, dict) or not isinstance(summary.get("final"), dict):
        raise unreadable("summary.json", "has no 'final' table of metrics; it is not a run summary")
    if not isinstance(findings, list) or not all(isinstance(f, dict) and "severity" in f for f in findings):
        raise unreadable("findings.json", "is not a list of findings with a severity each")
    return _flatten(config), _loss_column(read("metrics.csv"), unreadable), summary, findings


def _loss_column(text: str, unreadable: Callable[[str, str], TrainwiseError]) -> list[float]:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or "loss" not in rows[0]:
        raise unreadable("metrics.csv", "has no loss column")
    column = rows[0].index("loss")
    losses = []
    for line, row in enumerate(rows[1:], 2):
        try:
            losses.append(float(row[column]))
        except (IndexError, ValueError):
            raise unreadable("metrics.csv", f"line {line}: no loss number in {','.join(row)!r}") from None
    return losses


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested TOML tables as dotted keys: {"optim": {"lr": 0.01}} -> {"optim.lr": 0.01}."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _differing_keys(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Config keys (in first-seen order) whose values are not the same in every config."""
    keys: dict[str, None] = {}
    for config in configs:
        keys.update(dict.fromkeys(k for k in config if k not in _DESCRIPTIVE_KEYS))
    absent = object()
    return [key for key in keys if any(c.get(key, absent) != configs[0].get(key, absent) for c in configs)]


def _shown(value: Any) -> str:
    return _config_text(value) if not isinstance(value, str) else value


# ----------------------------------------------------------------------------- table cells


def _number(value: float | None) -> str:
    return _MISSING if value is None else f"{value:.6g}"


def _final_loss_text(row: CompareRow) -> str:
    if row.status == "failed" and not row.loss:
        return "failed"
    if not row.loss:
        return "no epochs"
    if row.diverged:
        epoch = row.diverged_at
        return f"diverged (epoch {epoch})" if epoch is not None else "diverged"
    return f"{row.final_loss:.6g}" + (" (failed)" if row.status == "failed" else "")


def _findings_text(counts: Mapping[str, int]) -> str:
    parts = [
        f"{counts[severity]} {severity}{'s' if counts[severity] > 1 and severity != 'info' else ''}"
        for severity in ("error", "warning", "info")
        if counts.get(severity)
    ]
    return ", ".join(parts) or "none"


def default_plot_path(root: Path, name: str) -> Path:
    """Where the CLI writes a comparison's plot by default: compare-<name>.png in the runs folder."""
    slug = re.sub(r"[^a-z0-9._-]", "-", name.lower()).strip(".-") or "runs"
    return Path(root) / f"compare-{slug}.png"
