"""Shrink the JSON schemas pydantic generates for tools: every byte ships in each session's context."""
from __future__ import annotations

from typing import Any


def compact(node: Any, *, in_properties: bool = False) -> Any:
    """Drop auto-generated "title"s, `additionalProperties: true` and `default: null` (both what an absent
    key means): the same schema in fewer bytes. Nullable fields stay `anyOf` branches, not type arrays,
    which single-type dialects (Gemini's function declarations) reject."""
    if isinstance(node, list):
        return [compact(v) for v in node]
    if not isinstance(node, dict):
        return node
    # Inside "properties" the keys are field names, so a field called "title" survives.
    return {
        k: compact(v, in_properties=k == "properties")
        for k, v in node.items()
        if in_properties or (k != "title" and (k, v) not in (("additionalProperties", True), ("default", None)))
    }
