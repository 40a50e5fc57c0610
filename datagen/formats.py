"""Dataset formats in and out: Alpaca, ShareGPT, OpenAI chat JSONL, and ours (OpenAI chat + category/meta).

Each record is detected on its own, so a merged file of mixed formats imports. Conversions keep everything
the target can hold; what it cannot (tool calls in Alpaca) is reported by the caller as skipped.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from datagen.schema import Example

Format = Literal["ours", "openai", "alpaca", "sharegpt"]

# ShareGPT speaker names as written by FastChat, LLaMA-Factory and Axolotl.
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "model": "assistant",
                   "system": "system",
                   "observation": "tool", "tool": "tool", "function_call": "function_call"}
_OPENAI_KEYS = {"messages", "tools", "parallel_tool_calls", "functions"}


class FormatError(ValueError):
    pass


def detect(record: Any) -> Format:
    if not isinstance(record, dict):
        raise FormatError(f"expected a JSON object, got {type(record).__name__}")
    if "messages" in record:
        return "openai" if set(record) <= _OPENAI_KEYS else "ours"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record or "output" in record:
        return "alpaca"
    raise FormatError("unrecognized record: expected 'messages' (OpenAI/engrain), 'conversations' (ShareGPT) "
                      f"or 'instruction'/'output' (Alpaca); keys were {sorted(record)[:8]}")


def to_canonical(record: Any) -> dict[str, Any]:
    """A record of any supported format as our dict (not yet validated)."""
    kind = detect(record)
    if kind == "alpaca":
        return _from_alpaca(record)
    if kind == "sharegpt":
        return _from_sharegpt(record)
    return {k: v for k, v in record.items() if k not in ("parallel_tool_calls", "functions")}


def _from_alpaca(record: dict[str, Any]) -> dict[str, Any]:
    messages = []
    if record.get("system"):
        messages.append({"role": "system", "content": record["system"]})
    for pair in record.get("history") or []:
        if not (isinstance(pair, list) and len(pair) == 2):
            raise FormatError("alpaca 'history' must be a list of [instruction, response] pairs")
        messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    prompt = "\n\n".join(p for p in (record.get("instruction") or "", record.get("input") or "") if p)
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": record.get("output") or ""}]
    return _with_extras({"messages": messages}, record)


def _from_sharegpt(record: dict[str, Any]) -> dict[str, Any]:
    turns = record["conversations"]
    if not isinstance(turns, list):
        raise FormatError("sharegpt 'conversations' must be a list")
    messages: list[dict[str, Any]] = []
    if record.get("system"):
        messages.append({"role": "system", "content": record["system"]})
    pending: list[str] = []
    for number, turn in enumerate(turns, 1):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            raise FormatError(f"sharegpt turn {number} needs 'from' and 'value'")
        role = _SHAREGPT_ROLES.get(str(turn["from"]).lower())
        if role is None:
            raise FormatError(f"sharegpt turn {number} has unknown speaker {turn['from']!r}")
        if role == "function_call":
            try:
                call = json.loads(turn["value"])
            except (TypeError, json.JSONDecodeError):
                raise FormatError(f"sharegpt turn {number}: function_call value is not JSON") from None
            call_id = f"call_{len(pending) + 1}_{number}"
            pending.append(call_id)
            arguments = call.get("arguments", {})
            messages.append({"role": "assistant", "content": "", "tool_calls": [{
                "id": call_id, "type": "function",
                "function": {"name": call.get("name", ""),
                             "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments)}}]})
        elif role == "tool":
            call_id = pending.pop(0) if pending else ""
            messages.append({"role": "tool", "tool_call_id": call_id, "content": turn["value"]})
        else:
            messages.append({"role": role, "content": turn["value"]})
    out: dict[str, Any] = {"messages": messages}
    if record.get("tools"):
        tools = json.loads(record["tools"]) if isinstance(record["tools"], str) else record["tools"]
        out["tools"] = [t if "function" in t else {"type": "function", "function": t} for t in tools]
    return _with_extras(out, record)


def _with_extras(out: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """Our own fields survive a trip through Alpaca or ShareGPT files we exported."""
    for key in ("category", "meta", "source_refs"):
        if key in record:
            out[key] = record[key]
    return out


def read_records(path: Path) -> Iterator[tuple[int, Any | FormatError]]:
    """(index, record or the reason it could not be read) for each record in a JSON or JSONL file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        yield 0, FormatError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})")
        return
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            yield 0, FormatError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})")
            return
        yield from enumerate(records)
        return
    index = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield index, json.loads(line)
        except json.JSONDecodeError as exc:
            yield index, FormatError(f"line {number} is not valid JSON ({exc.msg} at column {exc.colno})")
        index += 1


def to_openai(example: Example) -> dict[str, Any]:
    out: dict[str, Any] = {"messages": [m.model_dump(exclude_none=True) for m in example.messages]}
    if example.tools:
        out["tools"] = example.tools
    return out


def to_alpaca(example: Example) -> dict[str, Any] | None:
    """Alpaca holds plain user/assistant alternation (with an optional system prompt), nothing else."""
    messages = example.messages
    system = messages[0].content if messages and messages[0].role == "system" else ""
    turns = messages[1:] if system else messages
    if (example.tools or len(turns) % 2 or any(m.tool_calls or m.role == "tool" for m in turns)
            or [m.role for m in turns] != ["user", "assistant"] * (len(turns) // 2)):
        return None
    pairs = [[turns[i].content or "", turns[i + 1].content or ""] for i in range(0, len(turns), 2)]
    out: dict[str, Any] = {"instruction": pairs[-1][0], "input": "", "output": pairs[-1][1]}
    if system:
        out["system"] = system
    if len(pairs) > 1:
        out["history"] = pairs[:-1]
    out["category"] = example.category
    return out


def to_sharegpt(example: Example) -> dict[str, Any]:
    """LLaMA-Factory's ShareGPT: tool calls as function_call turns, results as observation turns."""
    turns: list[dict[str, str]] = []
    system = ""
    for message in example.messages:
        if message.role == "system":
            system = message.content or ""
        elif message.role == "user":
            turns.append({"from": "human", "value": message.content or ""})
        elif message.role == "assistant":
            if message.content:
                turns.append({"from": "gpt", "value": message.content})
            for call in message.tool_calls or []:
                turns.append({"from": "function_call", "value": json.dumps(
                    {"name": call.function.name, "arguments": json.loads(call.function.arguments)})})
        else:
            turns.append({"from": "observation", "value": message.content or ""})
    out: dict[str, Any] = {"conversations": turns}
    if system:
        out["system"] = system
    if example.tools:
        out["tools"] = json.dumps([t.get("function", t) for t in example.tools])
    out["category"] = example.category
    return out
