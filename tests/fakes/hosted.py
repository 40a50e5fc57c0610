"""A loopback server speaking the OpenAI and Anthropic wire protocols, with a pluggable responder.

Routes: POST /v1/chat/completions (OpenAI; stream via SSE `data:` lines ending `data: [DONE]`, tool_calls,
`stream_options.include_usage`), POST /v1/messages (Anthropic; SSE `message_start`, `content_block_*`,
`ping`, `message_delta`, `message_stop`; text and tool_use blocks; usage with the cache counters),
POST /v1/messages/count_tokens (Anthropic), GET /v1/models (Anthropic shape when the request carries
`anthropic-version`, OpenAI shape otherwise). Errors use each API's error JSON.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from tests.fakes.base import Fault, FakeServer, Handler, start


@dataclass
class Call:
    """What the responder sees: the API, model, flattened messages and tool names of one request."""

    api: str                      # "openai" | "anthropic"
    model: str
    messages: list[dict]          # [{"role": str, "content": str}] — text only, system included
    tools: list[str]
    body: dict


@dataclass
class Reply:
    text: str = ""
    tool_calls: list[tuple[str, dict]] = field(default_factory=list)   # (name, arguments)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cache_read_tokens: int = 0            # Anthropic only: cache_read_input_tokens
    cache_creation_tokens: int = 0        # Anthropic only: cache_creation_input_tokens


Responder = Callable[[Call], Reply]


def echo_responder(call: Call) -> Reply:
    """Default: a deterministic reply naming the model and quoting the last user message."""
    last = next((m["content"] for m in reversed(call.messages) if m["role"] == "user"), "")
    return Reply(text=f"[{call.model}] you said: {last[:200]}")


def tool_responder(name: str, arguments: dict, text: str = "") -> Responder:
    """A responder that always calls tool `name` with `arguments`."""
    return lambda call: Reply(text=text, tool_calls=[(name, arguments)])


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def split_words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts) if p or i == 0]


def _count(messages: list[dict]) -> int:
    return max(1, sum(len(m["content"].split()) for m in messages))


def openai_error(status: int, message: str) -> dict:
    kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
            429: "rate_limit_exceeded"}.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


def anthropic_error(status: int, message: str) -> dict:
    kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
            429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


class _HostedHandler(Handler):
    fake: "HostedFake"
    routes = {("POST", "/v1/chat/completions"): "chat_completions",
              ("POST", "/v1/messages"): "messages",
              ("POST", "/v1/messages/count_tokens"): "count_tokens",
              ("GET", "/v1/models"): "models"}

    # --- OpenAI --------------------------------------------------------------------------------------
    def chat_completions(self, path: str) -> None:
        body = self._parse(openai_error)
        if body is None:
            return
        if self.apply_fault(self.fake.take_fault(path), openai_error):
            return
        if not isinstance(body.get("messages"), list) or not body.get("model"):
            self.send_json(400, openai_error(400, "'model' and 'messages' are required"))
            return
        messages = [{"role": m.get("role", ""), "content": _text_of(m.get("content"))} for m in body["messages"]]
        tools = [t.get("function", {}).get("name", "") for t in body.get("tools") or []]
        call = Call("openai", body["model"], messages, tools, body)
        reply = self.fake.responder(call)
        pt = reply.prompt_tokens or _count(messages)
        ct = reply.completion_tokens or max(1, len(reply.text.split()))
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time())
        tool_calls = [{"id": f"call_{uuid.uuid4().hex[:8]}", "type": "function",
                       "function": {"name": n, "arguments": json.dumps(a)}} for n, a in reply.tool_calls]
        finish = "tool_calls" if tool_calls else "stop"
        usage = {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
            if tool_calls:
                message["tool_calls"] = tool_calls
            self.send_json(200, {"id": cid, "object": "chat.completion", "created": created,
                                 "model": body["model"], "system_fingerprint": "fake",
                                 "choices": [{"index": 0, "message": message, "logprobs": None,
                                              "finish_reason": finish}], "usage": usage})
            return

        def chunk(delta: dict, finish_reason: str | None = None, **extra: Any) -> bytes:
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": body["model"],
                   "system_fingerprint": "fake",
                   "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
            obj.update(extra)
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        def parts() -> Iterator[bytes]:
            yield chunk({"role": "assistant", "content": ""})
            for word in split_words(reply.text) if reply.text else []:
                yield chunk({"content": word})
            for i, tc in enumerate(tool_calls):
                yield chunk({"tool_calls": [{"index": i, "id": tc["id"], "type": "function",
                                             "function": {"name": tc["function"]["name"], "arguments": ""}}]})
                yield chunk({"tool_calls": [{"index": i, "function": {"arguments": tc["function"]["arguments"]}}]})
            yield chunk({}, finish)
            if (body.get("stream_options") or {}).get("include_usage"):
                yield (b"data: " + json.dumps({"id": cid, "object": "chat.completion.chunk", "created": created,
                                               "model": body["model"], "choices": [], "usage": usage}).encode()
                       + b"\n\n")
            yield b"data: [DONE]\n\n"

        self.stream("text/event-stream", parts(), self._fault_for_stream)

    # --- Anthropic -----------------------------------------------------------------------------------
    def messages(self, path: str) -> None:
        body = self._parse(anthropic_error)
        if body is None:
            return
        if self.apply_fault(self.fake.take_fault(path), anthropic_error):
            return
        if not isinstance(body.get("messages"), list) or not body.get("model") or "max_tokens" not in body:
            self.send_json(400, anthropic_error(400, "'model', 'messages' and 'max_tokens' are required"))
            return
        messages = [{"role": "system", "content": _text_of(body["system"])}] if body.get("system") else []
        messages += [{"role": m.get("role", ""), "content": _text_of(m.get("content"))} for m in body["messages"]]
        tools = [t.get("name", "") for t in body.get("tools") or []]
        reply = self.fake.responder(Call("anthropic", body["model"], messages, tools, body))
        pt = reply.prompt_tokens or _count(messages)
        ct = reply.completion_tokens or max(1, len(reply.text.split()))
        mid = f"msg_{uuid.uuid4().hex[:12]}"
        blocks: list[dict] = [{"type": "text", "text": reply.text}] if reply.text else []
        blocks += [{"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:8]}", "name": n, "input": a}
                   for n, a in reply.tool_calls]
        stop = "tool_use" if reply.tool_calls else "end_turn"
        usage = {"input_tokens": pt, "cache_creation_input_tokens": reply.cache_creation_tokens,
                 "cache_read_input_tokens": reply.cache_read_tokens, "output_tokens": ct}
        if not body.get("stream"):
            self.send_json(200, {"id": mid, "type": "message", "role": "assistant", "model": body["model"],
                                 "content": blocks, "stop_reason": stop, "stop_sequence": None, "usage": usage})
            return
        if self.fake.cut_streams_after is not None and self._fault_for_stream is None:
            self._fault_for_stream = Fault("die", after_chunks=self.fake.cut_streams_after)

        def event(name: str, data: dict) -> bytes:
            return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

        def parts() -> Iterator[bytes]:
            yield event("message_start", {"type": "message_start", "message": {
                "id": mid, "type": "message", "role": "assistant", "model": body["model"], "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}})
            for i, block in enumerate(blocks):
                if block["type"] == "text":
                    yield event("content_block_start", {"type": "content_block_start", "index": i,
                                                        "content_block": {"type": "text", "text": ""}})
                    if i == 0:
                        yield event("ping", {"type": "ping"})
                    for word in split_words(block["text"]):
                        yield event("content_block_delta", {"type": "content_block_delta", "index": i,
                                                            "delta": {"type": "text_delta", "text": word}})
                else:
                    yield event("content_block_start", {"type": "content_block_start", "index": i,
                                                        "content_block": {**block, "input": {}}})
                    yield event("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {
                        "type": "input_json_delta", "partial_json": json.dumps(block["input"])}})
                yield event("content_block_stop", {"type": "content_block_stop", "index": i})
            yield event("message_delta", {"type": "message_delta",
                                          "delta": {"stop_reason": stop, "stop_sequence": None},
                                          "usage": {"output_tokens": ct}})
            yield event("message_stop", {"type": "message_stop"})

        self.stream("text/event-stream", parts(), self._fault_for_stream)

    def count_tokens(self, path: str) -> None:
        body = self._parse(anthropic_error)
        if body is None:
            return
        if self.apply_fault(self.fake.take_fault(path), anthropic_error):
            return
        messages = [{"role": "system", "content": _text_of(body.get("system"))}] if body.get("system") else []
        messages += [{"role": m.get("role", ""), "content": _text_of(m.get("content"))}
                     for m in body.get("messages") or []]
        self.send_json(200, {"input_tokens": _count(messages)})

    # --- models --------------------------------------------------------------------------------------
    def models(self, path: str) -> None:
        self.record(None)
        if self.headers.get("anthropic-version"):
            data = [{"type": "model", "id": m, "display_name": m, "created_at": "2026-01-01T00:00:00Z"}
                    for m in self.fake.models]
            self.send_json(200, {"data": data, "has_more": False,
                                 "first_id": data[0]["id"] if data else None,
                                 "last_id": data[-1]["id"] if data else None})
        else:
            self.send_json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 1767225600, "owned_by": "fake"} for m in self.fake.models]})

    # --- shared --------------------------------------------------------------------------------------
    _fault_for_stream = None

    def _parse(self, error: Callable[[int, str], dict]) -> dict | None:
        raw = self.read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.record(body)
        if not isinstance(body, dict):
            self.send_json(400, error(400, "request body is not a JSON object"))
            return None
        return body

    def apply_fault(self, fault, error_body) -> bool:  # type: ignore[override]
        self._fault_for_stream = fault if fault is not None and fault.kind == "die" else None
        return super().apply_fault(fault, error_body)


@dataclass
class HostedFake(FakeServer):
    """OpenAI + Anthropic fake. OpenAI base_url = `url + "/v1"`; Anthropic base_url = `url`."""

    responder: Responder = echo_responder
    models: list[str] = field(default_factory=lambda: ["fake-strong", "fake-weak"])
    cut_streams_after: int | None = None    # cut every Anthropic stream after this many events (a broken proxy)


def start_hosted(responder: Responder = echo_responder, models: list[str] | None = None) -> HostedFake:
    fake = HostedFake(responder=responder)
    if models is not None:
        fake.models = models
    return start(_HostedHandler, fake)
