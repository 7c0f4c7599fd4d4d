"""Data-parallel training over several processes, through torch's own elastic launcher (torchrun).

`trainwise fit RECIPE --nproc N` calls launch(), which starts N copies of `trainwise fit` under
torch.distributed.run. Each copy finds RANK and WORLD_SIZE in its environment; fit then joins the
process group (gloo on CPU, nccl on CUDA), wraps the model in DistributedDataParallel, and each
process trains on its share of every batch: with batch_size b, one step of N processes sees the same
N*b samples, and takes the same step, as one process with batch N*b. Epoch losses and metrics are
summed over the processes; process 0 alone writes records, checkpoints and the report.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from trainwise.callbacks import Callback, Logs
from trainwise.errors import TrainwiseError
from trainwise.metrics import compute_all
from trainwise.state import TrainState

# a process that waits for a dead peer gives up after this long (torchrun stops the rest sooner)
COLLECTIVE_TIMEOUT = timedelta(minutes=5)


@dataclass(frozen=True)
class Distributed:
    """This process's place in the run."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        return self.rank, self.world_size


def from_environment() -> Distributed | None:
    """The process's place when torchrun started it with more than one process, else None."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return None
    return Distributed(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def setup(device: torch.device) -> Distributed | None:
    """Join the process group (once per process) when running under torchrun; None in a single process."""
    context = from_environment()
    if context is not None and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
        # left to the interpreter's teardown, the group's threads can be destroyed while still running
        # (C++ "terminate called without an active exception"): a finished process then dies by SIGABRT
        atexit.register(_leave_process_group)
    return context


def _leave_process_group() -> None:
    gc.collect()  # first the DistributedDataParallel wrappers still held in reference cycles (fit's state)
    if dist.is_initialized():
        dist.destroy_process_group()


def device_for(context: Distributed, device: torch.device) -> torch.device:
    """Each process of a node on its own GPU."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", context.local_rank % torch.cuda.device_count())
    return device


def wrap(model: nn.Module, device: torch.device, *, summed_loss: bool) -> nn.Module:
    """The model as DistributedDataParallel. DDP averages gradients over the processes, which is the
    gradient of the whole batch's mean loss; a summed loss needs their sum instead."""
    ids = [device.index] if device.type == "cuda" else None
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if summed_loss:
        ddp.register_comm_hook(None, _sum_gradients)
    return ddp


def _sum_gradients(process_group, bucket):
    # no annotations: DDP checks them at run time, and this module's are strings (postponed evaluation)
    work = dist.all_reduce(bucket.buffer(), group=process_group, async_op=True)
    return work.get_future().then(lambda future: future.value()[0])


def epoch_logs(state: TrainState, summed_loss: bool) -> Logs:
    """The epoch's loss and metrics over all processes' samples. The running sums are reduced in copies:
    the process's own stay as they are, for a checkpoint saved afterwards."""
    totals = torch.stack([state.epoch_loss.double(), torch.tensor(float(state.epoch_samples), dtype=torch.float64,
                                                                  device=state.epoch_loss.device)])  # fmt: skip
    dist.all_reduce(totals)
    own = [metric.state_dict() for metric in state.metrics]
    try:
        for metric in state.metrics:
            metric.all_reduce()
        loss = totals[0] if summed_loss else totals[0] / totals[1].clamp(min=1)
        return {"loss": loss.item(), **compute_all(state.metrics)}
    finally:
        for metric, saved in zip(state.metrics, own, strict=True):
            metric.load_state_dict(saved)


def broadcast_number(value: float) -> float:
    """Process 0's value, on every process (an lr the LR finder chose there)."""
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


class StopTogether(Callback):
    """SIGINT/SIGTERM reach the processes at different steps; every `every` steps they agree, so they all
    stop after the same step (a process that stopped alone would leave the others waiting for it)."""

    def __init__(self, every: int = 16) -> None:
        self.every = every
        self.pending: str | None = None

    def on_batch_end(self, batch: int, logs: Logs) -> None:
        state = self.state
        if state.interrupted:  # held back until all agree (the loop stops as soon as it is set)
            self.pending, state.interrupted = state.interrupted, None
        if (state.step % self.every or not state.stepped) and batch + 1 < state.steps_per_epoch:
            return
        flag = torch.tensor([1.0 if self.pending else 0.0])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item():
            state.interrupted = self.pending or "SIGTERM"


def check_gpus(nproc: int, device: str | torch.device) -> None:
    """NCCL runs one process per GPU: more processes on a node than it has GPUs, or every process on one
    named GPU, fails only once all have started ("Duplicate GPU detected"). Say so before starting them."""
    from trainwise.data import resolve_device

    target = resolve_device(device)
    if target.type != "cuda" or nproc <= 1:
        return
    fix = f"or --set train.device=cpu to run the {nproc} processes on the CPU (gloo)"
    if target.index is not None:
        raise TrainwiseError(
            f"--nproc {nproc}: train.device = {str(device)!r} puts every process on that one GPU, and NCCL needs "
            f"one GPU per process; use train.device = 'cuda' (process N on GPU N) {fix}"
        )
    gpus = torch.cuda.device_count()
    if nproc > gpus:
        raise TrainwiseError(
            f"--nproc {nproc}: {nproc} processes but this machine has {gpus} CUDA GPU{'s' if gpus != 1 else ''}, "
            f"and NCCL needs one GPU per process; use --nproc {gpus} or fewer, {fix}"
        )


def launch(
    argv: Sequence[str],
    *,
    nproc: int,
    nnodes: int = 1,
    node_rank: int = 0,
    master_addr: str | None = None,
    master_port: int | None = None,
    module: bool = True,
) -> None:
    """Run `python -m argv...` (module) or `python argv...` in nproc processes per node under
    torch.distributed.run, as `torchrun` would; raise a one-line TrainwiseError if a process fails."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    if nproc < 1 or nnodes < 1:
        raise TrainwiseError(f"--nproc and --nnodes must be at least 1, got {nproc} and {nnodes}")
    options = [f"--nproc-per-node={nproc}", f"--nnodes={nnodes}", f"--node-rank={node_rank}", "--max-restarts=0"]
    if master_addr is None and master_port is None and nnodes == 1:
        options.append("--standalone")  # a free port on this machine
    else:
        options += [f"--master-addr={master_addr or '127.0.0.1'}", f"--master-port={master_port or 29500}"]
    # one thread per process unless told otherwise: N processes of all cores each would fight
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    # torchrun's banners, warnings and failure report: a failure is said below in one line
    logging.getLogger("torch.distributed").setLevel(logging.CRITICAL)
    try:
        launcher = parse_args([*options, *(["-m"] if module else []), argv[0]])
        launcher.training_script_args = list(argv[1:])  # as they are: not parsed as torchrun's own options
        run(launcher)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        if failure.exitcode < 0:
            how = f"was killed by {failure.signal_name()}"
        else:
            how = f"exited with code {failure.exitcode}"
        raise TrainwiseError(
            f"distributed run failed: process {rank} {how}, and the others were stopped; the run's latest "
            "checkpoint resumes it (trainwise fit --resume latest --nproc N)"
        ) from None
