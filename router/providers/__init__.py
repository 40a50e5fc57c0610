"""Providers: each module offers `complete(model, job, timeout) -> OpenAI chat.completion dict` and
`stream(model, job, timeout) -> async iterator of OpenAI chunks`, raising ProviderError on failure.

A job is an OpenAI chat request without `model`/`stream`: messages, tools, max_tokens, temperature, ...
"""
from __future__ import annotations

import asyncio
import json
from types import ModuleType
from typing import Any, AsyncIterator

from pydantic import BaseModel

from router.config import ModelConfig
from router.errors import ProviderError


def module(m: ModelConfig) -> ModuleType:
    if m.provider == "anthropic":
        from router.providers import anthropic as mod
    elif m.provider == "llamacpp":
        from router.providers import llamacpp as mod
    elif m.provider == "ollama":
        from router.providers import ollama as mod
    elif m.provider == "openai":
        from router.providers import openai_compat as mod
    else:
        from router.providers import hosted as mod
    return mod


def load_error(m: ModelConfig) -> str | None:
    """Why a deployment cannot serve at all (a local model that failed to load), or None."""
    if m.provider != "llamacpp":
        return None
    from router.providers import llamacpp

    return llamacpp.load_error(m)


def passes_through(m: ModelConfig, native: Any) -> bool:
    """Whether the client's own request (`native`: an Anthropic request as sent, or None) goes to `m` as is."""
    return native is not None and m.provider == "anthropic"


async def complete(m: ModelConfig, job: dict, native: Any, timeout: float) -> dict:
    """An OpenAI chat.completion for `job`, or the upstream's own Anthropic message when it passes through."""
    if passes_through(m, native):
        from router.providers import anthropic

        return await anthropic.forward(m, native, timeout)
    return await module(m).complete(m, job, timeout)


def stream(m: ModelConfig, job: dict, native: Any, timeout: float) -> AsyncIterator[Any]:
    """OpenAI chunks for `job`, or the upstream's own SSE events (`anthropic.Event`) when it passes through."""
    if passes_through(m, native):
        from router.providers import anthropic

        return anthropic.forward_stream(m, native, timeout)
    return module(m).stream(m, job, timeout)


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
