"""OpenAI-compatible servers (vLLM, llama.cpp's server, LM Studio, OpenAI itself) called directly over httpx.

The router already holds the request in this wire format, so it is forwarded as JSON, not rebuilt. Why not
litellm or the openai SDK here: both parse the reply into objects and dump them back (litellm also prices
and logs every call), which measured ~8 ms of CPU per request on 2 cores, more than the router's whole
overhead budget (bench/router.py). Translation between protocols stays with the `litellm` provider.
"""
from __future__ import annotations

import json
from typing import Any, AsyncIterator

import httpx

from router.config import ModelConfig
from router.providers.pool import client
from router.errors import ProviderError, retry_after_s, upstream_error


def warm(m: ModelConfig) -> None:
    """Nothing to import or load: the connection pool opens on the first call."""


def _request(m: ModelConfig, job: dict, timeout: float, **extra: Any) -> tuple[str, dict, dict, httpx.Timeout]:
    if not m.api_base:
        raise ProviderError(f"model {m.name!r}: provider 'openai' needs api_base", retryable=False)
    headers = {"authorization": f"Bearer {m.key()}"} if m.key() else {}
    body = {**{k: v for k, v in job.items() if v is not None}, "model": m.model, **extra}
    return m.api_base.rstrip("/") + "/chat/completions", body, headers, httpx.Timeout(timeout)


def _status_error(status: int, text: str, retry_after: str | None = None) -> ProviderError:
    try:
        error = json.loads(text).get("error") or {}
        message, code = error.get("message") or text, error.get("code")
    except (ValueError, AttributeError):
        message, code = text, None
    return upstream_error(f"upstream {status}: {message}", status, code, retry_after_s(retry_after))


def _transport_error(exc: httpx.HTTPError) -> ProviderError:
    return ProviderError(f"upstream unreachable: {type(exc).__name__}: {exc}", retryable=True)


async def complete(m: ModelConfig, job: dict, timeout: float) -> dict:
    url, body, headers, limit = _request(m, job, timeout, stream=False)
    try:
        response = await client().post(url, json=body, headers=headers, timeout=limit)
    except httpx.HTTPError as exc:
        raise _transport_error(exc) from exc
    if response.status_code != 200:
        raise _status_error(response.status_code, response.text, response.headers.get("retry-after"))
    try:
        return response.json()
    except ValueError as exc:
        raise ProviderError(f"upstream sent a reply that is not JSON: {response.text[:200]!r}") from exc


async def stream(m: ModelConfig, job: dict, timeout: float) -> AsyncIterator[dict]:
    url, body, headers, limit = _request(m, job, timeout, stream=True, stream_options={"include_usage": True})
    try:
        async with client().stream("POST", url, json=body, headers=headers, timeout=limit) as response:
            if response.status_code != 200:
                raise _status_error(response.status_code, (await response.aread()).decode(errors="replace"),
                                    response.headers.get("retry-after"))
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    chunk = json.loads(data)
                except ValueError as exc:
                    raise ProviderError(f"upstream sent an event that is not JSON: {data[:200]!r}") from exc
                if "error" in chunk:
                    raise ProviderError(f"upstream error mid-stream: {chunk['error']}")
                yield chunk
    except httpx.HTTPError as exc:
        raise _transport_error(exc) from exc
    raise ProviderError("upstream closed the stream without [DONE]")
