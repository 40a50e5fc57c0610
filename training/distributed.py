"""Multi-process training through torch.distributed: which process this is, joining the process group, and
launching N local processes with torchrun (torch.distributed.run).

Every process runs the same command; the launcher (torchrun, `accelerate launch`, `engrain train --processes N`)
tells each one its rank through RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE. Rank 0 leads the run
(exports data, writes the registry, checkpoints, adapter and plot) and hands each stage's job to the others;
every rank then trains on its share of each batch (training/loop.py, training/parallel.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

# Rank 0 prepares the base model and exports data while the others wait in a broadcast: allow for a slow
# first conversion of a large base model.
_WAIT = timedelta(hours=2)
_groups: dict[str, Any] = {}      # "control": the gloo group beside NCCL (see _control_group)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def world() -> World:
    """This process's place, from the launcher's environment (a plain run is rank 0 of 1)."""
    env = os.environ
    size = int(env.get("WORLD_SIZE", "1"))
    return World(rank=int(env.get("RANK", "0")), size=size, local_rank=int(env.get("LOCAL_RANK", "0")),
                 local_size=int(env.get("LOCAL_WORLD_SIZE", str(size))))


def device(w: World) -> str:
    import torch

    return f"cuda:{w.local_rank}" if torch.cuda.is_available() else "cpu"


def start() -> World:
    """Join the process group when launched as one of several processes: NCCL on CUDA, gloo on CPU."""
    w = world()
    if w.size == 1:
        return w
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(w.local_rank)
        dist.init_process_group("nccl" if cuda else "gloo", timeout=_WAIT)
        if cuda:   # creating a group is itself collective: every rank does it here, in the same order
            _groups["control"] = dist.new_group(backend="gloo", timeout=_WAIT)
    return w


def finish() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _groups.clear()


def share(obj: Any = None) -> Any:
    """Rank 0's `obj`, on every rank (a no-op in a single process)."""
    if world().size == 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0, group=_control_group())
    return box[0]


def sum_across(value: float) -> float:
    """The sum of `value` over every rank."""
    if world().size == 1:
        return value
    import torch
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t, group=_control_group())
    return float(t.item())


def _control_group():
    """Python objects and loss values travel through CPU tensors: the default group on CPU, a gloo group
    beside NCCL on CUDA."""
    return _groups.get("control")


def launch(processes: int, args: list[str]) -> int:
    """Run `python -m engrain <args>` as `processes` local ranks under torchrun; returns the exit status of the
    first rank that failed (its own error message is already printed), else 0."""
    import logging

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    cores = len(os.sched_getaffinity(0))
    # torchrun would set 1 thread per process; give each its share of the cores instead.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // processes)))
    # the launcher's own notes (a rank failed, a signal came, stopping the others) repeat what rank 0 printed;
    # its modules set their loggers' levels one by one
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed.elastic"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        run(get_args_parser().parse_args(["--standalone", f"--nproc-per-node={processes}", "-m", "engrain", *args]))
    except ChildFailedError as exc:
        return exc.get_first_failure()[1].exitcode or 1
    except (SignalException, KeyboardInterrupt):   # Ctrl-C or SIGTERM: rank 0 recorded the run as interrupted
        return 130
    return 0


def threads() -> int:
    """Threads for this process's torch pool: its share of the cores it may use."""
    return max(1, len(os.sched_getaffinity(0)) // world().local_size)
