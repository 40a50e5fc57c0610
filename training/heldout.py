"""The held-out prompts of a run: the validation split its stages were exported with (never trained on), written
as `heldout.jsonl` in the run folder so `engrain eval RUN` has prompts without `--prompts`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PREFIX_KEY = "engrain_prefix"        # mlx exports' per-turn prefixes: the whole conversation follows them
FIELDS_SUFFIX = ".fields.jsonl"      # OpenAI exports keep category/meta beside the file


def write(run_folder: Path) -> Path | None:
    """Write the run's held-out prompts; None when its split held nothing out (too few examples per category)."""
    rows: dict[str, dict[str, Any]] = {}
    for valid in sorted(run_folder.glob("stages/*/data/*/valid.jsonl")):
        for record in _records(valid):
            prompt = _prompt(record)
            if prompt:
                rows.setdefault(prompt["prompt"], prompt)
    if not rows:
        return None
    path = run_folder / "heldout.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows.values()), encoding="utf-8")
    return path


def _records(path: Path) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    sidecar = path.with_name(path.stem + FIELDS_SUFFIX)
    if sidecar.is_file():
        fields = [json.loads(line) for line in sidecar.read_text(encoding="utf-8").splitlines() if line.strip()]
        records = [{**r, **f} for r, f in zip(records, fields)]
    return [r for r in records if not r.get(PREFIX_KEY)]


def _prompt(record: dict[str, Any]) -> dict[str, Any] | None:
    """The first user turn, and whether the reference answer to it called a tool (tool-call validity counts only
    prompts where a call was expected)."""
    messages = record.get("messages") or []
    first = next((i for i, m in enumerate(messages) if m.get("role") == "user"), None)
    if first is None or not isinstance(messages[first].get("content"), str):
        return None
    reply = next((m for m in messages[first + 1:] if m.get("role") == "assistant"), {})
    out: dict[str, Any] = {"prompt": messages[first]["content"], "category": record.get("category")}
    if record.get("tools"):
        out["tools"] = record["tools"]
        out["expects_tool_call"] = bool(reply.get("tool_calls"))
    return out
