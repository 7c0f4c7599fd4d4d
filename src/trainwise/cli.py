"""The command line: `trainwise fit | recipes | evaluate | predict | runs`.

The only module that reads argv. User mistakes (TrainwiseError) print one line and exit with 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainwise.errors import TrainwiseError

EXIT_USER_ERROR = 2


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _finite(value: Any) -> Any:
    """JSON has no NaN/Infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _summary_table(summary: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(
        title=f"{summary['recipe']}: {summary['status']}, {summary['epochs']} epochs in {summary['seconds']:.2f}s "
        f"on {summary['device']}"
    )
    table.add_column("", style="bold")
    table.add_column("final", justify="right")
    best = summary.get("best") or {}
    table.add_column(f"best (epoch {int(best.get('epoch', 0))})", justify="right")
    for key, value in summary["final"].items():
        if key == "lr":
            continue
        table.add_row(key, f"{value:.6g}", f"{best[key]:.6g}" if key in best else "")
    for key, value in (summary.get("test") or {}).items():
        table.add_row(f"test_{key}", f"{value:.6g}", "")
    return table


def cmd_fit(args: argparse.Namespace) -> int:
    from trainwise.config import load_config
    from trainwise.recipes import run_config
    from trainwise.runs import runs_root

    config = load_config(args.recipe, args.set or [])
    err = _console(stderr=True)
    progress: bool | str = not (args.quiet or args.json)
    result = run_config(
        config,
        run_root=Path(args.runs_dir) if args.runs_dir else runs_root(),
        progress=progress,
        on_note=lambda note: err.print(f"note: {note}"),
    )
    summary = result.summary()
    if args.json:
        print(json.dumps(_finite(summary), indent=1))
    elif not args.quiet:
        out = _console()
        out.print(_summary_table(summary))
        out.print(f"records: {summary['run']}")
    return 0 if result.fit.status in ("completed", "stopped") else 1


def cmd_recipes(args: argparse.Namespace) -> int:
    from rich.table import Table

    from trainwise.config import load_config, recipe_names

    table = Table(title="built-in recipes (trainwise fit NAME)")
    table.add_column("recipe", style="bold")
    table.add_column("workload")
    table.add_column("description")
    for name in recipe_names():
        config = load_config(name)
        table.add_row(name, config.workload, config.description)
    _console().print(table)
    return 0


def _load_run(ref: str, runs_dir: str | None) -> tuple[Any, Any, Any]:
    """(run folder, config, model with its trained weights) of a recorded run."""
    from safetensors.torch import load_model

    from trainwise.config import load_config
    from trainwise.recipes import model_from_spec
    from trainwise.runs import RunIndex, runs_root

    row = RunIndex(Path(runs_dir) if runs_dir else runs_root()).get(ref)
    path = row.path
    for required in ("config.toml", "model.json", "model.safetensors"):
        if not (path / required).is_file():
            raise TrainwiseError(
                f"run {row.id}: {required} is missing from {path}; the run did not finish writing"
            )
    config = load_config(path / "config.toml")
    model = model_from_spec(json.loads((path / "model.json").read_text()))
    try:
        load_model(model, str(path / "model.safetensors"))
    except Exception as exc:  # safetensors raises plain errors for a damaged file or a shape mismatch
        raise TrainwiseError(
            f"run {row.id}: model.safetensors does not load into the model ({exc})"
        ) from None
    return path, config, model


def _transform(path: Path) -> Any:
    from trainwise.data import AffineTransform

    file = path / "transform.json"
    return AffineTransform.from_dict(json.loads(file.read_text())) if file.is_file() else None


def cmd_evaluate(args: argparse.Namespace) -> int:
    from trainwise.loop import evaluate
    from trainwise.losses import make_loss
    from trainwise.recipes import load_data

    path, config, model = _load_run(args.run, args.runs_dir)
    dataset, _ = load_data(config)
    splits = {
        "test": (dataset.X_test, dataset.y_test),
        "val": (dataset.X_val, dataset.y_val),
        "train": (dataset.X, dataset.y),
    }
    split = args.split or next((s for s in ("test", "val", "train") if splits[s][0] is not None), "train")
    X, y = splits[split]
    if X is None:
        raise TrainwiseError(f"{config.data.name} has no {split} split; use --split train")
    loss = make_loss(config.loss.name, reduction=config.loss.reduction, **config.loss.options)
    values = evaluate(model, (X, y), loss=loss, metrics=config.train.metrics, transform=_transform(path))
    if args.json:
        print(json.dumps(_finite({"run": path.name, "split": split, **values})))
    else:
        _console().print(
            f"{path.name} on {split} ({len(X)} samples): "
            + "  ".join(f"{k} {v:.6g}" for k, v in values.items())
        )
    return 0


def _read_inputs(file: Path) -> Any:
    import numpy as np

    if not file.is_file():
        raise TrainwiseError(f"{file}: no such file; --input takes a .csv or .npy file of input rows")
    try:
        if file.suffix == ".npy":
            return np.load(file, allow_pickle=False)
        if file.suffix == ".csv":
            return np.loadtxt(file, delimiter=",", ndmin=2, dtype=np.float32)
    except ValueError as exc:
        raise TrainwiseError(f"{file}: cannot read numbers from it ({exc})") from None
    raise TrainwiseError(f"{file}: unsupported input format {file.suffix!r}; use .csv or .npy")


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from trainwise.data import poly_features
    from trainwise.loop import predict
    from trainwise.losses import CLASSIFICATION_LOSSES

    path, config, model = _load_run(args.run, args.runs_dir)
    inputs = _read_inputs(Path(args.input))
    spec = json.loads((path / "model.json").read_text())
    import torch

    X = torch.as_tensor(inputs, dtype=torch.float32)
    if config.data.poly_features:
        X = poly_features(X, config.data.poly_features)
    if X.ndim == 1:
        X = X.unsqueeze(1)
    if int(np.prod(X.shape[1:])) != spec["in_features"]:
        width = int(np.prod(X.shape[1:]))
        raise TrainwiseError(
            f"{args.input}: rows have {width} values but the model takes {spec['in_features']}"
        )
    outputs = predict(model, X, transform=_transform(path))
    if config.loss.name in CLASSIFICATION_LOSSES:
        column = outputs.argmax(dim=1).numpy()[:, None]
        header = "class"
    else:
        column = outputs.reshape(outputs.shape[0], -1).numpy()
        header = ",".join(f"y{i}" for i in range(column.shape[1]))
    destination = open(args.output, "w") if args.output else sys.stdout  # noqa: SIM115
    try:
        np.savetxt(destination, column, delimiter=",", header=header, comments="", fmt="%.7g")
    finally:
        if args.output:
            destination.close()
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from trainwise.runs import RunIndex, format_runs_table, runs_root

    root = Path(args.runs_dir) if args.runs_dir else runs_root()
    rows = RunIndex(root).list()
    if args.json:
        print(json.dumps(_finite([{**r.__dict__, "path": str(r.path)} for r in rows]), indent=1))
    elif not rows:
        _console().print(f"no runs in {root} yet; `trainwise fit RECIPE` makes one")
    else:
        _console().print(format_runs_table(rows))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trainwise", description="Train PyTorch models, with a training doctor."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    runs_dir: dict[str, Any] = {"help": "runs folder (default: $TRAINWISE_HOME/runs or ./runs)"}

    fit = sub.add_parser("fit", help="train a recipe or a TOML config")
    fit.add_argument("recipe", help="a built-in recipe name (see `trainwise recipes`) or a .toml file")
    fit.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value")
    fit.add_argument("--quiet", action="store_true", help="print nothing but errors")
    fit.add_argument("--json", action="store_true", help="print the final summary as JSON")
    fit.add_argument("--runs-dir", **runs_dir)
    fit.set_defaults(func=cmd_fit)

    recipes = sub.add_parser("recipes", help="list the built-in recipes")
    recipes.set_defaults(func=cmd_recipes)

    evaluate = sub.add_parser("evaluate", help="evaluate a recorded run's model")
    evaluate.add_argument("run", help="run id, unique prefix, 'latest' or path")
    evaluate.add_argument("--split", choices=("test", "val", "train"))
    evaluate.add_argument("--json", action="store_true")
    evaluate.add_argument("--runs-dir", **runs_dir)
    evaluate.set_defaults(func=cmd_evaluate)

    predict = sub.add_parser("predict", help="predict with a recorded run's model")
    predict.add_argument("run", help="run id, unique prefix, 'latest' or path")
    predict.add_argument("--input", required=True, help="a .csv or .npy file of input rows")
    predict.add_argument("--output", help="write the predictions here (CSV) instead of stdout")
    predict.add_argument("--runs-dir", **runs_dir)
    predict.set_defaults(func=cmd_predict)

    runs = sub.add_parser("runs", help="list recorded runs")
    runs.add_argument("--json", action="store_true")
    runs.add_argument("--runs-dir", **runs_dir)
    runs.set_defaults(func=cmd_runs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except TrainwiseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
