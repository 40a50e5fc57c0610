"""Anthropic Messages <-> OpenAI chat, the router's internal shape (requests, responses and SSE streams)."""
from __future__ import annotations

import json
import time
import uuid
from typing import Any

from router.schemas import ChatCompletionRequest, MessagesRequest

_STOP_TO_ANTHROPIC = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                      "function_call": "tool_use", "content_filter": "refusal"}


def text_of(content: Any) -> str:
    """The plain text of an OpenAI or Anthropic `content` (string or list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def from_openai(req: ChatCompletionRequest) -> dict:
    """The chat job: every field but model/stream, None left out (passes unknown OpenAI params through)."""
    body = req.model_dump(exclude_none=True, exclude={"model", "stream", "stream_options"})
    if "max_completion_tokens" in body and "max_tokens" not in body:
        body["max_tokens"] = body.pop("max_completion_tokens")
    return body


def from_anthropic(req: MessagesRequest) -> dict:
    messages: list[dict] = []
    if req.system:
        messages.append({"role": "system", "content": text_of(req.system)})
    for msg in req.messages:
        if isinstance(msg.content, str):
            messages.append({"role": msg.role, "content": msg.content})
            continue
        parts: list[dict] = []
        tool_calls: list[dict] = []
        for block in msg.content:
            kind = block.get("type")
            if kind == "text":
                parts.append({"type": "text", "text": block.get("text", "")})
            elif kind == "image" and (src := block.get("source") or {}).get("type") == "base64":
                parts.append({"type": "image_url",
                              "image_url": {"url": f"data:{src.get('media_type')};base64,{src.get('data')}"}})
            elif kind == "tool_use":
                tool_calls.append({"id": block.get("id"), "type": "function", "function": {
                    "name": block.get("name"), "arguments": json.dumps(block.get("input") or {})}})
            elif kind == "tool_result":
                messages.append({"role": "tool", "tool_call_id": block.get("tool_use_id"),
                                 "content": text_of(block.get("content"))})
        if parts or tool_calls:
            out: dict[str, Any] = {"role": msg.role}
            only_text = all(p["type"] == "text" for p in parts)
            out["content"] = "\n".join(p["text"] for p in parts) if only_text else parts
            if tool_calls:
                out["tool_calls"] = tool_calls
            messages.append(out)
    job: dict[str, Any] = {"messages": messages, "max_tokens": req.max_tokens}
    if req.tools:
        job["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description or "",
                                                          "parameters": t.input_schema}} for t in req.tools]
    if req.tool_choice:
        kind = req.tool_choice.get("type")
        job["tool_choice"] = ({"type": "function", "function": {"name": req.tool_choice.get("name")}}
                              if kind == "tool" else {"any": "required", "none": "none"}.get(kind, "auto"))
    for src, dst in (("temperature", "temperature"), ("top_p", "top_p"), ("stop_sequences", "stop")):
        if getattr(req, src) is not None:
            job[dst] = getattr(req, src)
    return job


def to_anthropic(completion: dict, model: str) -> dict:
    """An OpenAI chat.completion as an Anthropic message."""
    choice = completion["choices"][0]
    message = choice.get("message") or {}
    blocks: list[dict] = []
    if message.get("content"):
        blocks.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        blocks.append({"type": "tool_use", "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:12]}",
                       "name": call["function"]["name"], "input": _json_args(call["function"].get("arguments"))})
    usage = completion.get("usage") or {}
    return {"id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "model": model,
            "content": blocks, "stop_reason": _STOP_TO_ANTHROPIC.get(choice.get("finish_reason") or "stop", "end_turn"),
            "stop_sequence": None,
            "usage": {"input_tokens": usage.get("prompt_tokens", 0),
                      "output_tokens": usage.get("completion_tokens", 0)}}


def _json_args(arguments: Any) -> dict:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"_value": value}


def openai_event(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def openai_chunk(chunk: dict, model: str) -> dict:
    """Normalise a provider's chunk: our model name, the OpenAI envelope fields present."""
    chunk = dict(chunk)
    chunk["model"] = model
    chunk.setdefault("object", "chat.completion.chunk")
    chunk.setdefault("created", int(time.time()))
    return chunk


def anthropic_event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class AnthropicStream:
    """Turns OpenAI chunks into Anthropic's SSE event sequence."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.block = -1                 # index of the open content block
        self.kind = ""                  # "text" | "tool_use" | ""
        self.tool_blocks: dict[int, int] = {}
        self.stop = "end_turn"
        self.input_tokens = 0
        self.output_tokens = 0
        self.started = False

    def _start(self) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        return [anthropic_event("message_start", {"type": "message_start", "message": {
            "id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0}}})]

    def _close_block(self) -> list[bytes]:
        if self.kind:
            self.kind = ""
            return [anthropic_event("content_block_stop", {"type": "content_block_stop", "index": self.block})]
        return []

    def feed(self, chunk: dict) -> list[bytes]:
        usage = chunk.get("usage") or {}
        self.input_tokens = usage.get("prompt_tokens") or self.input_tokens
        self.output_tokens = usage.get("completion_tokens") or self.output_tokens
        out = self._start()
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if self.kind != "text":
                    out += self._close_block()
                    self.block += 1
                    self.kind = "text"
                    out.append(anthropic_event("content_block_start", {
                        "type": "content_block_start", "index": self.block,
                        "content_block": {"type": "text", "text": ""}}))
                out.append(anthropic_event("content_block_delta", {
                    "type": "content_block_delta", "index": self.block,
                    "delta": {"type": "text_delta", "text": delta["content"]}}))
            for call in delta.get("tool_calls") or []:
                i = call.get("index", 0)
                fn = call.get("function") or {}
                if i not in self.tool_blocks:
                    out += self._close_block()
                    self.block += 1
                    self.kind = "tool_use"
                    self.tool_blocks[i] = self.block
                    out.append(anthropic_event("content_block_start", {
                        "type": "content_block_start", "index": self.block, "content_block": {
                            "type": "tool_use", "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:12]}",
                            "name": fn.get("name") or "", "input": {}}}))
                if fn.get("arguments"):
                    out.append(anthropic_event("content_block_delta", {
                        "type": "content_block_delta", "index": self.tool_blocks[i],
                        "delta": {"type": "input_json_delta", "partial_json": fn["arguments"]}}))
            if choice.get("finish_reason"):
                self.stop = _STOP_TO_ANTHROPIC.get(choice["finish_reason"], "end_turn")
        return out

    def finish(self) -> list[bytes]:
        out = self._start() + self._close_block()
        # usage in message_delta is cumulative (Anthropic's own streams send it there too): the model's own
        # count of the prompt, known only at the end, replaces message_start's estimate
        out.append(anthropic_event("message_delta", {"type": "message_delta",
                                                     "delta": {"stop_reason": self.stop, "stop_sequence": None},
                                                     "usage": {"input_tokens": self.input_tokens,
                                                               "output_tokens": self.output_tokens}}))
        out.append(anthropic_event("message_stop", {"type": "message_stop"}))
        return out
