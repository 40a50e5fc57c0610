"""Checks on a record from outside (a shared file, a model's output) made before anything recursive or
encoding-sensitive touches it, so one hostile record gets its own verdict instead of sinking its batch."""
from __future__ import annotations

from typing import Any

MAX_DEPTH = 64


def record_problem(record: Any) -> str | None:
    """Why `record` cannot be handled safely — nested too deep, or a string that is not valid Unicode (a lone
    surrogate such as \\ud800, which JSON allows but UTF-8 cannot store) — or None."""
    stack: list[tuple[Any, int, tuple]] = [(record, 1, ())]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, str):
            if not _encodable(value):
                return f"{_where(path)} holds a lone surrogate (e.g. \\ud800), which is not valid Unicode; fix the text"
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels (at {_where(path)}); flatten the record"
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and not _encodable(key):
                return f"a key in {_where(path)} holds a lone surrogate, which is not valid Unicode; fix the key"
            stack.append((item, depth + 1, (*path, key)))
    return None


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _where(path: tuple) -> str:
    shown = "/".join(str(p) for p in path[:6]) + ("/..." if len(path) > 6 else "")
    return shown or "the record"


def split_json_array(text: str) -> list[str] | None:
    """The source text of each element of a top-level JSON array, found by bracket matching rather than by
    parsing, so an element too deep for the parser fails alone; None when `text` is not a closed array."""
    start = text.index("[") + 1
    elements: list[str] = []
    depth, in_string, escaped, begin = 0, False, False, start
    for pos in range(start, len(text)):
        char = text[pos]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif char in "]}" and depth:
            depth -= 1
        elif char in ",]" and depth == 0:
            if text[begin:pos].strip():
                elements.append(text[begin:pos])
            begin = pos + 1
            if char == "]":
                return elements
    return None
