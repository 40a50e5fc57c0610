"""Ollama's native API through the `ollama` client's AsyncClient; answers mapped to OpenAI's shape."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
import weakref
from typing import Any, AsyncIterator

from router.config import ModelConfig
from router.errors import ProviderError

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = weakref.WeakKeyDictionary()
_OPTIONS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "seed": "seed", "stop": "stop",
            "max_tokens": "num_predict", "presence_penalty": "presence_penalty",
            "frequency_penalty": "frequency_penalty", "min_p": "min_p"}


def warm(m: ModelConfig) -> None:
    import ollama  # noqa: F401 - imported once at startup, not on the first request


def _client(m: ModelConfig, timeout: float) -> Any:
    # httpx clients belong to one event loop: keep one per loop and deployment, reusing connections
    from ollama import AsyncClient

    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    key = (m.api_base, timeout)
    if key not in per_loop:
        headers = {"authorization": f"Bearer {m.key()}"} if m.key() else None
        per_loop[key] = AsyncClient(host=m.api_base, timeout=timeout, headers=headers)
    return per_loop[key]


def _messages(job: dict) -> list[dict]:
    out = []
    for msg in job["messages"]:
        content = msg.get("content")
        images = []
        if isinstance(content, list):
            images = [p["image_url"]["url"].split(",", 1)[-1] for p in content if p.get("type") == "image_url"]
            content = "\n".join(p.get("text", "") for p in content if p.get("type") == "text")
        item: dict[str, Any] = {"role": "system" if msg["role"] == "developer" else msg["role"],
                                "content": content or ""}
        if images:
            item["images"] = images
        if msg.get("tool_calls"):
            item["tool_calls"] = [{"function": {"name": c["function"]["name"],
                                                "arguments": _args(c["function"].get("arguments"))}}
                                  for c in msg["tool_calls"]]
        out.append(item)
    return out


def _args(arguments: Any) -> dict:
    if isinstance(arguments, dict):
        return arguments
    try:
        return json.loads(arguments or "{}")
    except ValueError:
        return {}


def _request(m: ModelConfig, job: dict) -> dict:
    options = {dst: job[src] for src, dst in _OPTIONS.items() if job.get(src) is not None}
    request: dict[str, Any] = {"model": m.model, "messages": _messages(job), "options": options}
    if job.get("tools"):
        request["tools"] = job["tools"]
    fmt = job.get("response_format") or {}
    if fmt.get("type") == "json_object":
        request["format"] = "json"
    elif fmt.get("type") == "json_schema":
        request["format"] = (fmt.get("json_schema") or {}).get("schema")
    return request


def _error(exc: Exception) -> ProviderError:
    from ollama import ResponseError

    if isinstance(exc, ResponseError):
        status = exc.status_code
        if status in (400, 413, 422):
            code = "context_length_exceeded" if "context" in str(exc.error).lower() else None
            return ProviderError(f"ollama: {exc.error}", status, retryable=False, client_fault=True, code=code)
        return ProviderError(f"ollama {status}: {exc.error}", status, retryable=status == 429 or status >= 500)
    return ProviderError(f"ollama unreachable: {exc}", None, retryable=True)


def _tool_calls(message: Any) -> list[dict]:
    return [{"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
             "function": {"name": c.function.name, "arguments": json.dumps(dict(c.function.arguments or {}))}}
            for c in (message.tool_calls or [])]


def _finish(part: Any, tool_calls: bool) -> str:
    return "tool_calls" if tool_calls else ("length" if part.done_reason == "length" else "stop")


def _usage(part: Any) -> dict:
    pt, ct = part.prompt_eval_count or 0, part.eval_count or 0
    return {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}


def _failures() -> tuple[type[BaseException], ...]:
    import httpx
    from ollama import ResponseError

    return (httpx.HTTPError, ConnectionError, OSError, ResponseError)


async def complete(m: ModelConfig, job: dict, timeout: float) -> dict:
    try:
        part = await _client(m, timeout).chat(**_request(m, job), stream=False)
    except _failures() as exc:
        raise _error(exc) from exc
    calls = _tool_calls(part.message)
    message: dict[str, Any] = {"role": "assistant", "content": part.message.content or ("" if not calls else None)}
    if calls:
        message["tool_calls"] = calls
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": m.model, "choices": [{"index": 0, "message": message, "finish_reason": _finish(part, bool(calls))}],
            "usage": _usage(part)}


async def stream(m: ModelConfig, job: dict, timeout: float) -> AsyncIterator[dict]:
    cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())

    def chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> dict:
        out = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": m.model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        if usage:
            out["usage"] = usage
        return out

    try:
        parts = await _client(m, timeout).chat(**_request(m, job), stream=True)
        first = True
        calls = 0
        async for part in parts:
            delta: dict[str, Any] = {"role": "assistant"} if first else {}
            first = False
            if part.message.content:
                delta["content"] = part.message.content
            new_calls = _tool_calls(part.message)
            if new_calls:
                delta["tool_calls"] = [{"index": calls + i, **c} for i, c in enumerate(new_calls)]
                calls += len(new_calls)
            if part.done:
                if delta:
                    yield chunk(delta)
                yield chunk({}, _finish(part, calls > 0), _usage(part))
                return
            if delta:
                yield chunk(delta)
    except _failures() as exc:
        raise _error(exc) from exc
    raise ProviderError("ollama stream ended without a done object")
