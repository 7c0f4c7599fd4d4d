"""The HTML run report: one self-contained page made from a run folder alone.

`write_report(run_dir)` reads what RunRecorder wrote (config.toml, summary.json, metrics.csv,
findings.json, environment.json, predictions.json, misclassified.safetensors, fit.png, lr-find.png)
and writes run_dir/report.html. The page needs no network: plots are base64 PNG data URIs and the
only style is a small inline <style>; there is no script. Every string read from the folder is
HTML-escaped (names, config values, class and feature names can hold anything).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainwise.checkpoint import atomic_write_text
from trainwise.errors import TrainwiseError

if TYPE_CHECKING:  # matplotlib is imported when a report is written, not with `import trainwise`
    from matplotlib.figure import Figure

__all__ = ["class_scores", "read_metrics", "read_validations", "render_report", "report", "resolve_run", "write_report"]

REPORT_NAME = "report.html"
# Any of these marks a folder as a run record (a run still training may have only config.toml).
_RUN_FILES = ("summary.json", "metrics.csv", "config.toml")
_DPI = 96

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1em 2em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
nav a { margin-right: 1em; } .muted { color: #777; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ddd; padding: 3px 8px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } th { background: #f4f4f4; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
.finding { border-left: 4px solid #999; padding: 0.3em 0.8em; margin: 0.6em 0; background: #fafafa; }
.finding.error { border-color: #c62828; } .finding.warning { border-color: #ef8f00; }
.finding.info { border-color: #1565c0; }
"""


def _e(value: object) -> str:
    """Any value as escaped HTML text: the only way a string from the run folder enters the page."""
    return html.escape(str(value), quote=True)


def _num(value: object) -> str:
    """A number for a table cell (6 significant digits); anything else escaped as it is."""
    if isinstance(value, bool) or value is None:
        return _e("—" if value is None else value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else _e(value)
    return _e(value)


def _table(rows: Sequence[Sequence[str]], header: Sequence[str] = (), *, numbers: bool = True) -> str:
    """An HTML table of already-escaped cells, the first column as row headings; numbers align right."""
    cell = '<td class="num">{}</td>' if numbers else "<td>{}</td>"
    head = "<tr>" + "".join(f"<th>{text}</th>" for text in header) + "</tr>" if header else ""
    body = "".join(f"<tr><th>{row[0]}</th>" + "".join(cell.format(text) for text in row[1:]) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _figure_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    return buffer.getvalue()


def _json(path: Path) -> Any:
    """The parsed JSON file, or None when the run did not write it."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise TrainwiseError(f"{path}: cannot read it as JSON ({exc}); the run record is damaged") from None


def read_metrics(run_dir: Path) -> dict[str, list[float]]:
    """The per-epoch history in run_dir/metrics.csv as {column: values} (without the epoch column)."""
    history = _read_columns(Path(run_dir) / "metrics.csv", "epoch")
    history.pop("epoch", None)
    return history


def read_validations(run_dir: Path) -> dict[str, list[float]]:
    """fit(val_every_steps=N)'s validations in run_dir/validations.csv as {column: values} (step, epoch, ...)."""
    return _read_columns(Path(run_dir) / "validations.csv", "step")


def _read_columns(file: Path, first: str) -> dict[str, list[float]]:
    """A CSV of numbers whose header starts with `first`, as {column: values}."""
    if not file.is_file():
        return {}
    table: dict[str, list[float]] = {}
    columns: list[str] | None = None
    for line in file.read_text().splitlines():
        fields = line.split(",")
        if fields[0] == first:  # a header (a resumed run may append a second one)
            columns = fields
            continue
        if columns is None or len(fields) != len(columns):
            continue  # a line cut short by a crash mid-write
        try:
            values = [float(field) for field in fields]
        except ValueError:
            continue
        for name, value in zip(columns, values, strict=True):
            table.setdefault(name, []).append(value)
    return table


# ----------------------------------------------------------------------------- sections
# Each returns the body of its section, or None when the run has nothing for it.


def _config_section(run_dir: Path) -> str:
    file = run_dir / "config.toml"
    if not file.is_file():
        return '<p class="muted">No config recorded (a Python fit without a config).</p>'
    return f"<pre>{_e(file.read_text())}</pre>"


def _summary_section(summary: Mapping[str, Any] | None, run_dir: Path) -> str:
    if summary is None:
        return '<p class="muted">No summary yet: the run has not finished.</p>'
    best = summary.get("best") or {}
    facts = [
        ("run", _e(run_dir.name)),
        ("name", _e(summary.get("name", ""))),
        ("status", _e(summary.get("status", ""))),
        ("epochs", _num(summary.get("epochs"))),
        ("seconds", _num(summary.get("seconds"))),
        ("best epoch", _num(best.get("epoch"))),
        ("doctor findings", _num(summary.get("findings"))),
    ]
    facts += [("repair", _e(action)) for action in summary.get("repairs") or []]
    metrics = [
        (_e(key), _num(value), _num(best.get(key)) if key in best else "")
        for key, value in (summary.get("final") or {}).items()
    ]
    return _table(facts) + _table(metrics, header=("metric", "final", "best")) if metrics else _table(facts)


def _curves_section(history: Mapping[str, list[float]], validations: Mapping[str, list[float]]) -> str:
    from trainwise import plots

    if not history:
        return '<p class="muted">No epochs recorded.</p>'
    figure = plots.plot_history(history, validations=validations or None)
    return _img(_figure_png(figure), "loss and metric curves, training and validation")


def _lr_find_section(run_dir: Path) -> str | None:
    png = run_dir / "lr-find.png"
    if not png.is_file():
        return None
    found = _json(run_dir / "lr-find.json") or {}
    text = ""
    if "suggestion" in found:
        text = f"<p>Suggested lr {_num(found['suggestion'])} ({_e(found.get('confidence', ''))} confidence). "
        text += f"{_e(found.get('explanation', ''))}</p>"
    return text + _img(png.read_bytes(), "LR finder: loss against learning rate")


def _fit_section(run_dir: Path) -> str | None:
    png = run_dir / "fit.png"
    return _img(png.read_bytes(), "data and the model's curve") if png.is_file() else None


def _plain(text: str) -> str:
    """Text for a matplotlib label: a `$` would otherwise start mathtext, which can fail to render."""
    return text.replace("$", r"\$")


def _class_names(predictions: Mapping[str, Any]) -> list[str]:
    n = len(predictions["matrix"])
    names = [str(name) for name in predictions.get("class_names") or []]
    return [*names[:n], *map(str, range(len(names), n))]


def _confusion_section(predictions: Mapping[str, Any] | None) -> str | None:
    from trainwise import plots

    if predictions is None:
        return None
    matrix = [[int(count) for count in row] for row in predictions["matrix"]]
    names = _class_names(predictions)
    total = sum(map(sum, matrix))
    correct = sum(matrix[i][i] for i in range(len(matrix)))
    accuracy = f", accuracy {correct / total:.4g}" if total else ""
    split = str(predictions.get("split", ""))
    # the test split when the data has one (what the test metrics measure), else validation, else training
    note = " (the run has no validation or test split: the samples it trained on)" if split == "training" else ""
    caption = f"<p>On the {_e(split)} split: {total} samples{accuracy}{note}. Rows: true class.</p>"
    figure = _img(_figure_png(plots.plot_confusion(matrix, [_plain(name) for name in names])), "confusion matrix")
    rows = [[_e(name), *map(str, row)] for name, row in zip(names, matrix, strict=True)]
    table = _table(rows, header=("true \\ predicted", *map(_e, names)))
    return caption + figure + f'<div id="confusion-table">{table}</div>'


def class_scores(matrix: Sequence[Sequence[int]], class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Per-class precision, recall, F1 and support from a confusion matrix (`matrix[i][j]`: samples of true
    class i predicted as j, as predictions.json records it), with their macro and support-weighted averages.

    The numbers are scikit-learn's `precision_recall_fscore_support(y_true, y_pred, zero_division=0)` on the
    samples the matrix counts: the classes are those that occur in the labels or the predictions (the others,
    such as the extra outputs of a model wider than its labels, are listed under "left_out" and are not in the
    averages), precision is 0 for a class never predicted, recall 0 for a class with no samples.

    Args:
        matrix: the square confusion matrix, rows the true class.
        class_names: a name per class; missing names are the class numbers.

    Returns:
        {"classes": [{"label", "name", "precision", "recall", "f1", "support", "predicted"}, ...], "macro": {...},
        "weighted": {...}, "left_out": [names]}; each average has precision, recall, f1 and support (the total).
    """
    counts = [[int(count) for count in row] for row in matrix]
    n = len(counts)
    names = [str(name) for name in class_names or []]
    names = [*names[:n], *map(str, range(len(names), n))]
    support = [sum(row) for row in counts]
    predicted = [sum(row[j] for row in counts) for j in range(n)]
    classes: list[dict[str, Any]] = []
    for i in range(n):
        if not support[i] and not predicted[i]:
            continue
        tp = counts[i][i]
        # as scikit-learn: each a ratio of integer counts, 0 where its denominator is 0
        classes.append({
            "label": i,
            "name": names[i],
            "precision": tp / predicted[i] if predicted[i] else 0.0,
            "recall": tp / support[i] if support[i] else 0.0,
            "f1": 2 * tp / (support[i] + predicted[i]),  # 2tp / (2tp + fp + fn), never 0/0 for a present class
            "support": support[i],
            "predicted": predicted[i],
        })  # fmt: skip
    total = sum(support)
    keys = ("precision", "recall", "f1")
    macro = {key: math.fsum(c[key] for c in classes) / len(classes) if classes else math.nan for key in keys}
    weighted = {key: math.fsum(c[key] * c["support"] for c in classes) / total if total else math.nan for key in keys}
    left_out = [names[i] for i in range(n) if not support[i] and not predicted[i]]
    return {
        "classes": classes,
        "macro": {**macro, "support": total},
        "weighted": {**weighted, "support": total},
        "left_out": left_out,
    }


def _per_class_section(predictions: Mapping[str, Any] | None) -> str | None:
    if predictions is None or not predictions.get("matrix"):
        return None
    scores = class_scores(predictions["matrix"], _class_names(predictions))
    if not scores["classes"]:
        return None

    def row(name: str, values: Mapping[str, Any]) -> list[str]:
        return [name, *(f"{values[key]:.4f}" for key in ("precision", "recall", "f1")), str(values["support"])]

    rows = [row(_e(c["name"]), c) for c in scores["classes"]]
    rows += [row("macro avg", scores["macro"]), row("weighted avg", scores["weighted"])]
    table = _table(rows, header=("class", "precision", "recall", "F1", "support"))
    caption = (
        f"<p>On the {_e(predictions.get('split', ''))} split, from the confusion matrix. The macro average weighs "
        "every class the same, the weighted one each class by its support (its number of samples).</p>"
    )
    # the 0/0 cases, set to 0 as scikit-learn's zero_division=0 sets them: say which they are
    never = [_e(c["name"]) for c in scores["classes"] if not c["predicted"]]
    absent = [_e(c["name"]) for c in scores["classes"] if not c["support"]]
    notes = [
        *([f"Never predicted (precision 0): {', '.join(never)}."] if never else []),
        *([f"No samples here (recall 0): {', '.join(absent)}."] if absent else []),
        *([f"Left out, neither a label nor a prediction here: {', '.join(map(_e, scores['left_out']))}."]
          if scores["left_out"] else []),
    ]  # fmt: skip
    return caption + f'<div id="per-class-table">{table}</div>' + "".join(f"<p>{note}</p>" for note in notes)


def _misclassified_section(run_dir: Path, predictions: Mapping[str, Any] | None) -> str | None:
    file = run_dir / "misclassified.safetensors"
    if not file.is_file():
        return None
    from safetensors.torch import load_file

    from trainwise import plots

    tensors = load_file(str(file))
    names = [_plain(name) for name in _class_names(predictions)] if predictions else []

    def name(label: int) -> str:
        return names[label] if 0 <= label < len(names) else str(label)

    titles = [
        f"true {name(int(t))}\npredicted {name(int(p))}"
        for t, p in zip(tensors["true"].tolist(), tensors["predicted"].tolist(), strict=True)
    ]
    figure = plots.plot_image_grid(tensors["images"], titles)
    return f"<p>The first {len(titles)} misclassified examples.</p>" + _img(_figure_png(figure), "misclassified")


def _findings_section(findings: Sequence[Mapping[str, Any]] | None) -> str:
    if findings is None:
        return '<p class="muted">No findings recorded.</p>'
    if not findings:
        return "<p>The doctor found no problems.</p>"
    parts = []
    for finding in findings:
        severity = str(finding.get("severity", ""))
        kind = severity if severity in ("error", "warning", "info") else "other"  # a class name: known words only
        subject = f" [{_e(finding['subject'])}]" if finding.get("subject") else ""
        where = f" at step {_num(finding['step'])}" if finding.get("step") is not None else ""
        evidence = ", ".join(f"{_e(k)} {_num(v)}" for k, v in (finding.get("evidence") or {}).items())
        parts.append(
            f'<div class="finding {kind}"><b>{_e(severity)} {_e(finding.get("code", ""))}</b>{subject}{where}: '
            f"{_e(finding.get('message', ''))}"
            + (f"<br>Evidence: {evidence}" if evidence else "")
            + (f"<br>Fix: {_e(finding['suggestion'])}" if finding.get("suggestion") else "")
            + "</div>"
        )
    return "".join(parts)


def _environment_section(environment: Mapping[str, Any] | None) -> str:
    if environment is None:
        return '<p class="muted">No environment recorded (a run made before trainwise recorded it).</p>'
    return _table([(_e(key), _num(value)) for key, value in environment.items()], numbers=False)


def _timings_section(summary: Mapping[str, Any] | None, history: Mapping[str, list[float]]) -> str:
    epochs = [s for s in history.get("epoch_seconds", []) if math.isfinite(s)]
    total = (summary or {}).get("seconds", sum(epochs))
    rows = [("total seconds", _num(total))]
    if epochs:
        rows += [
            ("epochs timed", str(len(epochs))),
            ("seconds per epoch, mean", _num(statistics.fmean(epochs))),
            ("seconds per epoch, median", _num(statistics.median(epochs))),
            ("seconds per epoch, max", _num(max(epochs))),
        ]
    final = (summary or {}).get("final") or {}
    test = [(_e(key), _num(value)) for key, value in final.items() if str(key).startswith("test_")]
    text = _table(rows)
    if test:
        text += "<p>On the test split:</p>" + _table(test)
    return text


# ----------------------------------------------------------------------------- the page


def render_report(run_dir: Path) -> str:
    """The report of the run in `run_dir` as one HTML document (a pure function of the folder)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not any((run_dir / name).is_file() for name in _RUN_FILES):
        raise TrainwiseError(f"{run_dir}: not a run folder (no {', '.join(_RUN_FILES)}); pass a run's folder")
    summary = _json(run_dir / "summary.json")
    history = read_metrics(run_dir)
    predictions = _json(run_dir / "predictions.json")
    sections: list[tuple[str, str, Callable[[], str | None]]] = [
        ("config", "Config", lambda: _config_section(run_dir)),
        ("summary", "Summary", lambda: _summary_section(summary, run_dir)),
        ("curves", "Loss and metrics", lambda: _curves_section(history, read_validations(run_dir))),
        ("lr-find", "LR finder", lambda: _lr_find_section(run_dir)),
        ("fit", "Data and fit", lambda: _fit_section(run_dir)),
        ("confusion", "Confusion matrix", lambda: _confusion_section(predictions)),
        ("per-class", "Per-class metrics", lambda: _per_class_section(predictions)),
        ("misclassified", "Misclassified examples", lambda: _misclassified_section(run_dir, predictions)),
        ("findings", "Doctor's findings", lambda: _findings_section(_json(run_dir / "findings.json"))),
        ("environment", "Environment", lambda: _environment_section(_json(run_dir / "environment.json"))),
        ("timings", "Timings", lambda: _timings_section(summary, history)),
    ]
    built = [(key, title, body) for key, title, make in sections if (body := make()) is not None]
    name = (summary or {}).get("name") or run_dir.name
    status = (summary or {}).get("status", "running")
    nav = "".join(f'<a href="#{key}">{title}</a>' for key, title, _ in built)
    body = "".join(f'<section id="{key}"><h2>{title}</h2>{content}</section>' for key, title, content in built)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>trainwise report: {_e(name)}</title><style>{_STYLE}</style></head>"
        f'<body><header><h1>{_e(name)}</h1><p class="muted">run {_e(run_dir.name)}, {_e(status)}</p>'
        f"<nav>{nav}</nav></header>{body}</body></html>\n"
    )


def write_report(run_dir: Path, *, output: Path | None = None) -> Path:
    """Write the run's report (default run_dir/report.html) atomically and return its path."""
    target = Path(output) if output is not None else Path(run_dir) / REPORT_NAME
    text = render_report(Path(run_dir))
    try:
        atomic_write_text(target, text)
    except OSError as exc:
        raise TrainwiseError(f"{target}: cannot write the report ({exc.strerror or exc})") from None
    return target


def resolve_run(run: str | Path, runs_dir: str | Path | None = None) -> Path:
    """The folder of a run given by id, unique prefix, 'latest' or path (as `trainwise evaluate` takes
    them); a run folder outside the runs index (a Python fit with its own run_dir) works by path."""
    from trainwise.runs import RunIndex, runs_root

    try:
        return RunIndex(Path(runs_dir) if runs_dir else runs_root()).get(str(run)).path
    except TrainwiseError:
        folder = Path(run).expanduser()
        if folder.is_dir() and any((folder / name).is_file() for name in _RUN_FILES):
            return folder.resolve()
        raise


def report(run: str | Path, *, runs_dir: str | Path | None = None) -> Path:
    """Write the HTML report of a run (its folder, id, unique prefix or 'latest') and return its path:
    `trainwise.report(result.run)` after `fit(..., run_dir=...)`.

    Args:
        run: the run's folder, or its id, a unique prefix of it, or "latest", looked up in `runs_dir`.
        runs_dir: the runs folder to look in; None: ./runs (or $TRAINWISE_HOME/runs).
    """
    return write_report(resolve_run(run, runs_dir))
