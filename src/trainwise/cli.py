"""The command line: `trainwise fit | recipes | evaluate | predict | report | runs`.

The only module that reads argv. User mistakes (TrainwiseError, bad arguments) print one line,
"error: ...", on stderr and exit with 2; nothing the user does should end in a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from trainwise.errors import ConfigError, TrainwiseError

EXIT_USER_ERROR = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # as a shell reports a process that Ctrl-C ended
# Set to 1 to see the traceback of an unexpected error instead of its one-line summary.
DEBUG_ENV = "TRAINWISE_DEBUG"
# Output to a pipe or file: rich would squeeze tables into 80 columns and cut the names short.
_PIPE_WIDTH = 200


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = _PIPE_WIDTH
    return console


def _finite(value: Any) -> Any:
    """JSON has no NaN/Infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _summary_table(summary: dict[str, Any]) -> Any:
    from trainwise._display import results_table

    title = (
        f"{summary['recipe']}: {summary['status']}, {summary['epochs']} epochs in {summary['seconds']:.2f}s "
        f"on {summary['device']}"
    )
    return results_table(title, summary["final"], summary.get("best") or {}, summary.get("test"))


def cmd_fit(args: argparse.Namespace) -> int:
    from trainwise import distributed
    from trainwise.config import load_config
    from trainwise.recipes import run_config
    from trainwise.runs import RunIndex, runs_root

    if (args.nproc > 1 or args.nnodes > 1) and "LOCAL_RANK" not in os.environ:
        # this process launches; each launched one runs this same command line, as a rank of the run
        if args.recipe:  # a config mistake, or more processes than GPUs: one line now, not N processes failing
            distributed.check_gpus(args.nproc, load_config(args.recipe, args.set or []).train.device)
        try:
            distributed.launch(
                ["trainwise.cli", *args.argv],
                nproc=args.nproc,
                nnodes=args.nnodes,
                node_rank=args.node_rank,
                master_addr=args.master_addr,
                master_port=args.master_port,
            )
        except TrainwiseError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        return 0
    overrides = [*(args.set or []), *([f"train.doctor={args.doctor}"] if args.doctor else [])]
    root = Path(args.runs_dir) if args.runs_dir else runs_root()
    resume = None
    if args.resume:  # the run's own config, unless a recipe is named too
        resume = RunIndex(root).get(args.resume).path
        config = load_config(args.recipe or resume / "config.toml", overrides)
        done = _finished_training(resume, config.train.epochs)
        if done:
            print(done)
            return 0
    elif args.recipe:
        config = load_config(args.recipe, overrides)
    else:
        raise TrainwiseError("fit: name a recipe or a .toml file to train, or --resume RUN to continue a run")
    if args.quiet and config.train.doctor == "warn":
        config.train.doctor = "quiet"  # findings still land in the summary and the record
    err = _console(stderr=True)
    progress: bool | str = not (args.quiet or args.json)
    result = run_config(
        config,
        run_root=root,
        progress=progress,
        on_note=None if args.quiet else lambda note: err.print(f"note: {note}"),
        on_model=None if args.quiet or args.json else _print_summary,
        resume=resume,
    )
    if int(os.environ.get("RANK", "0")) != 0:  # process 0 of a distributed run speaks for all
        return 0
    summary = result.summary()
    if args.json:
        # default=str: a value JSON has no type for (a path, a finding) is still printed, not a crash
        print(json.dumps(_finite(summary), indent=1, default=str))
    elif not args.quiet:
        out = _console()
        out.print(_summary_table(summary))
        _print_findings(out, result.fit.findings, result.fit.doctor_actions)
        out.print(f"records: {summary['run']}")
    _fit_report(result.fit.run, args)
    if result.fit.status == "interrupted":
        return EXIT_INTERRUPTED
    return 0 if result.fit.status in ("completed", "stopped") else EXIT_FAILED


def _print_summary(model: Any, X: Any) -> None:
    """The model's layers, shapes and parameters before training (process 0 of a distributed run)."""
    from trainwise.models import summary

    if int(os.environ.get("RANK", "0")) != 0:
        return
    try:
        _console().print(summary(model, X.shape[1:], dtype=X.dtype))
    except TrainwiseError as exc:  # a model that cannot run on zeros still trains; say why no summary
        print(f"note: no model summary: {exc}", file=sys.stderr)


def _finished_training(run: Path, epochs: int) -> str | None:
    """What to say instead of resuming when the run's newest checkpoint has nothing left to train."""
    from trainwise.checkpoint import CHECKPOINTS, STATE, checkpoints_in

    found = checkpoints_in(run / CHECKPOINTS) if (run / CHECKPOINTS).is_dir() else []
    try:
        info = json.loads((found[-1] / STATE).read_text()) if found else {}
    except (OSError, ValueError):
        return None  # a damaged newest checkpoint: resuming skips it with its own message
    epoch, mid_epoch = int(info.get("epoch", -1)), bool(info.get("batch"))
    if info.get("stop_training") and not mid_epoch:
        reason = f"stopped early at epoch {epoch}"
    elif epoch >= epochs and not mid_epoch:
        reason = f"{epoch} of {epochs} epochs trained"
    else:
        return None
    return (f"{run.name} is already complete ({reason}); nothing to resume. To train it further, add "
            f"--set train.epochs=N with N above {epoch}; to train anew, run `trainwise fit` on its recipe")  # fmt: skip


def _fit_report(run: Path | None, args: argparse.Namespace) -> None:
    """The HTML report of a finished fit: its path on stdout (stderr with --json, which keeps stdout pure
    JSON; nothing with --quiet). The run is recorded already, so a failure here is only a warning."""
    from trainwise.run_report import write_report

    if run is None:
        return
    try:
        path = write_report(run)
    except Exception as exc:  # the run must not look failed because its report could not be drawn
        print(f"warning: no report for {run.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return
    if not args.quiet:
        print(f"report: {path}", file=sys.stderr if args.json else sys.stdout)


SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def _print_findings(out: Any, findings: Sequence[Any], actions: Sequence[str] = ()) -> None:
    """The doctor's findings under the summary: one line each, errors first."""
    from rich.text import Text

    if not findings:
        out.print("doctor: no problems found")
        return
    out.print(f"doctor: {len(findings)} finding(s)")
    for finding in findings:
        out.print(Text(f"  {finding.format()}", style=SEVERITY_STYLE.get(finding.severity, "")))
    for action in actions:
        out.print(f"  repair: {action}")


def cmd_check(args: argparse.Namespace) -> int:
    """Pre-flight checks of a recipe's data, model and loss: one forward/backward pass, no training."""
    from trainwise.config import load_config
    from trainwise.doctor import check
    from trainwise.recipes import tool_inputs

    config = load_config(args.recipe, args.set or [])
    inputs = tool_inputs(config)
    lr = 1e-3 if config.optim.lr == "auto" else config.optim.lr  # one step: any lr shows the wiring
    findings = check(inputs.model, (inputs.X, inputs.y), loss=inputs.loss, optimizer=config.optim.name,
                     lr=lr, feature_names=inputs.feature_names)  # fmt: skip
    if args.json:
        print(json.dumps(_finite([f.to_dict() for f in findings]), indent=1))
    else:
        _print_findings(_console(), findings)
    return 1 if any(f.severity == "error" for f in findings) else 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Run a Python script unmodified, as `python SCRIPT ARGS...` would, with every training loop in it watched
    by the doctor (trainwise.autowatch); findings go to stderr as they happen and in a summary at the end.
    The exit code is the script's own, unless --fail-on turns findings of that severity into 1."""
    import runpy

    from trainwise.doctor import autowatch

    script = Path(args.script)
    if not script.is_file():
        raise ConfigError(f"{script}: no such script; pass the path of a Python file: trainwise doctor train.py")
    session = autowatch(mode="warn", printer=lambda line: print(line, file=sys.stderr, flush=True))
    saved_argv, folder = sys.argv, str(script.resolve().parent)
    sys.argv = [str(script), *args.script_args]
    sys.path.insert(0, folder)  # as python does: the script's folder first, for its own imports
    code = 0
    try:
        with session:
            runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_FAILED)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except BaseException as exc:  # the script's own error: its traceback, as python prints it
        _print_script_traceback(exc, script)
        code = EXIT_FAILED
    finally:
        sys.argv = saved_argv
        if folder in sys.path:
            sys.path.remove(folder)
    print(session.report(), file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(_finite([f.to_dict() for f in session.findings]), indent=1) + "\n")
    severities = {"error": ("error",), "warning": ("error", "warning")}.get(args.fail_on or "", ())
    if code == 0 and any(f.severity in severities for f in session.findings):
        code = EXIT_FAILED
    return code


def _print_script_traceback(exc: BaseException, script: Path) -> None:
    """The traceback from the script's first frame on (trainwise's and runpy's frames are not the user's)."""
    import traceback

    tb = exc.__traceback__
    while tb is not None and Path(tb.tb_frame.f_code.co_filename).resolve() != script.resolve():
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb or exc.__traceback__, file=sys.stderr)


def cmd_gradcheck(args: argparse.Namespace) -> int:
    """Autograd against finite differences for every parameter of a recipe's model: exit 1 on a mismatch."""
    from trainwise.config import load_config
    from trainwise.gradient_check import gradcheck
    from trainwise.recipes import tool_inputs

    inputs = tool_inputs(load_config(args.recipe, args.set or []))
    result = gradcheck(inputs.model, (inputs.X, inputs.y), loss=inputs.loss, samples=args.samples)
    if args.json:
        print(json.dumps(_finite(result.to_dict()), indent=1))
    else:
        for note in inputs.notes:
            _console(stderr=True).print(f"note: {note}")
        _console().print(result)
    return 0 if result.ok else EXIT_FAILED


def cmd_lr_find(args: argparse.Namespace) -> int:
    """The LR finder on a recipe's model and data: prints the suggestion and writes the plot."""
    from trainwise.config import load_config
    from trainwise.recipes import find_lr
    from trainwise.runs import _slug, runs_root

    config = load_config(args.recipe, args.set or [])
    result = find_lr(config, start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps, trial_steps=args.trial_steps)
    plot = (
        Path(args.plot)
        if args.plot
        # the config's name, made a plain file name: `name = "../../x"` must not write outside the runs folder
        else (Path(args.runs_dir) if args.runs_dir else runs_root()) / f"lr-find-{_slug(config.name or 'config')}.png"
    )
    try:
        result.plot(plot)
    except OSError as exc:
        raise TrainwiseError(f"--plot {plot}: cannot write it ({exc.strerror or exc})") from None
    if args.json:
        print(json.dumps(_finite({**result.to_dict(), "plot": str(plot)}), indent=1))
    else:
        out = _console()
        out.print(f"suggested lr: {result.suggestion:.3g} ({result.confidence} confidence)")
        out.print(result.explanation, markup=False)
        out.print(f"plot: {plot}")
        out.print(f"train with it: trainwise fit {args.recipe} --set optim.lr={result.suggestion:.3g}")
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    from rich.table import Table

    from trainwise.config import load_config, recipe_names

    table = Table(title="built-in recipes (trainwise fit NAME)")
    table.add_column("recipe", style="bold", no_wrap=True)
    table.add_column("workload")
    table.add_column("description")
    for name in recipe_names():
        config = load_config(name)
        table.add_row(name, config.workload, config.description)
    _console().print(table)
    return 0


def _load_run(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(run folder, config, model with its trained weights) of a recorded run; with --weights, the weights
    (or, with --trust-pickle, the whole pickled model) from that file instead."""
    from trainwise.checkpoint import load
    from trainwise.config import load_config
    from trainwise.runs import RunIndex, runs_root

    row = RunIndex(Path(args.runs_dir) if args.runs_dir else runs_root()).get(args.run)
    path = row.path
    for required in ("config.toml", "model.json", "model.safetensors"):
        if not (path / required).is_file():
            raise TrainwiseError(f"run {row.id}: {required} is missing from {path}; the run did not finish writing")
    try:
        config = load_config(path / "config.toml")
    except ConfigError as exc:  # say whose config it is: the user did not type this one
        raise ConfigError(f"run {row.id}: its config.toml no longer validates: {exc}") from None
    model = load(path)
    if args.weights:
        model = load(args.weights, model=model, trust_pickle=args.trust_pickle)
    return path, config, model


def _transform(path: Path) -> Any:
    from trainwise.data import AffineTransform

    file = path / "transform.json"
    return AffineTransform.from_dict(json.loads(file.read_text())) if file.is_file() else None


def _splits(config: Any, dataset: Any) -> dict[str, tuple[Any, Any]]:
    """The data splits a run saw: a val_split is redrawn with the run's seed, as training drew it."""
    from trainwise.data import split_indices

    splits = {
        "test": (dataset.X_test, dataset.y_test),
        "val": (dataset.X_val, dataset.y_val),
        "train": (dataset.X, dataset.y),
    }
    if config.data.val_split and dataset.X_val is None:
        train_idx, val_idx = split_indices(
            dataset.y, config.data.val_split, seed=config.train.seed, stratify=config.data.stratify
        )
        splits["train"] = (dataset.X[train_idx], dataset.y[train_idx])
        splits["val"] = (dataset.X[val_idx], dataset.y[val_idx])
    return splits


def cmd_evaluate(args: argparse.Namespace) -> int:
    from trainwise.loop import evaluate
    from trainwise.recipes import config_loss, load_data

    path, config, model = _load_run(args)
    dataset, _ = load_data(config)
    splits = _splits(config, dataset)
    split = args.split or next((s for s in ("test", "val", "train") if splits[s][0] is not None), "train")
    X, y = splits[split]
    if X is None:
        available = ", ".join(s for s in ("test", "val", "train") if splits[s][0] is not None)
        raise TrainwiseError(f"--split {split}: {config.data.name} has no {split} split; use --split {available}")
    loss = config_loss(config, dataset)  # the training run's loss: its balanced weights from the same labels
    values = evaluate(model, (X, y), loss=loss, metrics=config.train.metrics, transform=_transform(path))
    if args.json:
        print(json.dumps(_finite({"run": path.name, "split": split, "samples": len(X), **values})))
    else:
        _console().print(
            f"{path.name} on {split} ({len(X)} samples): " + "  ".join(f"{k} {v:.6g}" for k, v in values.items())
        )
    return 0


def _read_inputs(file: Path) -> Any:
    """Input rows from a .csv (an optional header row is skipped) or .npy file, as a float32 array."""
    import numpy as np

    if file.is_dir():
        raise TrainwiseError(f"{file}: is a directory; --input takes a .csv or .npy file of input rows")
    if not file.is_file():
        raise TrainwiseError(f"{file}: no such file; --input takes a .csv or .npy file of input rows")
    name = file.name.lower()
    try:
        if name.endswith(".npy"):
            array = np.load(file, allow_pickle=False)
            if array.dtype.kind not in "biuf":
                raise TrainwiseError(f"{file}: holds {array.dtype} values; save the input rows as numbers")
            array = array.astype(np.float32)
        elif name.endswith((".csv", ".csv.gz")):
            with warnings.catch_warnings():  # an empty file: reported below, not as a numpy warning
                warnings.simplefilter("ignore")
                array = np.loadtxt(file, delimiter=",", ndmin=2, dtype=np.float32, skiprows=_header_rows(file))
        else:
            raise TrainwiseError(f"{file}: unsupported input format {file.suffix!r}; use .csv or .npy")
    except (ValueError, OSError, EOFError) as exc:
        raise TrainwiseError(f"{file}: cannot read numbers from it ({exc})") from None
    if array.ndim == 0 or array.shape[0] == 0:
        raise TrainwiseError(f"{file}: has no input rows; write one sample per row")
    return array


def _header_rows(file: Path) -> int:
    """1 when the first line is a header (as for a CSV data set: a field that is not a number), else 0."""
    import gzip

    from trainwise.datasets import is_header

    opener: Any = gzip.open if file.name.lower().endswith(".gz") else open
    with opener(file, "rt") as handle:
        first = handle.readline().strip()
    return 1 if first and is_header(first.split(",")) else 0


def _scaled(X: Any, transform: Any) -> Any:
    """The stored input scaling applied to X; per-channel image scaling also fits flat rows."""
    scale, shift = transform.scale, transform.shift
    if X.ndim == 2 and scale.ndim == 3:  # (C, 1, 1) image statistics, (N, C*H*W) rows
        channels = scale.shape[0]
        if X.shape[1] % channels == 0:
            rows = X.reshape(X.shape[0], channels, -1) * scale.reshape(channels, 1) + shift.reshape(channels, 1)
            return rows.reshape(X.shape[0], -1)
    return transform(X)


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from trainwise.data import poly_features
    from trainwise.loop import predict
    from trainwise.losses import CLASSIFICATION_LOSSES, loss_name

    path, config, model = _load_run(args)
    inputs = _read_inputs(Path(args.input))
    description = json.loads((path / "model.json").read_text())
    # a build_model spec: this version's model.json keeps it under "build", a run recorded before at the top
    spec = (description.get("build") or {}).get("spec") or description
    X = torch.as_tensor(inputs, dtype=torch.float32)
    if X.ndim == 1:  # a 1-D .npy: one value per sample
        X = X.unsqueeze(1)
    degree = config.data.poly_features
    width, expected = int(np.prod(X.shape[1:])), spec["in_features"] // max(degree, 1)
    if width != expected:
        raise TrainwiseError(f"{args.input}: rows have {width} values but the model takes {expected}")
    if degree:  # the features the model was trained on, made before scaling as in training
        X = poly_features(X, degree)
    transform = _transform(path)
    if transform is not None:
        X = _scaled(X, transform)
    outputs = predict(model, X)
    if loss_name(config.loss.name) in CLASSIFICATION_LOSSES:
        column = outputs.argmax(dim=1).numpy()[:, None]
        header = "class"
    else:
        column = outputs.reshape(len(X), -1).numpy()
        header = ",".join(f"y{i}" for i in range(column.shape[1]))
    if not args.output:
        np.savetxt(sys.stdout, column, delimiter=",", header=header, comments="", fmt="%.7g")
        return 0
    try:
        with open(args.output, "w") as destination:
            np.savetxt(destination, column, delimiter=",", header=header, comments="", fmt="%.7g")
    except OSError as exc:
        raise TrainwiseError(f"--output {args.output}: cannot write it ({exc.strerror or exc})") from None
    return 0


def _show_comparison(comparison: Any, plot: Path, as_json: bool) -> int:
    """The ranked table (or its rows as JSON on stdout) and the loss-curve overlay written to `plot`."""
    comparison.plot(plot)
    if as_json:
        print(json.dumps(_finite(comparison.to_dicts()), indent=1, default=str))
        _console(stderr=True).print(f"plot: {plot}", markup=False)
        return 0
    out = _console()
    out.print(comparison.table())
    out.print(f"best: {comparison.best.label}", markup=False)
    out.print(f"plot: {plot}", markup=False)
    return 0


def _runs_compare(args: argparse.Namespace) -> int:
    """`trainwise runs compare ID ID ...`: rank recorded runs as `compare` ranks fresh ones."""
    from trainwise.comparison import compare_runs, default_plot_path
    from trainwise.runs import runs_root

    root = Path(args.runs_dir) if args.runs_dir else runs_root()
    comparison = compare_runs(args.refs, runs_dir=root, rank_by=args.rank_by)
    return _show_comparison(comparison, Path(args.plot) if args.plot else default_plot_path(root, "runs"), args.json)


def cmd_compare(args: argparse.Namespace) -> int:
    """Train every combination of the --vary values, rank the runs and overlay their loss curves."""
    from trainwise.comparison import compare, default_plot_path, parse_vary
    from trainwise.runs import runs_root

    vary = parse_vary(args.vary)
    root = Path(args.runs_dir) if args.runs_dir else runs_root()
    err = _console(stderr=True)
    comparison = compare(
        args.recipe,
        vary,
        overrides=args.set or [],
        run_root=root,
        progress=False if args.json else lambda line: err.print(line, markup=False),
        rank_by=args.rank_by,
        max_runs=args.max_runs,
    )
    plot = Path(args.plot) if args.plot else default_plot_path(root, comparison.title)
    return _show_comparison(comparison, plot, args.json)


def _example_input(path: Path, config: Any) -> Any:
    """One batch of the inputs a run's model was trained on, for tracing (which runs the model once): zeros
    of the shape and dtype model.json records; a run recorded before model.json kept them loads its data
    for one sample instead."""
    import torch

    from trainwise.recipes import load_data

    file = path / "model.json"
    recorded = json.loads(file.read_text()).get("input")  # _load_run has rebuilt the model from it: a dict
    if recorded is None:
        dataset, _ = load_data(config)
        example = dataset.X[:1].float()
    else:
        fields = recorded if isinstance(recorded, dict) else {}
        shape, dtype = fields.get("shape"), getattr(torch, str(fields.get("dtype")), None)
        sizes = shape if isinstance(shape, list) and all(type(n) is int and n >= 1 for n in shape) else None
        if sizes is None or not isinstance(dtype, torch.dtype):
            raise TrainwiseError(
                f'{file}: its "input" should be {{"shape": [sizes of one sample], "dtype": "float32"}}, '
                f"got {json.dumps(recorded)}"
            )
        example = torch.zeros((1, *sizes), dtype=dtype)
    transform = _transform(path)
    return transform(example) if transform is not None else example


def cmd_export(args: argparse.Namespace) -> int:
    """Export a recorded run's model as a trainwise.save folder, TorchScript or ONNX."""
    from trainwise.checkpoint import export

    path, config, model = _load_run(args)
    example = None if args.format == "safetensors" else _example_input(path, config)
    suffix = {"safetensors": "", "torchscript": ".pt", "onnx": ".onnx"}.get(args.format, "")
    output = Path(args.output) if args.output else path / f"export-{args.format}{suffix}"
    written = export(model, output, format=args.format, example=example)
    _console().print(f"{args.format} export: {written}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write a recorded run's self-contained HTML report and print its path."""
    from trainwise.run_report import resolve_run, write_report

    run = resolve_run(args.run, args.runs_dir)
    print(write_report(run, output=Path(args.output) if args.output else None))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from trainwise.runs import RunIndex, format_runs_table, runs_root

    if getattr(args, "runs_action", None) == "compare":
        return _runs_compare(args)
    root = Path(args.runs_dir) if args.runs_dir else runs_root()
    rows = RunIndex(root).list()
    if args.json:
        print(json.dumps(_finite([{**r.__dict__, "path": str(r.path)} for r in rows]), indent=1))
    elif not rows:
        _console().print(f"no runs in {root} yet; `trainwise fit RECIPE` makes one")
    else:
        _console().print(format_runs_table(rows))
    return 0


def _weights_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights", metavar="FILE",
        help="use these weights in the run's model: .safetensors, or a .pt/.pth state_dict (loaded without unpickling)",
    )  # fmt: skip
    parser.add_argument(
        "--trust-pickle", action="store_true",
        help="let --weights be a whole pickled model (torch.save(model)); unpickling runs code: trusted files only",
    )  # fmt: skip


def _version() -> str:
    from trainwise import __version__

    return __version__


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one "error: ..." line like every other mistake."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"error: {self.prog}: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="trainwise", description="Train PyTorch models, with a training doctor.")
    parser.add_argument("--version", action="version", version=f"trainwise {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    runs_dir: dict[str, Any] = {"help": "runs folder (default: $TRAINWISE_HOME/runs or ./runs)"}

    fit = sub.add_parser("fit", help="train a recipe or a TOML config")
    fit.add_argument("recipe", nargs="?", help="a built-in recipe name (see `trainwise recipes`) or a .toml file")
    fit.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value")
    fit.add_argument("--quiet", action="store_true", help="print nothing but errors")
    fit.add_argument("--json", action="store_true", help="print the final summary as JSON")
    fit.add_argument(
        "--doctor", choices=("warn", "stop", "repair", "quiet", "off"), help="the training doctor (default: warn)"
    )
    fit.add_argument(
        "--resume", metavar="RUN", help="continue a run from its latest checkpoint (run id, prefix, 'latest' or path)"
    )
    fit.add_argument("--runs-dir", **runs_dir)
    scale = fit.add_argument_group("distributed data-parallel (torchrun)")
    scale.add_argument("--nproc", type=int, default=1, metavar="N", help="processes on this machine (one per GPU)")
    scale.add_argument("--nnodes", type=int, default=1, metavar="N", help="machines taking part (default 1)")
    scale.add_argument("--node-rank", type=int, default=0, metavar="I", help="this machine's index, 0..nnodes-1")
    scale.add_argument("--master-addr", metavar="HOST", help="address of machine 0 (several machines)")
    scale.add_argument("--master-port", type=int, metavar="PORT", help="a free port on machine 0 (default 29500)")
    fit.set_defaults(func=cmd_fit)

    check = sub.add_parser("check", help="pre-flight checks of a recipe's data, model and loss (no training)")
    check.add_argument("recipe", help="a built-in recipe name or a .toml file")
    check.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value")
    check.add_argument("--json", action="store_true", help="print the findings as JSON")
    check.set_defaults(func=cmd_check)

    doctor = sub.add_parser(
        "doctor", help="run a training script unmodified, with every training loop in it watched by the doctor"
    )
    doctor.add_argument("script", help="the Python script, run as __main__ (python SCRIPT ARGS...)")
    doctor.add_argument("script_args", nargs=argparse.REMAINDER, metavar="ARGS", help="the script's own arguments")
    doctor.add_argument("--json", metavar="FILE", help="also write the findings to FILE as JSON")
    doctor.add_argument(
        "--fail-on",
        choices=("error", "warning"),
        help="exit 1 on findings of this severity (default: the script's code)",
    )
    doctor.set_defaults(func=cmd_doctor)

    grad = sub.add_parser("gradcheck", help="compare autograd gradients with finite differences (no training)")
    grad.add_argument("recipe", help="a built-in recipe name or a .toml file")
    grad.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value")
    grad.add_argument("--samples", type=int, default=256, metavar="N", help="training samples to use (default 256)")
    grad.add_argument("--json", action="store_true", help="print the result as JSON")
    grad.set_defaults(func=cmd_gradcheck)

    recipes = sub.add_parser("recipes", help="list the built-in recipes")
    recipes.set_defaults(func=cmd_recipes)

    lr_find = sub.add_parser("lr-find", help="sweep the learning rate on a recipe and suggest one")
    lr_find.add_argument("recipe", help="a built-in recipe name or a .toml file")
    lr_find.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value")
    lr_find.add_argument("--start-lr", type=float, default=1e-7, help="first lr of the sweep (default 1e-7)")
    lr_find.add_argument("--end-lr", type=float, default=10.0, help="last lr of the sweep (default 10)")
    lr_find.add_argument("--steps", type=int, default=100, help="steps of the sweep (default 100)")
    lr_find.add_argument(
        "--trial-steps", type=int, default=1000, help="steps of each trial run (default 1000; 0: no trials)"
    )
    lr_find.add_argument("--plot", help="write the plot here (default: lr-find-RECIPE.png in the runs folder)")
    lr_find.add_argument("--json", action="store_true", help="print the result as JSON")
    lr_find.add_argument("--runs-dir", **runs_dir)
    lr_find.set_defaults(func=cmd_lr_find)

    evaluate = sub.add_parser("evaluate", help="evaluate a recorded run's model")
    evaluate.add_argument("run", help="run id, unique prefix, 'latest' or path")
    evaluate.add_argument("--split", choices=("test", "val", "train"))
    evaluate.add_argument("--json", action="store_true")
    _weights_arguments(evaluate)
    evaluate.add_argument("--runs-dir", **runs_dir)
    evaluate.set_defaults(func=cmd_evaluate)

    predict = sub.add_parser("predict", help="predict with a recorded run's model")
    predict.add_argument("run", help="run id, unique prefix, 'latest' or path")
    predict.add_argument("--input", required=True, help="a .csv or .npy file of input rows")
    predict.add_argument("--output", help="write the predictions here (CSV) instead of stdout")
    _weights_arguments(predict)
    predict.add_argument("--runs-dir", **runs_dir)
    predict.set_defaults(func=cmd_predict)

    export = sub.add_parser("export", help="export a recorded run's model (safetensors, torchscript, onnx)")
    export.add_argument("run", help="run id, unique prefix, 'latest' or path")
    export.add_argument("--format", default="safetensors", choices=("safetensors", "torchscript", "onnx"))
    export.add_argument("--output", help="where to write it (default: export-FORMAT in the run folder)")
    _weights_arguments(export)
    export.add_argument("--runs-dir", **runs_dir)
    export.set_defaults(func=cmd_export)

    report = sub.add_parser("report", help="write a recorded run's HTML report (self-contained, no network)")
    report.add_argument("run", help="run id, unique prefix, 'latest' or path")
    report.add_argument("--output", metavar="PATH", help="where to write it (default: report.html in the run folder)")
    report.add_argument("--runs-dir", **runs_dir)
    report.set_defaults(func=cmd_report)

    rank_by: dict[str, Any] = {
        "default": "loss",
        "metavar": "METRIC",
        "help": "rank by this final metric: loss (default), val_loss, test_accuracy, ... (accuracies: highest first)",
    }
    compare = sub.add_parser("compare", help="train a grid of config values and rank the runs side by side")
    compare.add_argument("recipe", help="a built-in recipe name or a .toml file")
    compare.add_argument(
        "--vary", action="append", required=True, metavar="SECTION.KEY=V1,V2,...",
        help="values to try for a config key (repeat for a grid: every combination is trained)",
    )  # fmt: skip
    compare.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a value in every run")
    compare.add_argument("--rank-by", **rank_by)
    compare.add_argument("--plot", metavar="PATH", help="write the loss-curve overlay here (default: runs folder)")
    compare.add_argument("--json", action="store_true", help="print the ranked rows as JSON")
    compare.add_argument(
        "--max-runs", type=int, default=64, metavar="N", help="refuse grids of more combinations (default: 64)"
    )
    compare.add_argument("--runs-dir", **runs_dir)
    compare.set_defaults(func=cmd_compare)

    runs = sub.add_parser(
        "runs",
        help="list recorded runs, or compare some: runs compare ID ID ...",
        usage="trainwise runs [--json] [--runs-dir RUNS_DIR]\n"
        "       trainwise runs compare ID [ID ...] [--rank-by METRIC] [--plot PATH] [--json] [--runs-dir RUNS_DIR]",
    )
    runs.add_argument("--json", action="store_true")
    runs.add_argument("--runs-dir", **runs_dir)
    runs.set_defaults(func=cmd_runs)
    runs_actions = runs.add_subparsers(dest="runs_action", metavar="ACTION")
    runs_compare = runs_actions.add_parser(
        "compare", prog="trainwise runs compare", help="rank recorded runs and overlay their loss curves"
    )
    runs_compare.add_argument("refs", nargs="+", metavar="ID", help="run id, unique prefix, 'latest' or path")
    runs_compare.add_argument("--rank-by", **rank_by)
    runs_compare.add_argument("--plot", metavar="PATH", help="write the loss-curve overlay here")
    # SUPPRESS: when not given here, `runs --json compare ...` keeps the value the runs parser read
    runs_compare.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print rows as JSON")
    runs_compare.add_argument("--runs-dir", default=argparse.SUPPRESS, help=runs_dir["help"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already printed): a code, not an exit
        return exc.code if isinstance(exc.code, int) else EXIT_USER_ERROR
    args.argv = argv
    try:
        code: int = args.func(args)
        return code
    except TrainwiseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `trainwise runs | head`: the reader left; nothing more to say
        # send what is still buffered to /dev/null, or the exit flush raises BrokenPipeError again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as exc:
        # Not a mistake trainwise recognised (often one torch reports, e.g. a class label >= outputs):
        # one line, as for the others; the traceback is there for whoever debugs it.
        if os.environ.get(DEBUG_ENV):
            raise
        text = str(exc).strip().splitlines()
        print(
            f"error: {type(exc).__name__}: {text[0] if text else 'no message'} "
            f"(set {DEBUG_ENV}=1 to see the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
