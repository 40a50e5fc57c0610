"""Shrink the JSON schemas pydantic generates for tools: every byte ships in each session's context."""
from __future__ import annotations

from typing import Any


def compact(node: Any, *, in_properties: bool = False) -> Any:
    """Drop auto-generated "title"s, `additionalProperties: true` and `default: null` (both what an absent
    key means), and fold `anyOf: [X, null]` into `type: [X, "null"]`: the same schema in fewer bytes."""
    if isinstance(node, list):
        return [compact(v) for v in node]
    if not isinstance(node, dict):
        return node
    # Inside "properties" the keys are field names, so a field called "title" survives.
    out = {
        k: compact(v, in_properties=k == "properties")
        for k, v in node.items()
        if in_properties or (k != "title" and (k, v) not in (("additionalProperties", True), ("default", None)))
    }
    if not in_properties and "anyOf" in out:
        out = _fold_nullable(out)
    return out


def _fold_nullable(schema: dict[str, Any]) -> dict[str, Any]:
    branches = schema["anyOf"]
    others = [b for b in branches if b != {"type": "null"}]
    if len(branches) != 2 or len(others) != 1 or not isinstance(others[0].get("type"), str):
        return schema
    (other,) = others
    folded = {k: v for k, v in schema.items() if k != "anyOf"} | other | {"type": [other["type"], "null"]}
    if "enum" in other:
        folded["enum"] = [*other["enum"], None]
    return folded
