"""Anthropic's Messages API over httpx: requests of Anthropic's own shape pass through untouched.

A `/v1/messages` request routed here goes upstream as the client sent it — every body field kept
(`cache_control`, `thinking`, `metadata`, `tool_reference` blocks, `defer_loading`, ...), only `model` rewritten —
with its `anthropic-version` / `anthropic-beta` headers, and the answer comes back as the upstream wrote it:
the SSE stream relayed event by event, usage as the upstream counted it. Rebuilding the request through
another shape would drop what that shape has no field for (prompt caching first of all).

An OpenAI-shaped request crosses API families: that conversion is litellm's job (`providers.hosted`).
"""
from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from typing import AsyncIterator

import httpx

from router.config import ModelConfig
from router.providers.pool import client
from router.errors import ProviderError, upstream_error

DEFAULT_BASE = "https://api.anthropic.com"
DEFAULT_VERSION = "2023-06-01"
# the client's own headers that describe the request; its credentials are for the router, never forwarded
_FORWARDED = ("anthropic-version", "anthropic-beta")


@dataclass
class Native:
    """An Anthropic request as the client sent it: the parsed JSON body and its anthropic-* headers."""

    body: dict
    headers: dict[str, str] = field(default_factory=dict)


def warm(m: ModelConfig) -> None:
    """Nothing to load for passed-through requests; litellm is imported by the first OpenAI-shaped one."""


def upstream_model(m: ModelConfig, requested: str) -> str:
    """The client's own model id when this deployment serves it (`serves` patterns), else the configured one."""
    return requested if any(fnmatch.fnmatchcase(requested, p) for p in m.serves) else m.model


def _request(m: ModelConfig, native: Native, path: str) -> tuple[str, bytes, dict]:
    body = {**native.body, "model": upstream_model(m, str(native.body.get("model", "")))}
    headers = {"content-type": "application/json", "anthropic-version": DEFAULT_VERSION}
    headers.update({k: v for k, v in native.headers.items() if k in _FORWARDED})
    if m.key():
        headers["x-api-key"] = m.key()
    return (m.base_url() or DEFAULT_BASE).rstrip("/") + path, json.dumps(body).encode(), headers


def _status_error(status: int, text: str) -> ProviderError:
    try:
        error = json.loads(text).get("error") or {}
        message, kind = error.get("message") or text, error.get("type")
    except (ValueError, AttributeError):
        message, kind = text[:300], None
    failure = upstream_error(message, status, kind)
    if not failure.client_fault:     # the client's own mistakes reach it verbatim (Claude Code reads them)
        failure.message = f"answered {status} {kind or 'error'}: {message}"
    return failure


def _transport_error(exc: httpx.HTTPError) -> ProviderError:
    reason = str(exc) or type(exc).__name__.lower()
    return ProviderError(f"unreachable ({reason})", retryable=True)


async def _post(m: ModelConfig, native: Native, path: str, timeout: float) -> httpx.Response:
    """A non-streamed call; transport failures and non-200 answers become ProviderErrors."""
    url, body, headers = _request(m, native, path)
    try:
        response = await client().post(url, content=body, headers=headers, timeout=httpx.Timeout(timeout))
    except httpx.HTTPError as exc:
        raise _transport_error(exc) from exc
    if response.status_code != 200:
        raise _status_error(response.status_code, response.text)
    return response


async def forward(m: ModelConfig, native: Native, timeout: float) -> dict:
    """POST /v1/messages (not streamed); the upstream's message as it sent it."""
    response = await _post(m, native, "/v1/messages", timeout)
    try:
        return response.json()
    except ValueError as exc:
        raise ProviderError(f"sent a reply that is not JSON: {response.text[:200]!r}") from exc


async def count_tokens(m: ModelConfig, native: Native, timeout: float) -> dict:
    """POST /v1/messages/count_tokens: the upstream's own count of the request's input tokens."""
    return (await _post(m, native, "/v1/messages/count_tokens", timeout)).json()


def usage_of(usage: dict | None) -> dict:
    """Anthropic usage in the router's (OpenAI) terms: every input token, cached or not, is a prompt token."""
    usage = usage or {}
    prompt = sum(int(usage.get(k) or 0) for k in ("input_tokens", "cache_creation_input_tokens",
                                                   "cache_read_input_tokens"))
    return {"prompt_tokens": prompt, "completion_tokens": int(usage.get("output_tokens") or 0)}


def _event(lines: list[str]) -> dict:
    """One upstream SSE event as a stream item: `raw` (its bytes, relayed as they are), `event`, and the
    `usage` it reports. Only the events that carry usage or a failure are parsed."""
    kind, data = "", ""
    for line in lines:
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
    item = {"event": kind, "raw": ("\n".join(lines) + "\n\n").encode()}
    if kind in ("message_start", "message_delta", "error") and data:
        try:
            parsed = json.loads(data)
        except ValueError as exc:
            raise ProviderError(f"sent an event that is not JSON: {data[:200]!r}") from exc
        if kind == "error":
            error = parsed.get("error") or {}
            raise ProviderError(f"error mid-stream: {error.get('type', 'error')}: {error.get('message', '')}")
        usage = (parsed.get("message") or {}).get("usage") if kind == "message_start" else parsed.get("usage")
        item["usage"] = {k: v for k, v in usage_of(usage).items() if v}
    return item


class Relay:
    """The stream writer for a passed-through stream (beside convert.AnthropicStream): each event as it came."""

    input_tokens = 0

    def feed(self, item: dict) -> list[bytes]:
        return [item["raw"]]

    def finish(self) -> list[bytes]:
        return []


async def forward_stream(m: ModelConfig, native: Native, timeout: float) -> AsyncIterator[dict]:
    """POST /v1/messages with stream: the upstream's SSE events (see `_event`), one at a time, as they arrive."""
    url, body, headers = _request(m, native, "/v1/messages")
    try:
        async with client().stream("POST", url, content=body, headers=headers,
                                    timeout=httpx.Timeout(timeout)) as response:
            if response.status_code != 200:
                raise _status_error(response.status_code, (await response.aread()).decode(errors="replace"))
            lines: list[str] = []
            async for line in response.aiter_lines():
                if line:
                    lines.append(line)
                    continue
                if not lines:
                    continue
                item, lines = _event(lines), []
                yield item
                if item["event"] == "message_stop":
                    return
    except httpx.HTTPError as exc:
        raise _transport_error(exc) from exc
    raise ProviderError("closed the stream before message_stop")


async def complete(m: ModelConfig, job: dict, timeout: float) -> dict:
    from router.providers import hosted

    return await hosted.complete(_litellm_view(m), job, timeout)


async def stream(m: ModelConfig, job: dict, timeout: float) -> AsyncIterator[dict]:
    from router.providers import hosted

    async for chunk in hosted.stream(_litellm_view(m), job, timeout):
        yield chunk


def _litellm_view(m: ModelConfig) -> ModelConfig:
    """This deployment as litellm names it, for OpenAI-shaped requests (a conversion across API families)."""
    return m.model_copy(update={"provider": "litellm", "model": "anthropic/" + m.model,
                                "api_base": m.base_url() or DEFAULT_BASE})
