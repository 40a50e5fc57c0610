"""`train`: one run = resolve the base and backend, run the curriculum stages in order (each from the previous
stage's adapter), record everything in the registry. A run that exists already is resumed where it stopped."""
from __future__ import annotations

import math
import os
import platform
import re
import time
from pathlib import Path
from typing import Callable

from training import backends, data, distributed, heldout, registry, report
from training.backends.job import StageJob, StageOutput
from training.config import StageConfig, TrainingConfig, load_config
from training.errors import RunFailed, TrainingConfigError, TrainingError
from training.registry import RunRecord, RunStatus, StageResult

OnProgress = Callable[[RunStatus], None]


def train(ws, *, backend: str = "auto", base: str | None = None, stage: str | None = None,
          max_steps: int | None = None, include_pending: bool = False, run_id: str | None = None,
          on_progress: OnProgress | None = None) -> RunRecord:
    """Train (blocking) and return the finished run's record; raises after recording a failure.

    Launched as several processes (torchrun, `engrain train --processes N`), rank 0 leads the run and the
    other ranks train each stage it hands them; on failure rank 0 exits and torchrun stops the others."""
    if not distributed.start().main:
        return _follow(ws)
    record = _lead(ws, backend=backend, base=base, stage=stage, max_steps=max_steps,
                   include_pending=include_pending, run_id=run_id, on_progress=on_progress)
    distributed.share(record.id)     # the run is over: the other ranks return its record
    distributed.finish()
    return record


def _follow(ws) -> RunRecord:
    from training.backends.hf import train_stage

    try:
        job = distributed.share()
        while isinstance(job, StageJob):
            train_stage(job)
            job = distributed.share()
    except RuntimeError as exc:   # most often rank 0 stopped (and said why): the connection to it closed
        reason = re.sub(r"^\[[^\]]*\]\s*", "", str(exc).splitlines()[0])   # gloo prefixes its source path
        raise RunFailed(f"a training process stopped: {reason}") from exc
    distributed.finish()
    return registry.get_run(ws, job)


def _lead(ws, *, backend: str, base: str | None, stage: str | None, max_steps: int | None,
          include_pending: bool, run_id: str | None, on_progress: OnProgress | None) -> RunRecord:
    if run_id:
        record = registry.get_run(ws, run_id)       # an unknown or malformed id is refused, never created
        if record.state == "done":
            return record
    else:
        record = create(ws, backend=backend, base=base, stage=stage, max_steps=max_steps,
                        include_pending=include_pending)
    status = RunStatus(run_id=record.id, state="running", pid=os.getpid())
    registry.write_status(ws, status)               # first, so no reader sees "running" beside a dead pid
    record.state, record.error = "running", None
    registry.save(ws, record)
    try:
        _run(ws, record, status, on_progress)
    except BaseException as exc:
        record.state, record.error = "failed", _failure(exc, record.id, status)
        registry.save(ws, record)
        registry.write_status(ws, status.model_copy(update={"state": "failed", "error": record.error}))
        if isinstance(exc, (TrainingError, OSError)) or not isinstance(exc, Exception):
            raise
        raise RunFailed(f"run {record.id} failed: {record.error}") from exc   # a library's error, e.g. torch's
    return record


def _failure(exc: BaseException, run_id: str, status: RunStatus) -> str:
    if isinstance(exc, KeyboardInterrupt):  # Ctrl-C, or SIGTERM (see interrupt_on_sigterm)
        where = f" at stage {status.stage} step {status.step}/{status.total_steps}" if status.stage else ""
        return (f"interrupted{where}; resume from the last checkpoint with `engrain train --resume {run_id}`")
    return f"{type(exc).__name__}: {exc}"


def interrupt_on_sigterm() -> None:
    """SIGTERM (a service manager, `kill`, a CI timeout) unwinds like Ctrl-C, so the run is recorded as interrupted
    with its resume hint instead of staying "running". Only the main thread may install handlers."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def create(ws, *, backend: str, base: str | None, stage: str | None, max_steps: int | None,
           include_pending: bool, run_id: str | None = None) -> RunRecord:
    """A queued run whose recorded config already holds every override (so a resume needs nothing else)."""
    cfg = load_config(ws.raw)
    stages = cfg.stages or [StageConfig(name="all")]
    if stage is not None:
        stages = [s for s in stages if s.name == stage]
        if not stages:
            names = ", ".join(s.name for s in cfg.stages) or "none configured"
            raise TrainingConfigError(f"no stage {stage!r} in [[training.stages]] ({names})")
    if max_steps is not None:
        stages = [s.model_copy(update={"max_steps": max_steps}) for s in stages]
    chosen = backend if backend != "auto" else cfg.backend
    processes = distributed.world().size
    if processes > 1:
        _check_processes(chosen, cfg, processes)
        chosen = "hf"
    cfg = cfg.model_copy(update={"stages": stages, "base": base or cfg.base, "max_steps": max_steps or cfg.max_steps,
                                 "backend": pick_backend() if chosen == "auto" else chosen})
    record = RunRecord(id=run_id or registry.new_run_id(), created_at=registry.now(),
                       base=cfg.hosted_model if cfg.backend == "hosted" else cfg.base,
                       backend=cfg.backend, include_pending=include_pending, config=cfg.model_dump())
    return registry.save(ws, record)


def launch(ws, processes: int, backend: str, args: list[str]) -> int:
    """Run `engrain <args>` (a train command) as `processes` local ranks under torchrun; its exit status."""
    cfg = load_config(ws.raw)
    _check_processes(backend if backend != "auto" else cfg.backend, cfg, processes)
    return distributed.launch(processes, args)


def main_process() -> bool:
    """Whether this process reports to the user (rank 0, or not a multi-process run)."""
    return distributed.world().main


def _check_processes(backend: str, cfg: TrainingConfig, processes: int) -> None:
    if backend not in ("auto", "hf"):
        raise TrainingConfigError(f"multi-process training runs the hf backend (torch.distributed), not {backend!r}; "
                         "use --backend hf or one process")
    if cfg.batch_size < processes:
        raise TrainingConfigError(f"batch_size {cfg.batch_size} is smaller than {processes} processes: each process "
                         "trains on its share of every batch; raise [training] batch_size or use fewer processes")


def pick_backend() -> str:
    """unsloth on CUDA (hf when Unsloth is not installed), mlx on Apple silicon, hf otherwise."""
    from importlib.util import find_spec

    if platform.system() == "Darwin" and platform.machine() == "arm64" and find_spec("mlx_lm"):
        return "mlx"
    import torch

    if torch.cuda.is_available() and find_spec("unsloth"):
        return "unsloth"
    return "hf"


def _run(ws, record: RunRecord, status: RunStatus, on_progress: OnProgress | None) -> None:
    cfg = TrainingConfig.model_validate(record.config)
    backend = backends.load(cfg.backend)
    folder = registry.run_dir(ws, record.id)
    record.dataset_hash = data.snapshot(ws, record.include_pending)
    record.base_path, continued = backend.start(ws, cfg)
    registry.save(ws, record)
    done = {s.name: s for s in record.stages}
    previous: StageResult | None = None
    for spec in cfg.stages:
        if spec.name in done:
            previous = done[spec.name]
            continue
        stage_dir = folder / "stages" / spec.name
        data_dir = stage_dir / "data"
        if not (data_dir / "train.jsonl").is_file():
            data.export(ws, data_dir, backend.DATA_FORMAT, categories=spec.categories,
                        include_pending=record.include_pending, seed=cfg.seed)
        lr = stage_learning_rate(cfg, spec, continued)
        status.stage, status.step, status.total_steps, status.loss, status.eta_s = spec.name, 0, 0, None, None
        job = StageJob(name=spec.name, base=record.base_path, data_dir=data_dir, out_dir=stage_dir, config=cfg,
                       learning_rate=lr, max_steps=spec.max_steps or cfg.max_steps, epochs=spec.epochs or cfg.epochs,
                       batch_size=cfg.batch_size, grad_accum=cfg.grad_accum,
                       init_adapter=previous.adapter if previous else None)
        output = _train_stage(backend, job, _progress(ws, status, on_progress), record)
        result = StageResult(name=spec.name, categories=spec.categories, examples=output.examples,
                             steps=output.steps, learning_rate=lr, adapter=str(output.adapter),
                             started_from=output.started_from,
                             first_loss=output.losses[0] if output.losses else None,
                             final_loss=output.losses[-1] if output.losses else None,
                             tokens_per_s=output.tokens_per_s)
        record.losses += output.losses
        record.warnings += [f"stage {spec.name}: {w}" for w in output.warnings]
        record.artifacts.update(output.artifacts)
        record.hosted_model = output.hosted_model or record.hosted_model
        record.stages.append(result)
        registry.save(ws, record)
        previous = result
    _finish(ws, record, folder, previous)


def stage_learning_rate(cfg: TrainingConfig, spec: StageConfig, continued: bool) -> float:
    """Continuing an earlier run's model: continue_learning_rate (a stage's own continue_learning_rate wins), since
    a fresh-training rate would undo what that run learned; a stage's learning_rate applies to fresh training."""
    if continued:
        return spec.continue_learning_rate or cfg.continue_learning_rate
    return spec.learning_rate or cfg.learning_rate


def _train_stage(backend, job: StageJob, on_step, record: RunRecord) -> StageOutput:
    if distributed.world().size > 1:
        if record.backend != "hf":
            raise TrainingConfigError(f"multi-process training runs the hf backend, and run {record.id} uses "
                                      f"{record.backend}")
        return backend.train_stage(distributed.share(job), on_step)   # the other ranks train the same stage
    return backend.train_stage(job, on_step)


def _progress(ws, status: RunStatus, on_progress: OnProgress | None):
    started = time.monotonic()
    first_step: list[int] = []
    last_write = [0.0]

    def on_step(step: int, total: int, loss: float, tokens_per_s: float) -> None:
        if not first_step:
            first_step.append(step - 1)   # a resumed stage starts part-way
        done = step - first_step[0]
        elapsed = time.monotonic() - started
        status.step, status.total_steps, status.loss = step, total, loss
        status.eta_s = elapsed / done * (total - step) if done and total else None
        status.tokens_per_s = tokens_per_s
        if time.monotonic() - last_write[0] > 1.0 or step == total:
            registry.write_status(ws, status)
            last_write[0] = time.monotonic()
        if on_progress:
            on_progress(status)

    return on_step


def _finish(ws, record: RunRecord, folder: Path, last: StageResult | None) -> None:
    if last and f"adapter:{last.name}" in record.artifacts:
        record.artifacts["adapter"] = record.artifacts[f"adapter:{last.name}"]
    if record.losses:
        record.artifacts["loss_plot"] = str(report.plot(
            [(s.name, record.losses[_offset(record, s):_offset(record, s) + s.steps]) for s in record.stages],
            folder / "loss.png", f"{record.id} ({record.backend}, {record.base})"))
        record.metrics = {"first_loss": record.losses[0], "final_loss": record.losses[-1],
                          "steps": float(len(record.losses))}
        speeds = [s.tokens_per_s for s in record.stages if s.tokens_per_s]
        if speeds:
            record.metrics["tokens_per_s"] = sum(speeds) / len(speeds)
    warning = report.loss_fell(record.losses)
    if warning:
        record.warnings.append(warning)
    bad = [i for i, loss in enumerate(record.losses, 1) if not math.isfinite(loss)]
    if bad:
        record.warnings.append(f"the loss was not a number at {len(bad)} step(s), first at step {bad[0]}: lower the "
                               "learning rate or check the data; the adapter may be unusable")
    held = heldout.write(folder)
    if held:
        record.artifacts["heldout"] = str(held)
    record.state = "done"
    registry.save(ws, record)
    status = registry.run_status(ws, record.id)
    registry.write_status(ws, status.model_copy(update={"state": "done", "artifacts": record.artifacts}))


def _offset(record: RunRecord, stage: StageResult) -> int:
    offset = 0
    for s in record.stages:
        if s is stage:
            return offset
        offset += s.steps
    return offset
