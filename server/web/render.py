"""Turn an example into what the page shows: chat turns, fenced code highlighted, tool calls as checked JSON.

Everything from the example reaches the template as plain text (Jinja escapes it) except Pygments' output,
which is Markup because Pygments escapes every token it writes; that is the page's only unescaped HTML.
"""
from __future__ import annotations

import functools
import json
import re
from typing import Any

import jsonschema
from markupsafe import Markup
from pydantic import BaseModel
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.M | re.S)
_FORMATTER = HtmlFormatter(cssclass="highlight", wrapcode=True)


class Segment(BaseModel):
    kind: str                # text | code
    text: str
    language: str = ""
    html: Any = None         # Markup for code


class CallView(BaseModel):
    id: str
    name: str
    arguments: str           # as stored, for the edit form
    html: Any                # highlighted, pretty-printed JSON (Markup)
    problems: list[str]      # why the arguments do not fit the declared tool ([] = they do)
    declared: bool


class Turn(BaseModel):
    index: int
    role: str
    name: str | None = None
    tool_call_id: str | None = None
    content: str
    segments: list[Segment]
    calls: list[CallView]


@functools.lru_cache(maxsize=1)
def stylesheet() -> str:
    return _FORMATTER.get_style_defs(".highlight")


def code_html(code: str, language: str) -> Markup:
    try:
        lexer = get_lexer_by_name(language) if language else TextLexer()
    except ClassNotFound:
        lexer = TextLexer()
    return Markup(highlight(code, lexer, _FORMATTER))


def segments(content: str) -> list[Segment]:
    """Prose and fenced code blocks in order."""
    out, position = [], 0
    for match in FENCE.finditer(content):
        if match.start() > position:
            out.append(Segment(kind="text", text=content[position:match.start()].strip("\n")))
        language, body = match.group(1).lower(), match.group(2)
        out.append(Segment(kind="code", text=body, language=language, html=code_html(body, language)))
        position = match.end()
    if position < len(content):
        out.append(Segment(kind="text", text=content[position:].strip("\n")))
    return [s for s in out if s.kind == "code" or s.text]


def _declared(tools: list[dict] | None) -> dict[str, dict]:
    found = {}
    for tool in tools or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and function.get("name"):
            found[function["name"]] = function.get("parameters") or {"type": "object"}
    return found


def call_view(call, declared: dict[str, dict]) -> CallView:
    name, raw = call.function.name, call.function.arguments
    problems: list[str] = []
    try:
        arguments = json.loads(raw)
        pretty = json.dumps(arguments, indent=2, ensure_ascii=False)
    except json.JSONDecodeError as exc:
        return CallView(id=call.id, name=name, arguments=raw, html=code_html(raw, "text"), declared=name in declared,
                        problems=[f"arguments are not JSON: {exc.msg}"])
    if name not in declared:
        problems.append(f"tool {name!r} is not declared in this example's tools")
    else:
        validator = jsonschema.validators.validator_for(declared[name])(declared[name])
        problems += [f"{'/'.join(map(str, e.path)) or 'arguments'}: {e.message}"
                     for e in sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))]
    return CallView(id=call.id, name=name, arguments=raw, html=code_html(pretty, "json"), problems=problems,
                    declared=name in declared)


def conversation(example) -> list[Turn]:
    declared = _declared(example.tools)
    return [Turn(index=i, role=m.role, name=m.name, tool_call_id=m.tool_call_id, content=m.content or "",
                 segments=segments(m.content or "") if m.role != "tool" else [Segment(kind="text", text=m.content or "")],
                 calls=[call_view(c, declared) for c in m.tool_calls or []])
            for i, m in enumerate(example.messages)]


def tools_json(example) -> Markup | None:
    if not example.tools:
        return None
    return code_html(json.dumps(example.tools, indent=2, ensure_ascii=False), "json")
