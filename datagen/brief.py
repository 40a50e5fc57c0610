"""The generation brief: everything a writer (Claude Code over MCP, or `engrain generate`) needs for one batch."""
from __future__ import annotations

import json

from datagen import knowledge, store
from datagen.catalog import coverage
from datagen.errors import UnknownCategory
from datagen.schema import Brief, Example

KNOWLEDGE_PER_BRIEF = 6
AVOID = 15

FORMAT = """Write each example as one JSON object (one per line when writing several):
{"messages": [...], "tools": [...], "category": "<category>", "source_refs": ["<knowledge chunk id>", ...],
 "meta": {"language": "...", "skill": "..."}}
- messages: user -> assistant (-> tool -> assistant ...) turns in OpenAI chat form. No system message: the
  model must behave this way without the project's prompt. End with an assistant message.
- Tool calls: {"role": "assistant", "content": "...", "tool_calls": [{"id": "call_1", "type": "function",
  "function": {"name": "Grep", "arguments": "{\\"pattern\\": \\"...\\"}"}}]} — arguments is a JSON *string*
  that satisfies the tool's schema; every tool used must be declared in "tools"; each call is answered by
  {"role": "tool", "tool_call_id": "call_1", "content": "<result>"} before the next assistant turn.
- Fenced code must parse (```python, ```json, ```toml, ```yaml are checked). Follow every rule listed.
- Cite the knowledge chunks you drew on in source_refs. Make each example different from the "avoid" list."""

# Claude Code's core tools, so examples call tools by the names and argument shapes the agent really uses.
DEFAULT_TOOLS = [
    {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": properties, "required": required}}}
    for name, description, properties, required in [
        ("Read", "Read a file, optionally a line range.",
         {"file_path": {"type": "string"}, "offset": {"type": "integer"}, "limit": {"type": "integer"}},
         ["file_path"]),
        ("Grep", "Search file contents with a regular expression.",
         {"pattern": {"type": "string"}, "path": {"type": "string"}, "glob": {"type": "string"}}, ["pattern"]),
        ("Glob", "Find files by glob pattern.", {"pattern": {"type": "string"}, "path": {"type": "string"}},
         ["pattern"]),
        ("Edit", "Replace an exact string in a file.",
         {"file_path": {"type": "string"}, "old_string": {"type": "string"}, "new_string": {"type": "string"}},
         ["file_path", "old_string", "new_string"]),
        ("Write", "Write a whole file.", {"file_path": {"type": "string"}, "content": {"type": "string"}},
         ["file_path", "content"]),
        ("Bash", "Run a shell command.", {"command": {"type": "string"}, "description": {"type": "string"}},
         ["command"]),
    ]
]

_BUILTIN_SAMPLE = {
    "messages": [
        {"role": "user", "content": "Where do we parse the config file? I want to add a timeout option."},
        {"role": "assistant", "content": "I'll find the loader first.", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "Grep", "arguments": json.dumps({"pattern": "def load_config"})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "src/config.py:12:def load_config(path):"},
        {"role": "assistant", "content": "It's `load_config` in src/config.py:12. I'll add `timeout` there with "
                                         "a default so existing configs keep working."},
    ],
    "tools": [t for t in DEFAULT_TOOLS if t["function"]["name"] == "Grep"],
    "meta": {"language": "python"},
}


def build_brief(ws, category: str, count: int) -> Brief:
    plan_entry = ws.config.category(category)
    if plan_entry is None:
        raise UnknownCategory(f"unknown category {category!r}; choose one of: "
                              f"{', '.join(c.name for c in ws.config.categories)}")
    conn = store.connect(ws.database)
    recent = store.recent(conn, category, 50)
    row = next(r for r in coverage(ws).categories if r.name == category)
    return Brief(
        category=category,
        description=plan_entry.description,
        guidance=plan_entry.guidance.strip(),
        rules=[r for r in ws.config.rules if "*" in r.categories or category in r.categories],
        knowledge=knowledge.take_least_used(ws, KNOWLEDGE_PER_BRIEF, category),
        format=FORMAT,
        sample=_sample(conn, category, recent),
        tools=_tools(recent),
        avoid=[_opening(e) for e in recent[:AVOID]],
        remaining=max(0, row.quota - row.approved - row.pending),
        count=count,
    )


def _sample(conn, category: str, recent: list[Example]) -> dict:
    approved = store.page(conn, category=category, status="approved", offset=0, limit=1).items
    if approved:
        return approved[0].example.wire()
    if recent:
        return recent[-1].wire()
    return {**_BUILTIN_SAMPLE, "category": category}


def _tools(recent: list[Example]) -> list[dict]:
    tools = {t["function"]["name"]: t for t in DEFAULT_TOOLS}
    for example in recent:
        for tool in example.tools or []:
            tools.setdefault(tool["function"]["name"], tool)
    return list(tools.values())


def _opening(example: Example) -> str:
    first = next((m.content or "" for m in example.messages if m.role == "user"), "")
    return " ".join(first.split())[:100]
