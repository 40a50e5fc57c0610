"""Worker threads sized to the cores no other process is using, for torch work (embedding, cosine search).

Work is shared between threads in pieces, each piece on one torch thread: torch's own intra-op threads wait at
every one of hundreds of barriers per forward pass for the slowest thread, ~5x slower than one thread when
another process takes a core mid-batch, where a worker here just takes fewer pieces.
"""
from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SAMPLE_WINDOW = (0.1, 10.0)  # seconds: shorter is below /proc/stat's resolution, longer says little about now
FREE_CORE = 0.3  # a core whose other processes used less than this of it lately counts as free


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count for this block, on this thread (OpenMP keeps it per thread)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def idle_workers(pieces: int) -> int:
    """Worker threads for `pieces` independent pieces of work: one per free core, at most one per piece. engrain
    often runs many embedding processes at once (an MCP server per session, parallel imports); on an idle machine
    a large batch gets all its cores."""
    if pieces < 2:
        return 1
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    if len(cores) == 1:
        return 1
    others = _others_busy(cores)
    if others is None:  # no recent sample: the load average, which counts this process as one busy core
        others = max(0.0, os.getloadavg()[0] - 1)
    return max(1, min(pieces, len(cores), int(len(cores) - others + FREE_CORE)))


@dataclass
class _CpuSample:
    at: float = -float("inf")  # time.monotonic()
    busy: float = 0.0          # seconds our cores spent not idle, since boot
    own: float = 0.0           # this process's CPU seconds
    others: float | None = None  # cores' worth of CPU other processes used in the window that ended here


_last_sample = _CpuSample()
_sample_lock = threading.Lock()


def _others_busy(cores: list[int]) -> float | None:
    """Cores' worth of CPU that other processes used on `cores` since this process last asked: /proc/stat's
    busy time minus this process's own. The load average cannot say this: it counts this process's threads, so a
    process using both cores would see them busy and drop to one. None without a usable window."""
    with _sample_lock:
        last, now = _last_sample, time.monotonic()
        if now - last.at < SAMPLE_WINDOW[0]:
            return last.others
        try:
            busy = _cores_busy_seconds(cores)
        except (OSError, ValueError, IndexError):  # no /proc/stat (not Linux)
            return None
        own, window = time.process_time(), now - last.at
        last.others = None if window > SAMPLE_WINDOW[1] else max(0.0, (busy - last.busy - (own - last.own)) / window)
        last.at, last.busy, last.own = now, busy, own
        return last.others


def _cores_busy_seconds(cores: list[int]) -> float:
    """Seconds the given cores spent not idle since boot (/proc/stat: user, nice, system, irq, softirq, steal)."""
    wanted = {f"cpu{core}" for core in cores}
    ticks = 0
    for line in Path("/proc/stat").read_text().splitlines():
        fields = line.split()
        if fields and fields[0] in wanted:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
            ticks += user + nice + system + irq + softirq + steal
    return ticks / os.sysconf("SC_CLK_TCK")


def share(workers: int, work, items: list) -> list:
    """[work(item) for item in items], spread over `workers` threads (this one alone when 1)."""
    if workers == 1:
        return [work(item) for item in items]
    return list(_pool(workers, os.getpid()).map(work, items))


@functools.cache
def _pool(workers: int, pid: int) -> ThreadPoolExecutor:
    """Worker threads, per process: a forked child inherits a pool whose threads it does not have."""
    return ThreadPoolExecutor(workers, thread_name_prefix="engrain-worker")
