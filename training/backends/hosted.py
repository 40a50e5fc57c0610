"""The hosted backend: OpenAI's fine-tuning API through the `openai` client (upload, create job, poll).

OPENAI_API_KEY and OPENAI_BASE_URL configure the client as usual, so any server speaking the API works.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from training.backends.job import StageJob, StageOutput
from training.data import read_jsonl
from training.errors import HostedJobFailed

_FINISHED = ("succeeded", "failed", "cancelled")
DATA_FORMAT = "openai"


def start(ws, cfg) -> tuple[str, bool]:
    """Nothing to prepare locally: the provider fine-tunes its own model."""
    return cfg.hosted_model, False


def train_stage(job: StageJob, on_step: Callable[[int, int, float, float], None] | None = None) -> StageOutput:
    """Each stage fine-tunes the previous stage's fine-tuned model: the hosted form of a curriculum."""
    c = job.config
    model = job.init_adapter or job.base
    out = fine_tune(job.data_dir, model=model, suffix=f"engrain-{job.name}", seed=c.seed,
                    epochs=None if job.max_steps else job.epochs, on_step=on_step, poll_s=c.hosted_poll_seconds)
    return StageOutput(adapter=out["model"], examples=len(read_jsonl(job.data_dir / "train.jsonl")),
                       steps=len(out["losses"]), losses=out["losses"], started_from=model,
                       artifacts={f"hosted_job:{job.name}": out["job_id"]}, hosted_model=out["model"])


def fine_tune(data_dir: Path, *, model: str, suffix: str, seed: int, epochs: float | None,
              on_step: Callable[[int, int, float, float], None] | None = None,
              poll_s: float) -> dict:
    """Run one hosted job on data_dir/train.jsonl (+ valid.jsonl); returns job id, model name and losses."""
    from openai import OpenAI

    client = OpenAI()
    train = _upload(client, data_dir / "train.jsonl")
    valid_path = data_dir / "valid.jsonl"
    valid = _upload(client, valid_path) if valid_path.is_file() else None
    hyper = {"n_epochs": max(1, round(epochs))} if epochs else {}
    job = client.fine_tuning.jobs.create(
        model=model, training_file=train, validation_file=valid, suffix=suffix[:64], seed=seed,
        method={"type": "supervised", "supervised": {"hyperparameters": hyper}})
    losses: dict[int, float] = {}
    seen: set[str] = set()
    while True:
        job = client.fine_tuning.jobs.retrieve(job.id)
        for event in reversed(client.fine_tuning.jobs.list_events(job.id, limit=100).data):
            if event.id in seen:
                continue
            seen.add(event.id)
            data = event.data or {}
            if event.type == "metrics" and "step" in data:
                losses[int(data["step"])] = float(data.get("train_loss", float("nan")))
                if on_step:
                    on_step(int(data["step"]), int(data.get("total_steps") or 0), losses[int(data["step"])], 0.0)
        if job.status in _FINISHED:
            break
        time.sleep(poll_s)
    if job.status != "succeeded" or not job.fine_tuned_model:
        reason = job.error.message if job.error and job.error.message else job.status
        raise HostedJobFailed(f"hosted fine-tuning job {job.id} {job.status}: {reason}")
    return {"job_id": job.id, "model": job.fine_tuned_model, "losses": [losses[k] for k in sorted(losses)],
            "trained_tokens": job.trained_tokens or 0}


def _upload(client, path: Path) -> str:
    # OpenAI's fine-tuning format takes only these keys per line; datagen's export may carry more.
    rows = [{k: r[k] for k in ("messages", "tools") if k in r} for r in read_jsonl(path)]
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    return client.files.create(file=(path.name, payload), purpose="fine-tune").id
