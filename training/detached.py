"""`start_training`: the run in a detached `python -m training` process (for the MCP server), so the caller
returns at once and polls `run_status`."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from training import registry
from training.runner import create


def start_training(ws, *, backend: str = "auto", base: str | None = None, stage: str | None = None,
                   max_steps: int | None = None, include_pending: bool = False, run_id: str | None = None,
                   on_progress=None) -> str:
    """Queue a run and start it in its own session; returns its id. `on_progress` is not used here: poll
    `run_status` instead (it is accepted so both entry points take the same options)."""
    record = create(ws, backend=backend, base=base, stage=stage, max_steps=max_steps,
                    include_pending=include_pending, run_id=run_id)
    folder = registry.run_dir(ws, record.id)
    log = (folder / "train.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "training", "--workspace", str(ws.root), "--run-id", record.id],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        cwd=str(Path(ws.root)))
    log.close()
    registry.write_status(ws, registry.RunStatus(run_id=record.id, state="queued", pid=proc.pid))
    return record.id
