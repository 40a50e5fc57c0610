"""A loopback server speaking OpenAI's Files and Fine-tuning Jobs API (the parts the hosted backend uses).

  POST /v1/files                         multipart (file, purpose) -> File object
  POST /v1/fine_tuning/jobs              {model, training_file, validation_file?, suffix?, seed?, method?} -> job
  GET  /v1/fine_tuning/jobs/{id}         the job; each retrieve moves it on: validating_files -> running ->
                                         succeeded (or failed when a training line is not valid chat JSONL)
  GET  /v1/fine_tuning/jobs/{id}/events  {"object": "list", "data": [newest first], "has_more": false}
Errors use OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any

from tests.fakes.base import FakeServer, Handler, start

_ALLOWED_KEYS = {"messages", "tools", "parallel_tool_calls"}
STEPS = 4


def _error(message: str, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}


@dataclass
class OpenAIFineTuneFake(FakeServer):
    files: dict[str, dict] = field(default_factory=dict)
    contents: dict[str, bytes] = field(default_factory=dict)
    jobs: dict[str, dict] = field(default_factory=dict)
    events: dict[str, list[dict]] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)


class _Handler(Handler):
    fake: OpenAIFineTuneFake
    routes = {("POST", "/v1/files"): "upload", ("POST", "/v1/fine_tuning/jobs"): "create_job",
              ("GET", "/v1/fine_tuning/jobs/"): "job_get"}

    def upload(self, path: str) -> None:
        raw = self.read_body()
        message = BytesParser(policy=default_policy).parsebytes(
            b"content-type: " + self.headers["content-type"].encode() + b"\r\n\r\n" + raw)
        parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()}
        self.record({"purpose": parts["purpose"].get_content() if "purpose" in parts else None})
        if "file" not in parts or "purpose" not in parts:
            self.send_json(400, _error("file and purpose are required", "file"))
            return
        data = parts["file"].get_payload(decode=True)
        file_id = "file-" + secrets.token_hex(8)
        obj = {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
               "filename": parts["file"].get_filename(), "purpose": parts["purpose"].get_content().strip(),
               "status": "processed"}
        self.fake.files[file_id], self.fake.contents[file_id] = obj, data
        self.send_json(200, obj)

    def create_job(self, path: str) -> None:
        body = self.read_json()
        self.record(body)
        for key in ("training_file", "validation_file"):
            if body.get(key) and body[key] not in self.fake.files:
                self.send_json(400, _error(f"invalid {key}: {body[key]}", key))
                return
        if not body.get("model") or not body.get("training_file"):
            self.send_json(400, _error("model and training_file are required", "model"))
            return
        job_id = "ftjob-" + secrets.token_hex(8)
        job = {"id": job_id, "object": "fine_tuning.job", "model": body["model"], "created_at": int(time.time()),
               "status": "validating_files", "training_file": body["training_file"],
               "validation_file": body.get("validation_file"), "fine_tuned_model": None, "finished_at": None,
               "hyperparameters": {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"},
               "organization_id": "org-fake", "result_files": [], "seed": body.get("seed", 0),
               "trained_tokens": None, "error": None, "method": body.get("method"),
               "user_provided_suffix": body.get("suffix")}
        self.fake.jobs[job_id], self.fake.events[job_id], self.fake.polls[job_id] = job, [], 0
        self._event(job_id, "message", f"Created fine-tuning job: {job_id}")
        self.send_json(200, job)

    def job_get(self, path: str) -> None:
        self.record(None)
        parts = path.removeprefix("/v1/fine_tuning/jobs/").split("/")
        job = self.fake.jobs.get(parts[0])
        if job is None:
            self.send_json(404, _error(f"No fine-tuning job found with id {parts[0]}", "fine_tuning_job_id"))
            return
        if parts[1:] == ["events"]:
            data = list(reversed(self.fake.events[job["id"]]))
            self.send_json(200, {"object": "list", "data": data, "has_more": False})
            return
        self._advance(job)
        self.send_json(200, job)

    def _advance(self, job: dict) -> None:
        n = self.fake.polls[job["id"]] = self.fake.polls[job["id"]] + 1
        if job["status"] == "validating_files" and n >= 1:
            problem = _invalid(self.fake.contents[job["training_file"]])
            if problem:
                job.update(status="failed", finished_at=int(time.time()),
                           error={"code": "invalid_training_file", "message": problem, "param": "training_file"})
                return
            job["status"] = "running"
            for step in range(1, STEPS + 1):
                self._event(job["id"], "metrics", f"Step {step}/{STEPS}: training loss={2.0 / step:.3f}",
                            {"step": step, "train_loss": 2.0 / step, "total_steps": STEPS})
        elif job["status"] == "running":
            suffix = job["user_provided_suffix"] or "ft"
            job.update(status="succeeded", finished_at=int(time.time()), trained_tokens=1234,
                       fine_tuned_model=f"ft:{job['model']}:org-fake:{suffix}:{secrets.token_hex(3)}")
            self._event(job["id"], "message", "The job has successfully completed")

    def _event(self, job_id: str, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        self.fake.events[job_id].append({
            "id": "ftevent-" + secrets.token_hex(6), "object": "fine_tuning.job.event", "created_at": int(time.time()),
            "level": "info", "message": message, "type": kind, "data": data or {}})


def _invalid(content: bytes) -> str | None:
    for n, line in enumerate(content.decode().splitlines(), 1):
        row = json.loads(line)
        if set(row) - _ALLOWED_KEYS:
            return f"line {n}: unexpected keys {sorted(set(row) - _ALLOWED_KEYS)}"
        if not any(m.get("role") == "assistant" for m in row.get("messages", [])):
            return f"line {n}: no assistant message"
    return None


def start_openai_ft() -> OpenAIFineTuneFake:
    return start(_Handler, OpenAIFineTuneFake())
