"""Hosted models through litellm's acompletion (Anthropic, OpenAI and the rest litellm speaks)."""
from __future__ import annotations

import functools
import json
import os
import re
from typing import Any, AsyncIterator

from router.config import ModelConfig
from router.errors import ProviderError, retry_after_s, upstream_error


@functools.cache
def _litellm() -> Any:
    # read at import: the bundled cost map, not a fetch from GitHub (offline: ~8 s of retries and warnings)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


def warm(m: ModelConfig) -> None:
    _litellm()


def _kwargs(m: ModelConfig, job: dict, timeout: float) -> dict:
    kwargs = {k: v for k, v in job.items() if v is not None}
    kwargs.update(model=m.model, timeout=timeout, num_retries=0, max_retries=0, drop_params=True)
    if m.api_base:
        kwargs["api_base"] = m.api_base
    if m.key():
        kwargs["api_key"] = m.key()
    return kwargs


_WRAPPING = re.compile(r"^litellm\.\w+: (\w+: )?\w+(Exception|Error) - |\s*\. Handle with `litellm\.\w+`\.?$"
                       r"|\s*Received Model Group=.*$|\s*LiteLLM Retried: .*$", re.S)
_REPR = re.compile(r"\s*\S*<[\w.]+ object at 0x[0-9a-f]+>")
_UNREACHABLE = re.compile(r"Cannot connect to host|Connection error|Connect call failed|Connection refused", re.I)


def plain_message(exc: Exception) -> str:
    """What the upstream said, in plain words: litellm wraps it in its class names, object reprs and advice
    on catching its exceptions, none of which means anything to the client."""
    text = _REPR.sub("", _WRAPPING.sub("", getattr(exc, "message", None) or str(exc))).strip()
    try:
        error = json.loads(text).get("error") or {}
        text = f"{error.get('type', 'error')}: {error.get('message', '')}" if isinstance(error, dict) else text
    except (ValueError, AttributeError):
        pass
    # litellm reports a refused connection as an InternalServerError with status 500: it is not an answer
    if isinstance(exc, _litellm().APIConnectionError) or _UNREACHABLE.search(text):
        return f"unreachable ({text or 'connection error'})"
    status = getattr(exc, "status_code", None)
    # the client's own mistakes reach it in the upstream's words; a deployment's failure says what it answered
    return f"answered {status}: {text}" if status and status not in (400, 413, 422) else text


def _error(exc: Exception) -> ProviderError:
    lt = _litellm()
    status = getattr(exc, "status_code", None)
    message = plain_message(exc)
    if isinstance(exc, lt.ContextWindowExceededError):
        return ProviderError(message, 400, retryable=False, client_fault=True, code="context_length_exceeded")
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    retry_after = retry_after_s(headers.get("retry-after")) if hasattr(headers, "get") else None
    if isinstance(exc, (lt.Timeout, lt.APIConnectionError, lt.RateLimitError, lt.InternalServerError,
                        lt.ServiceUnavailableError)):
        return ProviderError(message, status, retryable=True, retry_after=retry_after)
    return upstream_error(message, status, retry_after=retry_after)


async def complete(m: ModelConfig, job: dict, timeout: float) -> dict:
    lt = _litellm()
    try:
        response = await lt.acompletion(**_kwargs(m, job, timeout))
    except Exception as exc:  # litellm raises its own hierarchy; every kind is mapped
        raise _error(exc) from exc
    return response.model_dump(exclude_none=True)


def _chunk(chunk: Any) -> dict:
    # litellm's stream objects carry many provider-specific extras; clients need the OpenAI fields only
    out: dict[str, Any] = {"id": chunk.id, "object": "chat.completion.chunk", "created": chunk.created,
                           "model": chunk.model, "choices": []}
    for choice in chunk.choices:
        delta: dict[str, Any] = {}
        d = choice.delta
        if getattr(d, "role", None):
            delta["role"] = d.role
        if getattr(d, "content", None):
            delta["content"] = d.content
        if getattr(d, "tool_calls", None):
            delta["tool_calls"] = [{"index": c.index, **({"id": c.id} if c.id else {}),
                                    **({"type": "function"} if c.id else {}),
                                    "function": {k: v for k, v in (("name", c.function.name),
                                                                   ("arguments", c.function.arguments)) if v}}
                                   for c in d.tool_calls]
        out["choices"].append({"index": choice.index, "delta": delta, "finish_reason": choice.finish_reason})
    usage = getattr(chunk, "usage", None)
    if usage:
        out["usage"] = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                        "total_tokens": usage.total_tokens}
    return out


async def stream(m: ModelConfig, job: dict, timeout: float) -> AsyncIterator[dict]:
    lt = _litellm()
    try:
        response = await lt.acompletion(stream=True, stream_options={"include_usage": True},
                                        **_kwargs(m, job, timeout))
        async for chunk in response:
            yield _chunk(chunk)
    except ProviderError:
        raise
    except Exception as exc:  # litellm raises its own hierarchy; every kind is mapped
        raise _error(exc) from exc
