"""Providers: each module offers `complete(model, job, timeout) -> OpenAI chat.completion dict` and
`stream(model, job, timeout) -> async iterator of OpenAI chunks`, raising ProviderError on failure.

A job is an OpenAI chat request without `model`/`stream`: messages, tools, max_tokens, temperature, ...
"""
from __future__ import annotations

import asyncio
import json
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from router.config import ModelConfig
from router.errors import ProviderError


def module(m: ModelConfig) -> ModuleType:
    if m.provider == "llamacpp":
        from router.providers import llamacpp as mod
    elif m.provider == "ollama":
        from router.providers import ollama as mod
    elif m.provider == "openai":
        from router.providers import openai_compat as mod
    else:
        from router.providers import hosted as mod
    return mod


class ChatResult(BaseModel):
    text: str
    tool_calls: list[dict[str, Any]]
    prompt_tokens: int
    completion_tokens: int


def chat(model: ModelConfig, messages: list[dict], *, max_tokens: int = 256, temperature: float = 0.0,
         seed: int = 0, tools: list[dict] | None = None, timeout: float = 300.0) -> ChatResult:
    """One blocking completion from `model` (no routing, no fallback). Raises ProviderError."""
    job: dict[str, Any] = {"messages": messages, "max_tokens": max_tokens, "temperature": temperature,
                           "seed": seed}
    if tools:
        job["tools"] = tools
    completion = asyncio.run(module(model).complete(model, job, timeout))
    message = completion["choices"][0].get("message") or {}
    usage = completion.get("usage") or {}
    calls = [{"name": c["function"]["name"], "arguments": _args(c["function"].get("arguments"))}
             for c in message.get("tool_calls") or []]
    return ChatResult(text=message.get("content") or "", tool_calls=calls,
                      prompt_tokens=usage.get("prompt_tokens", 0), completion_tokens=usage.get("completion_tokens", 0))


def _args(arguments: Any) -> dict:
    if isinstance(arguments, dict):
        return arguments
    try:
        return json.loads(arguments or "{}")
    except ValueError as exc:
        raise ProviderError(f"model returned tool arguments that are not JSON: {arguments!r}",
                            retryable=False) from exc
