"""Dataset formats in and out: engrain's native JSONL, OpenAI chat JSONL, mlx-lm, ShareGPT, Alpaca, HF datasets.

Each record is detected on its own, so a merged file of mixed formats imports. Every export carries what its
format can hold, and our own fields (category, source_refs, meta) ride along where the consumer ignores them:
as extra top-level keys (ShareGPT, Alpaca, mlx-lm, HF columns), or in a `<split>.fields.jsonl` sidecar beside an
OpenAI file, because OpenAI's published file checks count any unknown key as an error. The native format is the
whole stored row (id, status, timestamps, review history), so it restores everything.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from datagen.schema import Example, StoredExample
from datagen.untrusted import split_json_array

Format = Literal["native", "ours", "openai", "alpaca", "sharegpt"]

# ShareGPT speaker names as written by FastChat, LLaMA-Factory and Axolotl.
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "model": "assistant",
                   "system": "system",
                   "observation": "tool", "tool": "tool", "function_call": "function_call"}
_OPENAI_KEYS = {"messages", "tools", "parallel_tool_calls", "functions"}
OUR_FIELDS = ("category", "source_refs", "meta")
SIDECAR_SUFFIX = ".fields.jsonl"
# Marks the per-turn prefixes an mlx-lm export adds (see export.per_assistant_turn): the full conversation is
# the last row of its group, so an import keeps that one and skips the prefixes.
PREFIX_KEY = "engrain_prefix"


class FormatError(ValueError):
    pass


class Skipped(str):
    """A record that is deliberately not imported (an mlx per-turn prefix); the reason is the string."""


def detect(record: Any) -> Format:
    if not isinstance(record, dict):
        raise FormatError(f"expected a JSON object, got {type(record).__name__}")
    if isinstance(record.get("example"), dict) and "id" in record:
        return "native"
    if "messages" in record:
        return "openai" if set(record) <= _OPENAI_KEYS else "ours"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record or "output" in record:
        return "alpaca"
    raise FormatError("unrecognized record: expected 'messages' (OpenAI/engrain), 'conversations' (ShareGPT), "
                      f"'instruction'/'output' (Alpaca) or 'example' (engrain native); keys were {sorted(record)[:8]}")


def to_canonical(record: Any) -> dict[str, Any]:
    """A record of any supported format as our dict (not yet validated)."""
    kind = detect(record)
    if kind == "native":
        return dict(record["example"])
    if kind == "alpaca":
        return _from_alpaca(record)
    if kind == "sharegpt":
        return _from_sharegpt(record)
    return {k: v for k, v in record.items() if k not in ("parallel_tool_calls", "functions", PREFIX_KEY)}


def native_row(record: dict[str, Any]) -> StoredExample | None:
    """The stored row a native record describes (None for any other format)."""
    return StoredExample.model_validate(record) if detect(record) == "native" else None


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
            calls = _sharegpt_calls(number, turn)
            pending += [c["id"] for c in calls]
            if messages and messages[-1]["role"] == "assistant" and not messages[-1].get("tool_calls"):
                messages[-1]["tool_calls"] = calls  # text then call: one assistant turn, as it was written
            else:
                messages.append({"role": "assistant", "content": turn.get("text"), "tool_calls": calls})
        elif role == "tool":
            messages += _sharegpt_results(number, turn, pending)
        else:
            messages.append({"role": role, "content": turn["value"]})
    out: dict[str, Any] = {"messages": messages}
    if record.get("tools"):
        tools = json.loads(record["tools"]) if isinstance(record["tools"], str) else record["tools"]
        out["tools"] = [t if "function" in t else {"type": "function", "function": t} for t in tools]
    return _with_extras(out, record)


def _sharegpt_calls(number: int, turn: dict[str, Any]) -> list[dict[str, Any]]:
    """One function_call turn: a call object, or a list of them (parallel calls, LLaMA-Factory's convention)."""
    try:
        value = json.loads(turn["value"])
    except (TypeError, json.JSONDecodeError):
        raise FormatError(f"sharegpt turn {number}: function_call value is not JSON") from None
    values = value if isinstance(value, list) else [value]
    ids = turn.get("tool_call_ids") or [f"call_{number}_{i + 1}" for i in range(len(values))]
    calls = []
    for call_id, call in zip(ids, values):
        if not isinstance(call, dict):
            raise FormatError(f"sharegpt turn {number}: a function_call must be {{\"name\", \"arguments\"}}")
        arguments = call.get("arguments", {})
        calls.append({"id": call_id, "type": "function", "function": {
            "name": call.get("name", ""),
            "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)}})
    return calls


def _sharegpt_results(number: int, turn: dict[str, Any], pending: list[str]) -> list[dict[str, Any]]:
    """An observation turn answers the oldest open calls; parallel results come as one turn holding a list."""
    ids = turn.get("tool_call_ids")
    if isinstance(ids, list) and len(ids) > 1:
        try:
            values = json.loads(turn["value"])
        except (TypeError, json.JSONDecodeError):
            raise FormatError(f"sharegpt turn {number}: results of parallel calls must be a JSON list") from None
        if not isinstance(values, list) or len(values) != len(ids):
            raise FormatError(f"sharegpt turn {number}: expected {len(ids)} results for tool_call_ids {ids}")
    else:
        values = [turn["value"]]
        ids = ids if isinstance(ids, list) and ids else [turn.get("tool_call_id") or (pending[0] if pending else "")]
    for call_id in ids:
        if call_id in pending:
            pending.remove(call_id)
    return [{"role": "tool", "tool_call_id": call_id, "content": value} for call_id, value in zip(ids, values)]


def _with_extras(out: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """Our own fields survive a trip through Alpaca or ShareGPT files we exported."""
    for key in OUR_FIELDS:
        if key in record:
            out[key] = record[key]
    return out


def read_records(path: Path) -> Iterator[tuple[int, Any | FormatError]]:
    """(index, record or the reason it could not be read) for each record in a JSON/JSONL file, or in a folder:
    an HF `save_to_disk` folder, or the JSON/JSONL files of an export (train, valid, test)."""
    path = Path(path)
    if path.is_dir():
        rows = _hf_rows(path) if _is_hf_folder(path) else _folder_rows(path)
        yield from enumerate(rows)
        return
    yield from enumerate(_file_rows(path))


def _file_rows(path: Path) -> Iterator[Any | FormatError]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        yield FormatError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})")
        return
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            yield FormatError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})")
            return
        except RecursionError:  # one element nested too deep: parse the others one by one
            yield from _elements_one_by_one(path, text)
            return
        yield from records
        return
    sidecar = _sidecar(path)
    for index, (number, line) in enumerate((n, line) for n, line in enumerate(text.splitlines(), 1)
                                           if line.strip()):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield FormatError(f"line {number} is not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        except RecursionError:
            yield FormatError(f"line {number} is nested too deeply to read; flatten the record")
            continue
        if isinstance(record, dict) and index < len(sidecar):
            record = {**record, **sidecar[index]}
        yield record


def _elements_one_by_one(path: Path, text: str) -> Iterator[Any | FormatError]:
    elements = split_json_array(text)
    if elements is None:
        yield FormatError(f"{path} is not valid JSON (the top-level array is not closed)")
        return
    for number, element in enumerate(elements, 1):
        try:
            yield json.loads(element)
        except json.JSONDecodeError as exc:
            yield FormatError(f"element {number} is not valid JSON ({exc.msg})")
        except RecursionError:
            yield FormatError(f"element {number} is nested too deeply to read; flatten the record")


def _sidecar(path: Path) -> list[dict[str, Any]]:
    """Our fields for each line of an OpenAI export, kept beside it (`train.jsonl` -> `train.fields.jsonl`)."""
    side = path.with_name(path.stem + SIDECAR_SUFFIX)
    if path.name.endswith(SIDECAR_SUFFIX) or not side.is_file():
        return []
    rows = []
    for line in side.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line) if line.strip() else {}
        except json.JSONDecodeError:
            return []  # a damaged sidecar: the records still import, without our fields
        rows.append({k: v for k, v in row.items() if k in OUR_FIELDS} if isinstance(row, dict) else {})
    return rows


def _folder_rows(folder: Path) -> Iterator[Any | FormatError]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".json", ".jsonl")
                   and not p.name.endswith(SIDECAR_SUFFIX))
    if not files:
        yield FormatError(f"{folder} holds no .json/.jsonl files and is not a `datasets` save_to_disk folder")
    for path in files:
        yield from _file_rows(path)


def _is_hf_folder(folder: Path) -> bool:
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


def _hf_rows(folder: Path) -> Iterator[Any | FormatError]:
    from datasets import Dataset, DatasetDict, load_from_disk

    try:
        loaded = load_from_disk(str(folder))
    except (OSError, ValueError) as exc:
        yield FormatError(f"{folder} could not be loaded with datasets.load_from_disk ({exc})")
        return
    parts = loaded.values() if isinstance(loaded, DatasetDict) else [loaded] if isinstance(loaded, Dataset) else []
    for part in parts:
        for row in part:
            yield from_hf_row(row)


def from_hf_row(row: dict[str, Any]) -> dict[str, Any]:
    """An HF row (Arrow gives every message every field, nulls included; tools/meta as JSON strings) as ours."""
    out = dict(row)
    if isinstance(out.get("messages"), list):
        out["messages"] = [{k: v for k, v in m.items() if v is not None} if isinstance(m, dict) else m
                           for m in out["messages"]]
    for key in ("tools", "meta"):
        if isinstance(out.get(key), str):
            try:
                out[key] = json.loads(out[key])
            except json.JSONDecodeError:
                pass  # left as is: validation names the field
    if out.get("tools") == []:
        del out["tools"]
    return {k: v for k, v in out.items() if v not in (None, "") or k == "messages"}


def to_native(stored: StoredExample, *, reviews: bool = True) -> dict[str, Any]:
    row = stored.model_dump(mode="json", exclude_none=True)
    row["example"] = stored.example.wire()
    if not reviews:
        row.pop("reviews", None)
    return row


def our_fields(example: Example) -> dict[str, Any]:
    out: dict[str, Any] = {"category": example.category}
    if example.source_refs:
        out["source_refs"] = example.source_refs
    if example.meta:
        out["meta"] = example.meta
    return out


def to_openai(example: Example) -> dict[str, Any]:
    out: dict[str, Any] = {"messages": [m.model_dump(exclude_none=True) for m in example.messages]}
    if example.tools:
        out["tools"] = example.tools
    return out


def to_mlx(example: Example, *, prefix: bool) -> dict[str, Any]:
    """mlx-lm reads `messages` and `tools` and ignores other keys, so ours ride along."""
    out = {**to_openai(example), **our_fields(example)}
    if prefix:
        out[PREFIX_KEY] = True
    return out


def to_hf(example: Example) -> dict[str, Any]:
    """Arrow needs one schema: every message gets every field (null when absent); tools and meta (free-form JSON)
    stay strings."""
    return {"messages": [m.model_dump() for m in example.messages], "tools": json.dumps(example.tools or []),
            "category": example.category or "", "source_refs": list(example.source_refs),
            "meta": json.dumps(example.meta)}


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
    return {**out, **our_fields(example)}


def to_sharegpt(example: Example) -> dict[str, Any]:
    """LLaMA-Factory's ShareGPT: speakers alternate, so an assistant message is one turn — `gpt` for text, or one
    `function_call` turn whose value is the call (a list for parallel calls) with the message's text kept in a
    `text` key; the results of parallel calls share one `observation` turn holding a JSON list. Call ids ride in
    `tool_call_ids` keys, which trainers ignore."""
    turns: list[dict[str, Any]] = []
    system = ""
    for message in example.messages:
        if message.role == "system":
            system = message.content or ""
        elif message.role == "user":
            turns.append({"from": "human", "value": message.content or ""})
        elif message.role == "assistant" and message.tool_calls:
            calls = [{"name": c.function.name, "arguments": json.loads(c.function.arguments)}
                     for c in message.tool_calls]
            turn = {"from": "function_call", "value": json.dumps(calls if len(calls) > 1 else calls[0],
                                                                  ensure_ascii=False),
                    "tool_call_ids": [c.id for c in message.tool_calls]}
            if message.content is not None:
                turn["text"] = message.content
            turns.append(turn)
        elif message.role == "assistant":
            turns.append({"from": "gpt", "value": message.content or ""})
        elif turns and turns[-1]["from"] == "observation":
            _merge_observation(turns[-1], message.tool_call_id or "", message.content or "")
        else:
            turns.append({"from": "observation", "value": message.content or "",
                          "tool_call_ids": [message.tool_call_id or ""]})
    out: dict[str, Any] = {"conversations": turns}
    if system:
        out["system"] = system
    if example.tools:
        out["tools"] = json.dumps([t.get("function", t) for t in example.tools], ensure_ascii=False)
    return {**out, **our_fields(example)}


def _merge_observation(turn: dict[str, Any], call_id: str, content: str) -> None:
    values = json.loads(turn["value"]) if len(turn["tool_call_ids"]) > 1 else [turn["value"]]
    turn["value"] = json.dumps([*values, content], ensure_ascii=False)
    turn["tool_call_ids"] = [*turn["tool_call_ids"], call_id]
