"""The LR finder against a grid search, on every built-in recipe (the table in docs/lr-find.md).

    python benchmarks/lr_find_grid.py [--recipes w1-normalized,w4-sgd-sum] [--cache grid.json] [--markdown]

For each recipe: train it to its own budget at every lr of a half-decade grid (1e-8 .. 10; 1e-5 ..
10 for the Fashion-MNIST recipes, whose runs take seconds each) and take the final training loss;
going up the grid stops at the first lr whose run ends non-finite. Then run the finder with 3
seeds (the seed sets the initial weights and the batch order) and train once with its suggestion.
Goals: the suggestion within one decade of the grid's best lr, the run with it within 2x of the
grid's best final loss, and the suggestion spread over the seeds below half a decade. Final losses
below a millionth of the initial loss count as equal: they are float32 rounding, not training.

Recipes that differ only in their lr (w1-raw-lr1e-2 / -lr1e-4, w4-rmsprop / -as-written) share a grid.
--cache keeps grid results in a JSON file, so the finder can be re-measured without re-training it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainwise.config import Config, load_config, recipe_names
from trainwise.recipes import find_lr, run_config, tool_inputs

SEEDS = (0, 1, 2)
SLOW_DATA = {"fashion-mnist", "mnist"}


def grid_for(config: Config) -> list[float]:
    low = -10 if config.data.name in SLOW_DATA else -16
    return [10 ** (k / 2) for k in range(low, 3)]


def setup_key(config: Config) -> str:
    """The config without its lr and name: recipes equal in everything else share a grid."""
    data = config.to_dict()
    data["optim"].pop("lr", None)
    for key in ("name", "description"):
        data.pop(key, None)
    return json.dumps(data, sort_keys=True, default=str)


def final_loss(recipe: str, lr: float, seed: int | None = None) -> float:
    overrides = [f"optim.lr={lr!r}", "train.doctor='off'"]
    if seed is not None:
        overrides.append(f"train.seed={seed}")
    result = run_config(load_config(recipe, overrides), progress=False)
    losses = result.fit.history.get("loss", [])
    return float(losses[-1]) if losses else math.nan


def initial_loss(recipe: str) -> float:
    inputs = tool_inputs(load_config(recipe))
    with torch.no_grad():
        return float(inputs.loss(inputs.model(inputs.X), inputs.y))


def grid_search(recipe: str, config: Config) -> dict[str, float]:
    results: dict[str, float] = {}
    for lr in grid_for(config):
        loss = final_loss(recipe, lr)
        results[repr(lr)] = loss
        if not math.isfinite(loss):
            break  # every larger lr diverges too
    return results


def suggestion(recipe: str, seed: int) -> tuple[float, str]:
    result = find_lr(load_config(recipe, [f"train.seed={seed}"]))
    return result.suggestion, result.confidence


def measure(recipe: str, grids: dict[str, dict[str, float]]) -> dict[str, Any]:
    config = load_config(recipe)
    key = setup_key(config)
    if key not in grids:
        grids[key] = grid_search(recipe, config)
    grid = {float(lr): loss for lr, loss in grids[key].items()}
    finite = {lr: loss for lr, loss in grid.items() if math.isfinite(loss)}
    best_lr = min(finite, key=lambda lr: finite[lr])
    suggestions = [suggestion(recipe, seed) for seed in SEEDS]
    lrs = [lr for lr, _ in suggestions]
    chosen = float(np.exp(np.median(np.log(lrs))))  # the median seed's
    chosen_loss = final_loss(recipe, chosen)
    spread = math.log10(max(lrs) / min(lrs))
    decades_off = abs(math.log10(chosen / best_lr))
    # losses below a millionth of the initial loss are all "converged" (float32 resolution): compare above it
    floor = 1e-6 * initial_loss(recipe)
    ratio = max(chosen_loss, floor) / max(finite[best_lr], floor) if math.isfinite(chosen_loss) else math.inf
    return {
        "recipe": recipe,
        "grid_best_lr": best_lr,
        "grid_best_loss": finite[best_lr],
        "suggestions": lrs,
        "confidence": [c for _, c in suggestions],
        "suggestion": chosen,
        "suggestion_loss": chosen_loss,
        "decades_off": decades_off,
        "loss_ratio": ratio,
        "seed_spread_decades": spread,
        "ok": decades_off <= 1 and ratio <= 2 and spread < 0.5,
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| recipe | grid best lr | its final loss | suggestion (seeds 0, 1, 2) | spread (decades) | "
        "decades from grid best | final loss with suggestion | ratio | goals met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        seeds = ", ".join(f"{lr:.2g}" for lr in row["suggestions"])
        lines.append(
            f"| {row['recipe']} | {row['grid_best_lr']:.2g} | {row['grid_best_loss']:.4g} | {seeds} | "
            f"{row['seed_spread_decades']:.2f} | {row['decades_off']:.2f} | {row['suggestion_loss']:.4g} | "
            f"{row['loss_ratio']:.2f} | {'yes' if row['ok'] else 'NO'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", help="comma-separated recipe names (default: all)")
    parser.add_argument("--cache", type=Path, help="JSON file keeping the grid results between runs")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args()
    recipes = args.recipes.split(",") if args.recipes else recipe_names()
    grids: dict[str, dict[str, float]] = {}
    if args.cache and args.cache.exists():
        grids = json.loads(args.cache.read_text())
    rows = []
    for recipe in recipes:
        started = time.perf_counter()
        row = measure(recipe, grids)
        if args.cache:
            args.cache.write_text(json.dumps(grids, indent=1))
        rows.append(row)
        print(
            f"{recipe:24s} grid best {row['grid_best_lr']:8.2g} ({row['grid_best_loss']:.4g})  suggestion "
            f"{row['suggestion']:8.2g} ({row['suggestion_loss']:.4g}, {row['loss_ratio']:.2f}x)  seeds "
            f"{', '.join(f'{lr:.2g}' for lr in row['suggestions'])}  {'ok' if row['ok'] else 'MISSED'}  "
            f"[{time.perf_counter() - started:.0f}s]",
            flush=True,
        )
    print(f"goals met on {sum(r['ok'] for r in rows)} of {len(rows)} recipes")
    if args.markdown:
        print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
