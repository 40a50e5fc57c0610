"""JSON exactly as Ollama writes it into a prompt, so training shows the model the bytes Ollama will serve.

Ollama decodes a chat request into its Go types (api/types.go) and its template prints tools and tool-call
arguments through Go's encoding/json: compact, `<`, `>`, `&`, U+2028 and U+2029 escaped, struct fields in the
struct's order with empty optional ones dropped, tool properties and call arguments in the order given, and
any other object (`items`, `$defs`, nested argument values) with sorted keys. Fields a tool schema has but
Ollama's types lack (e.g. `additionalProperties`) never reach an Ollama-served model, so they are dropped
here too. tests/training/test_ollama_template.py checks these bytes against Go itself.
"""
from __future__ import annotations

import json
from typing import Any

_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # Outside strings compact JSON has none of these characters, so a plain replace only touches strings.
    for char, escaped in _GO_ESCAPES.items():
        text = text.replace(char, escaped)
    return text


def arguments(value: dict) -> str:
    """A tool call's arguments: its own keys in order, anything nested decoded as a Go map (sorted)."""
    return go_json({key: _go_any(v) for key, v in value.items()})


def tool(spec: dict) -> str:
    """One tool as Ollama's api.Tool prints itself ({{ . }} in the template)."""
    fn = spec.get("function") or {}
    out: dict[str, Any] = {"type": spec.get("type", "")}
    if spec.get("items") is not None:
        out["items"] = _go_any(spec["items"])
    function: dict[str, Any] = {"name": fn.get("name", "")}
    if fn.get("description"):
        function["description"] = fn["description"]
    function["parameters"] = _parameters(fn.get("parameters") or {})
    out["function"] = function
    return go_json(out)


def _parameters(params: dict) -> dict:
    out: dict[str, Any] = {"type": params.get("type", "")}
    for key in ("$defs", "items"):
        if params.get(key) is not None:
            out[key] = _go_any(params[key])
    if params.get("required"):
        out["required"] = list(params["required"])
    props = params.get("properties")
    out["properties"] = None if props is None else {name: _property(p) for name, p in props.items()}
    return out


def _property(prop: dict) -> dict:
    out: dict[str, Any] = {}
    if prop.get("anyOf"):
        out["anyOf"] = [_property(p) for p in prop["anyOf"]]
    kind = prop.get("type")
    kinds = [kind] if isinstance(kind, str) else list(kind or [])
    if kinds:
        out["type"] = kinds[0] if len(kinds) == 1 else kinds
    if prop.get("items") is not None:
        out["items"] = _go_any(prop["items"])
    if prop.get("description"):
        out["description"] = prop["description"]
    if prop.get("enum"):
        out["enum"] = [_go_any(v) for v in prop["enum"]]
    if prop.get("properties") is not None:
        out["properties"] = {name: _property(p) for name, p in prop["properties"].items()}
    return out


def _go_any(value: Any) -> Any:
    """A value decoded into Go's `any`: objects become maps (printed with sorted keys), numbers float64."""
    if isinstance(value, dict):
        return {key: _go_any(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_go_any(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)   # float64 30.0 prints as 30 in Go
    return value
