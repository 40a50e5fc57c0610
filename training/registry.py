"""The run registry: one folder per run under .engrain/runs/<id>/ with run.json (the record) and
status.json (live progress, rewritten every step). Both are replaced atomically so readers never see half."""
from __future__ import annotations

import os
import re
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from training.errors import RunNotFound

# A NaN or infinite loss is a result to report, not a reason the registry stops reading: written as "NaN" strings
# (JSON has no NaN; pydantic's default null would not read back as a float), read back as floats.
_NUMBERS = ConfigDict(ser_json_inf_nan="strings")

State = Literal["queued", "running", "done", "failed"]


class StageResult(BaseModel):
    model_config = _NUMBERS

    name: str
    categories: list[str] = []
    examples: int = 0
    steps: int = 0
    learning_rate: float = 0.0
    started_from: str | None = None   # adapter this stage started from (curriculum)
    adapter: str | None = None
    first_loss: float | None = None
    final_loss: float | None = None
    tokens_per_s: float | None = None


class RunRecord(BaseModel):
    model_config = _NUMBERS

    id: str
    created_at: str
    state: State = "queued"
    base: str = ""                    # what the user named
    base_path: str = ""               # the HF folder trained on
    backend: str = ""
    dataset_hash: str = ""
    include_pending: bool = False
    config: dict[str, Any] = {}
    stages: list[StageResult] = []
    metrics: dict[str, float] = {}
    losses: list[float] = []
    artifacts: dict[str, str] = {}
    checks: dict[str, str] = {}       # post-conversion checks of the packaged GGUF
    warnings: list[str] = []
    hosted_model: str | None = None
    ollama_name: str | None = None
    error: str | None = None

    @field_validator("losses", mode="before")
    @classmethod
    def _null_is_nan(cls, value: Any) -> Any:
        # Records written before NaN was kept hold null where a loss was NaN.
        return [float("nan") if v is None else v for v in value] if isinstance(value, list) else value

    @field_validator("metrics", mode="before")
    @classmethod
    def _null_metric_is_nan(cls, value: Any) -> Any:
        return {k: float("nan") if v is None else v for k, v in value.items()} if isinstance(value, dict) else value


class RunStatus(BaseModel):
    model_config = _NUMBERS

    run_id: str
    state: State
    stage: str | None = None
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    artifacts: dict[str, str] = {}
    error: str | None = None
    pid: int | None = None


def runs_dir(ws) -> Path:
    return Path(ws.state_dir) / "runs"


_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")


def run_dir(ws, run_id: str) -> Path:
    """The run's folder; an id that is not a plain name (a path, '..') is refused before any path is built."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise RunNotFound(f"{run_id!r} is not a run id (letters, digits, '.', '_' and '-', no paths); "
                          "see `engrain models` for the runs there are")
    return runs_dir(ws) / run_id


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json(path: Path, data: BaseModel) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(data.model_dump_json(indent=2), encoding="utf-8")
    os.replace(tmp, path)


def save(ws, record: RunRecord) -> RunRecord:
    write_json(run_dir(ws, record.id) / "run.json", record)
    return record


def get_run(ws, run_id: str) -> RunRecord:
    path = run_dir(ws, run_id) / "run.json"
    if not path.is_file():
        known = ", ".join(r.id for r in list_runs(ws)[:5]) or "none yet"
        raise RunNotFound(f"no training run {run_id!r} in {runs_dir(ws)} (recent: {known}); see `engrain models`")
    return _settled(ws, RunRecord.model_validate_json(path.read_text(encoding="utf-8")))


def list_runs(ws) -> list[RunRecord]:
    """Every run, newest first; a run.json that cannot be read is listed as a failed run that says why."""
    root = runs_dir(ws)
    records = [_read(ws, p) for p in root.glob("*/run.json")] if root.is_dir() else []
    return sorted(records, key=lambda r: r.id, reverse=True)


def _read(ws, path: Path) -> RunRecord:
    try:
        return _settled(ws, RunRecord.model_validate_json(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return RunRecord(id=path.parent.name, created_at="", state="failed",
                         error=f"{path} is unreadable ({reason}); the run's other files are kept")


def record_eval(ws, run_id: str, headline: dict[str, Any], artifacts: dict[str, str]) -> RunRecord:
    """Eval results belong to the run they measured: the headline's numbers under `eval_*` metrics, its reports as
    artifacts (a later eval replaces the earlier one's)."""
    record = get_run(ws, run_id)
    record.metrics.update({f"eval_{k}": float(v) for k, v in headline.items()
                           if isinstance(v, (int, float)) and not isinstance(v, bool)})
    record.artifacts.update(artifacts)
    return save(ws, record)


def _settled(ws, record: RunRecord) -> RunRecord:
    """A run still marked queued or running whose process is gone (kill -9, a crash, a reboot) is recorded as
    failed the first time anyone reads it, so the registry never claims a dead run is training."""
    if record.state not in ("queued", "running"):
        return record
    path = runs_dir(ws) / record.id / "status.json"
    try:
        status = RunStatus.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return record
    if not status.pid or _alive(status.pid):
        return record
    record.state = "failed"
    record.error = (f"the training process {status.pid} ended without finishing (killed?); see "
                    f"{runs_dir(ws) / record.id / 'train.log'} and resume with `engrain train --resume {record.id}`")
    try:
        save(ws, record)
        write_status(ws, status.model_copy(update={"state": "failed", "error": record.error}))
    except OSError:
        pass  # a read-only registry still reads as failed; the next writable read records it
    return record


def write_status(ws, status: RunStatus) -> None:
    write_json(run_dir(ws, status.run_id) / "status.json", status)


def run_status(ws, run_id: str) -> RunStatus:
    record = get_run(ws, run_id)
    path = run_dir(ws, run_id) / "status.json"
    status = (RunStatus.model_validate_json(path.read_text(encoding="utf-8")) if path.is_file()
              else RunStatus(run_id=run_id, state=record.state))
    if record.state in ("done", "failed"):
        # run.json is written last and wins: it holds the final artifacts and error.
        status = status.model_copy(update={"state": record.state, "error": record.error,
                                           "artifacts": record.artifacts})
    elif status.pid and not _alive(status.pid):
        status = status.model_copy(update={
            "state": "failed", "error": f"the training process {status.pid} exited without finishing; "
                                        f"see {run_dir(ws, run_id) / 'train.log'} and resume with "
                                        f"`engrain train --resume {run_id}`"})
    return status


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A finished child that nobody reaped is a zombie: gone for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return True
