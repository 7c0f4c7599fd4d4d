"""Trains a recipe with checkpoints and SIGKILLs itself in the middle of step N (after backward, before the
optimizer step): `python resume_worker.py RECIPE RUNS_DIR N [SECTION.KEY=VALUE ...]`. Used by test_checkpoint."""

import os
import signal
import sys
from pathlib import Path

from trainwise.callbacks import Callback
from trainwise.config import load_config
from trainwise.recipes import run_config


class KillAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_before_step(self, batch: int, logs: dict) -> None:
        if self.state.step + 1 == self.step:  # state.step counts the steps already taken
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    recipe, runs_dir, step, *overrides = sys.argv[1:]
    run_config(load_config(recipe, overrides), run_root=Path(runs_dir), progress=False, callbacks=[KillAt(int(step))])
