"""A rank of a distributed test run: `python ddp_worker.py RUNS_DIR KILL_STEP RESUME [SECTION.KEY=VALUE ...]`
trains w3-sequential-sgd with a checkpoint every 2 steps; process 1 SIGKILLs itself at step KILL_STEP (0: never);
RESUME 1 continues the latest run. Started by trainwise.distributed.launch (test_distributed)."""

import os
import signal
import sys
from pathlib import Path

from trainwise.callbacks import Callback
from trainwise.config import load_config
from trainwise.recipes import run_config
from trainwise.runs import RunIndex


class KillRankOne(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_batch_end(self, batch: int, logs: dict) -> None:
        if os.environ["RANK"] == "1" and self.state.step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    runs_dir, kill_step, resume, *overrides = sys.argv[1:]
    config = load_config("w3-sequential-sgd", ["checkpoint.every_steps=2", *overrides])
    run = RunIndex(Path(runs_dir)).get("latest").path if resume == "1" else None
    killer = [KillRankOne(int(kill_step))] if int(kill_step) else []
    run_config(config, run_root=Path(runs_dir), progress=False, callbacks=killer, resume=run)
