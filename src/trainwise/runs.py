"""Run folders and the sqlite index of runs.

A run is one training run's record folder, `<root>/<YYYYmmdd-HHMMSS>-<slug>`. The index,
`<root>/index.sqlite`, holds one row per run. Every index operation opens its own connection and
closes it, so several processes (parallel training runs) can write to the same index.
"""

from __future__ import annotations

import builtins
import json
import math
import os
import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.table import Table
from rich.text import Text

from trainwise.errors import TrainwiseError

__all__ = ["RunIndex", "RunRow", "format_runs_table", "new_run_dir", "runs_root"]

STATUSES = ("running", "completed", "stopped", "failed", "interrupted")
# finish() records how a run ended, so "running" is not one of its choices.
_FINAL_STATUSES = frozenset(STATUSES) - {"running"}
_MAX_SLUG = 60
_DB_NAME = "index.sqlite"
_DB_TIMEOUT_S = 10.0
# Metrics shown first in the runs table, when the runs have them.
_PREFERRED_METRICS = (
    "loss",
    "val_loss",
    "accuracy",
    "val_accuracy",
    "test_accuracy",
    "test_loss",
    "mae",
    "val_mae",
    "test_mae",
)
_MAX_METRIC_COLUMNS = 3
_STATUS_STYLES = {
    "running": "cyan",
    "completed": "green",
    "stopped": "yellow",
    "failed": "red",
    "interrupted": "magenta",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id      TEXT PRIMARY KEY,
    recipe  TEXT NOT NULL,
    path    TEXT NOT NULL,
    started TEXT NOT NULL,
    ended   TEXT,
    status  TEXT NOT NULL,
    metrics TEXT NOT NULL DEFAULT '{}'
)
"""


def runs_root() -> Path:
    """The default runs folder: `$TRAINWISE_HOME/runs` if TRAINWISE_HOME is set, else `./runs`."""
    home = os.environ.get("TRAINWISE_HOME")
    if home:
        return Path(home).expanduser() / "runs"
    return Path.cwd() / "runs"


def _slug(name: str) -> str:
    """A file-name-safe slug of `name` (lowercase, [a-z0-9._-], no leading dot or dash)."""
    slug = re.sub(r"[^a-z0-9._-]", "-", name.lower()).lstrip(".-")[:_MAX_SLUG]
    return slug or "run"


def new_run_dir(root: Path, name: str, *, now: datetime | None = None) -> Path:
    """Create and return a fresh run folder `root/<YYYYmmdd-HHMMSS>-<slug>` (suffixed -2, -3... if taken)."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(root, exc) from None
    real_root = root.resolve()
    base = f"{(now or datetime.now()).strftime('%Y%m%d-%H%M%S')}-{_slug(name)}"
    attempt = 1
    while True:
        folder = base if attempt == 1 else f"{base}-{attempt}"
        candidate = root / folder
        # The slug cannot hold a separator, but check anyway: a run folder must never land outside root.
        if candidate.resolve().parent != real_root:
            raise TrainwiseError(f"run name {name!r} would put the run folder outside {root}; pick a plain name")
        try:
            # mkdir without exist_ok claims the name atomically, so two processes never share a folder.
            candidate.mkdir()
        except FileExistsError:
            attempt += 1
            continue
        except OSError as exc:  # read-only, full, or no permission
            raise _unwritable(root, exc) from None
        return candidate


def _unwritable(root: Path, exc: OSError) -> TrainwiseError:
    return TrainwiseError(
        f"{root}: cannot create a run folder there ({exc.strerror or exc}); "
        "pass --runs-dir (or set TRAINWISE_HOME) to a writable folder"
    )


@dataclass(frozen=True)
class RunRow:
    """One run as recorded in the index."""

    id: str
    recipe: str
    path: Path
    started: str
    ended: str | None
    status: str
    metrics: dict[str, float]


def _now_iso() -> str:
    return datetime.now().isoformat(timespec="seconds")


def _metrics_to_json(metrics: Mapping[str, float]) -> str:
    # JSON has no NaN/inf; null keeps the key so a diverged metric still shows up.
    clean = {str(k): (float(v) if math.isfinite(float(v)) else None) for k, v in metrics.items()}
    return json.dumps(clean, allow_nan=False, sort_keys=True)


def _metrics_from_json(text: str | None) -> dict[str, float]:
    if not text:
        return {}
    raw = json.loads(text)
    return {str(k): (float("nan") if v is None else float(v)) for k, v in raw.items()}


class RunIndex:
    """The sqlite index of the runs under one root folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.db_path = self.root / _DB_NAME

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One short-lived connection: commit on success, roll back on error, always close."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.db_path, timeout=_DB_TIMEOUT_S)
        except (OSError, sqlite3.Error) as exc:
            raise TrainwiseError(f"{self.db_path}: cannot open the runs index ({_reason(exc)})") from None
        try:
            with conn:
                conn.execute(_SCHEMA)
                yield conn
        except sqlite3.Error as exc:  # a read-only folder or disk, a full disk, a damaged file
            raise TrainwiseError(f"{self.db_path}: cannot use the runs index ({_reason(exc)})") from None
        finally:
            conn.close()

    def start(self, run_dir: Path, recipe: str) -> RunRow:
        """Record `run_dir` as a running run of `recipe`, started now."""
        run_dir = Path(run_dir).resolve()
        row = RunRow(
            id=run_dir.name,
            recipe=recipe,
            path=run_dir,
            started=_now_iso(),
            ended=None,
            status="running",
            metrics={},
        )
        with self._connect() as conn:
            # Replace, so restarting a run in the same folder resets its record instead of failing.
            conn.execute(
                "INSERT OR REPLACE INTO runs (id, recipe, path, started, ended, status, metrics)"
                " VALUES (?, ?, ?, ?, NULL, ?, '{}')",
                (row.id, row.recipe, str(row.path), row.started, row.status),
            )
        return row

    def finish(self, run_id: str, status: str, metrics: Mapping[str, float]) -> None:
        """Record how run `run_id` ended, now, with its final metrics."""
        if status not in _FINAL_STATUSES:
            raise ValueError(f"unknown final run status {status!r}; expected one of {sorted(_FINAL_STATUSES)}")
        payload = _metrics_to_json(metrics)
        with self._connect() as conn:
            cursor = conn.execute(
                "UPDATE runs SET ended = ?, status = ?, metrics = ? WHERE id = ?",
                (_now_iso(), status, payload, run_id),
            )
            updated = cursor.rowcount
        if updated == 0:
            raise TrainwiseError(self._unknown(run_id))

    def list(self) -> builtins.list[RunRow]:
        """All runs, newest first (by start time, then id)."""
        if not self.db_path.exists():
            # Listing must not create an index as a side effect.
            return []
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, recipe, path, started, ended, status, metrics FROM runs ORDER BY started DESC, id DESC"
            ).fetchall()
        return [_row(r) for r in rows]

    def get(self, ref: str) -> RunRow:
        """Find a run by id, unique id prefix, "latest", or path to its folder."""
        rows = self.list()
        if ref == "latest":
            if not rows:
                raise TrainwiseError(f"no runs in {self.root} yet; train one first")
            return rows[0]
        for row in rows:
            if row.id == ref:
                return row

        path = Path(ref).expanduser()
        looks_like_path = os.sep in ref or "/" in ref or (os.altsep is not None and os.altsep in ref)
        if ref and (looks_like_path or path.is_dir()):
            found = self._by_path(path, rows)
            if found is not None:
                return found
            if looks_like_path:
                raise TrainwiseError(self._unknown(ref))

        matches = [row for row in rows if ref and row.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            shown = ", ".join(row.id for row in matches[:10])
            more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
            raise TrainwiseError(
                f"run '{ref}' is ambiguous in {self.root}: it matches {shown}{more}; give more of the id"
            )
        raise TrainwiseError(self._unknown(ref))

    def _by_path(self, path: Path, rows: Sequence[RunRow]) -> RunRow | None:
        """The run whose folder is `path`: from the index if recorded, else built from the folder."""
        real = path.resolve()
        for row in rows:
            if row.path == real:
                return row
        # Folders may have been moved with their root; match them by name inside this root.
        if real.parent == self.root.resolve():
            for row in rows:
                if row.id == real.name:
                    return row
        if real.is_dir() and (real / "config.toml").is_file():
            started = datetime.fromtimestamp(real.stat().st_mtime).isoformat(timespec="seconds")
            return RunRow(
                id=real.name,
                recipe="",
                path=real,
                started=started,
                ended=None,
                status="unknown",
                metrics={},
            )
        return None

    def _unknown(self, ref: str) -> str:
        return f"no run '{ref}' in {self.root}; `trainwise runs` lists them"


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _row(record: tuple[str, str, str, str, str | None, str, str | None]) -> RunRow:
    run_id, recipe, path, started, ended, status, metrics = record
    return RunRow(
        id=run_id,
        recipe=recipe,
        path=Path(path),
        started=started,
        ended=ended,
        status=status,
        metrics=_metrics_from_json(metrics),
    )


def _duration(started: str, ended: str | None) -> str:
    """A short human duration like 12s, 3m05s or 1h02m; blank while unknown."""
    if ended is None:
        return ""
    try:
        seconds = int((datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds())
    except ValueError:
        return ""
    seconds = max(seconds, 0)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _metric_columns(rows: Sequence[RunRow]) -> builtins.list[str]:
    """Up to three metric names: well-known ones first, then the most common others."""
    counts: dict[str, int] = {}
    for row in rows:
        for name in row.metrics:
            counts[name] = counts.get(name, 0) + 1
    chosen = [name for name in _PREFERRED_METRICS if name in counts]
    others = sorted((name for name in counts if name not in chosen), key=lambda n: (-counts[n], n))
    return (chosen + others)[:_MAX_METRIC_COLUMNS]


def format_runs_table(rows: Sequence[RunRow]) -> Table:
    """A rich table of runs: id, recipe, status, started, duration and up to three final metrics."""
    metrics = _metric_columns(rows)
    table = Table(show_header=True, header_style="bold")
    table.add_column("id", no_wrap=True)
    table.add_column("recipe")
    table.add_column("status")
    table.add_column("started", no_wrap=True)
    table.add_column("duration", justify="right")
    for name in metrics:
        table.add_column(name, justify="right")
    for row in rows:
        style = _STATUS_STYLES.get(row.status, "dim")
        values = [f"{row.metrics[name]:.4g}" if name in row.metrics else "" for name in metrics]
        # Text cells, so that brackets in a recipe name are never read as rich markup.
        table.add_row(
            Text(row.id),
            Text(row.recipe),
            Text(row.status, style=style),
            row.started.replace("T", " "),
            _duration(row.started, row.ended),
            *values,
        )
    return table
