"""Headless generation: K worker threads ask a model (via litellm) for examples from the same brief the MCP server
gives Claude Code; every answer goes through the same validation, dedup and store as any other submission."""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel, Field

from datagen.brief import build_brief
from datagen.ingest import submit
from datagen.llm import Usage, complete_with_usage
from datagen.schema import Verdict

SYSTEM = """You write training examples for fine-tuning a coding assistant. You get a brief: the category to
teach, its guidance, the rules every reply must follow, knowledge excerpts from the project, the exact
format, a valid sample, the tools available, and openings to avoid repeating. Write ONE new example that
follows the brief. Reply with the JSON object only: no prose, no code fence around it."""

ATTEMPTS_PER_EXAMPLE = 3


class GenerateResult(BaseModel):
    requested: int
    accepted: list[str] = Field(default_factory=list, description="ids of the stored examples")
    rejected: list[Verdict] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list, description="model calls that failed after retries")
    usage: Usage = Field(default_factory=Usage, description="tokens and cost of the calls that answered")


def generate(ws, category: str, count: int, model: str, *, workers: int = 4, api_base: str | None = None,
             retries: int = 2, on_verdict: Callable[[Verdict], None] | None = None) -> GenerateResult:
    """Stop at `count` accepted examples or after ATTEMPTS_PER_EXAMPLE * count attempts, whichever comes first."""
    build_brief(ws, category, count)  # fail fast on an unknown category, before any thread starts
    result = GenerateResult(requested=count)
    lock = threading.Lock()
    budget = {"attempts": ATTEMPTS_PER_EXAMPLE * count, "in_flight": 0}

    def worker() -> None:
        feedback: list[str] = []
        while True:
            with lock:
                if len(result.accepted) + budget["in_flight"] >= count or budget["attempts"] <= 0:
                    return
                budget["attempts"] -= 1
                budget["in_flight"] += 1
            try:
                verdict, error, usage = _attempt(ws, category, model, api_base, retries, feedback)
            finally:
                with lock:
                    budget["in_flight"] -= 1
            with lock:
                result.usage.add(usage)
                if error:
                    result.errors.append(error)
                elif verdict.accepted:
                    result.accepted.append(verdict.id)
                else:
                    result.rejected.append(verdict)
            if verdict is not None:
                feedback = verdict.reasons
                if on_verdict:
                    on_verdict(verdict)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for future in [pool.submit(worker) for _ in range(max(1, workers))]:
            future.result()
    return result


def _attempt(ws, category: str, model: str, api_base: str | None, retries: int,
             feedback: list[str]) -> tuple[Verdict | None, str, Usage]:
    brief = build_brief(ws, category, 1)
    prompt = brief.model_dump_json(indent=1)
    if feedback:
        prompt += "\n\nYour previous example was rejected for these reasons; avoid them:\n- " + "\n- ".join(feedback)
    try:
        text, usage = complete_with_usage(model, [{"role": "system", "content": SYSTEM},
                                                  {"role": "user", "content": prompt}], api_base=api_base,
                                          retries=retries)
    except Exception as exc:  # litellm maps every provider failure to its own exception types
        return None, f"{type(exc).__name__}: {exc}", Usage()
    record = first_json_object(text)
    if record is None:
        return Verdict(index=0, accepted=False, reasons=["the model's answer contains no JSON object"]), "", usage
    record["category"] = category
    return submit(ws, [record], generator=f"generate:{model}")[0], "", usage


def first_json_object(text: str) -> dict | None:
    """The first JSON object in a model's answer, tolerating prose or a code fence around it."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None
