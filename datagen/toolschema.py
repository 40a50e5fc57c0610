"""Tool schemas that come inside examples are untrusted: they are checked without leaving the document, with
regular expressions run by a linear-time engine, and within a time budget per example.

- `$ref` is followed only inside the schema: a registry whose retrieve refuses every URI, so neither http(s)
  nor file refs are ever fetched (jsonschema's default would fetch them).
- `pattern`, `patternProperties` and `additionalProperties` (which matches property names against
  patternProperties) use RE2, so `^(a+)+$` on a long argument takes microseconds, not years. A pattern RE2
  cannot run (backreferences, lookaround) is refused up front, naming the pattern.
- Every keyword checks a per-example deadline before it runs.
"""
from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import jsonschema
import re2
from jsonschema import ValidationError
from referencing import Registry
from referencing.exceptions import NoSuchResource, Unresolvable  # noqa: F401  (callers catch Unresolvable)

BUDGET_S = 1.0
_REF_KEYS = ("$ref", "$dynamicRef", "$recursiveRef")
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False     # RE2 would print every refused pattern to stderr (the MCP server's log)
_deadline: ContextVar[float] = ContextVar("schema_deadline", default=float("inf"))


class OverBudget(Exception):
    pass


def _refuse(uri: str) -> Any:
    raise NoSuchResource(ref=uri)


LOCAL_ONLY = Registry(retrieve=_refuse)


@contextmanager
def budget(seconds: float = BUDGET_S) -> Iterator[None]:
    """Schema checks inside the block stop with OverBudget once `seconds` have passed."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def schema_problem(schema: Any) -> str | None:
    """Why `schema` is refused before any instance meets it: a ref outside it, a pattern RE2 cannot run."""
    if not isinstance(schema, (dict, bool)):
        return f"must be a JSON schema object, not {type(schema).__name__}"
    stack: list[tuple[Any, str]] = [(schema, "")]
    pattern_props = unevaluated = False
    while stack:
        node, at = stack.pop()
        if isinstance(node, list):
            stack.extend((v, f"{at}/{i}") for i, v in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        for key in _REF_KEYS:
            ref = node.get(key)
            if isinstance(ref, str) and not ref.startswith("#"):
                return (f"{key} {ref!r} at {at or '/'} points outside the schema; only refs within it ('#/...') "
                        "are followed, nothing is fetched")
        patterns = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        if isinstance(node.get("patternProperties"), dict):
            patterns += list(node["patternProperties"])
            pattern_props = True
        unevaluated = unevaluated or "unevaluatedProperties" in node
        for pattern in patterns:
            problem = _regex_problem(pattern)
            if problem:
                return f"pattern {pattern!r} at {at or '/'} is refused: {problem}"
        stack.extend((v, f"{at}/{k}") for k, v in node.items())
    if pattern_props and unevaluated:
        return "unevaluatedProperties together with patternProperties is not supported in tool schemas"
    return None


def argument_errors(schema: dict | bool, arguments: Any) -> list[ValidationError]:
    """Every way `arguments` break `schema`. Raises OverBudget, Unresolvable or RecursionError (a schema that
    refers to itself without end) for the caller to name."""
    validator = _validator_class(jsonschema.validators.validator_for(schema))(schema, registry=LOCAL_ONLY)
    return sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))



def _regex_problem(pattern: str) -> str | None:
    try:
        _compiled(pattern)
    except re2.error as exc:
        detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        return f"{detail} (patterns run on a linear-time engine: no backreferences or lookaround)"
    except UnicodeEncodeError:
        return "it is not valid Unicode"
    return None


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> Any:
    return re2.compile(pattern, _RE2_OPTIONS)


@functools.cache
def _validator_class(base: type) -> type:
    keywords = {name: functools.partial(_within_budget, check) for name, check in base.VALIDATORS.items()}
    for name, check in (("pattern", _pattern), ("patternProperties", _pattern_properties),
                        ("additionalProperties", _additional_properties), ("uniqueItems", _unique_items)):
        if name in keywords:
            keywords[name] = functools.partial(_within_budget, check)
    return jsonschema.validators.extend(base, keywords)


def _within_budget(check, validator, value, instance, schema):
    if time.monotonic() > _deadline.get():
        raise OverBudget
    return check(validator, value, instance, schema)


def _pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not _compiled(pattern).search(instance):
        shown = instance if len(instance) <= 80 else instance[:80] + "..."
        yield ValidationError(f"{shown!r} does not match {pattern!r}")


def _pattern_properties(validator, pattern_properties, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        for key, value in instance.items():
            if _compiled(pattern).search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _unique_items(validator, unique, instance, schema):
    # jsonschema compares unsortable items pairwise: 2,500 small objects took 25 s in one keyword call
    if unique and validator.is_type(instance, "array"):
        seen: set[str] = set()
        for item in instance:
            key = json.dumps(_canonical(item), sort_keys=True)
            if key in seen:
                yield ValidationError(f"array has non-unique elements (e.g. {json.dumps(item)[:80]})")
                return
            seen.add(key)


def _canonical(value: Any) -> Any:
    """JSON Schema equality as a value json.dumps can key on: 1 == 1.0, true != 1, object key order ignored."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return [type(value).__name__, value]
    if isinstance(value, (int, float)):
        return ["number", int(value) if float(value).is_integer() else value]
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return {k: _canonical(v) for k, v in value.items()}


def _additional_properties(validator, additional, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    known = schema.get("properties", {})
    patterns = [_compiled(p) for p in schema.get("patternProperties", {})]
    extras = sorted(k for k in instance if k not in known and not any(p.search(k) for p in patterns))
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        yield ValidationError(f"Additional properties are not allowed ({', '.join(map(repr, extras))} "
                              f"{'was' if len(extras) == 1 else 'were'} unexpected)")
