"""Machine-checked behaviours from `[[rules]]`, applied per reply.

A reply is the assistant messages that follow one user message, up to the next user message. `starts_with`
checks the first assistant message's content of the reply; every other kind checks the reply's assistant
text joined by newlines. A rule whose `categories` or `when_*` do not match is not applicable: its result
has applicable=False (and passed=True, so "all passed" stays true), and an eval counts only applicable ones.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from datagen.schema import Message, Rule, RuleResult

FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.M | re.S)


@dataclass
class Reply:
    user: str
    first: str
    text: str


def load_rules(ws) -> list[Rule]:
    return list(ws.config.rules)


def replies(messages: Sequence[Message | dict[str, Any]]) -> list[Reply]:
    out: list[Reply] = []
    user: str | None = None
    parts: list[str] = []
    for message in messages:
        role, content = _field(message, "role"), _field(message, "content") or ""
        if role == "user":
            if user is not None:
                out.append(Reply(user, parts[0] if parts else "", "\n".join(parts)))
            user, parts = content, []
        elif role == "assistant" and user is not None:
            parts.append(content)
    if user is not None:
        out.append(Reply(user, parts[0] if parts else "", "\n".join(parts)))
    return out


def check_rules(rules: Sequence[Rule], messages: Sequence[Message | dict[str, Any]],
                category: str | None) -> list[RuleResult]:
    """One result per rule: failing if any applicable reply breaks it (the detail says which)."""
    conversation = replies(messages)
    results = []
    for rule in rules:
        if "*" not in rule.categories and category not in rule.categories:
            results.append(RuleResult(name=rule.name, applicable=False, passed=True,
                                      detail=f"not applicable to category {category!r}"))
            continue
        applicable, failures = False, []
        for number, reply in enumerate(conversation, 1):
            if rule.when_user and not re.search(rule.when_user, reply.user, re.M):
                continue
            if rule.when_reply and not re.search(rule.when_reply, reply.text, re.M):
                continue
            applicable = True
            problem = _check(rule, reply)
            if problem:
                failures.append(problem if len(conversation) == 1 else f"reply {number}: {problem}")
        detail = "; ".join(failures) if failures else ("passed" if applicable else "no reply it applies to")
        results.append(RuleResult(name=rule.name, applicable=applicable, passed=not failures, detail=detail))
    return results


def _check(rule: Rule, reply: Reply) -> str:
    """Why the reply breaks the rule, or '' when it keeps it."""
    text = reply.text
    if rule.kind == "starts_with":
        if not reply.first.lstrip().startswith(rule.pattern):
            return f"does not start with {rule.pattern!r} (starts {_opening(reply.first)!r})"
    elif rule.kind == "regex_must":
        if not re.search(rule.pattern, text, re.M):
            return f"nothing matches /{rule.pattern}/"
    elif rule.kind == "regex_must_not":
        found = re.search(rule.pattern, text, re.M)
        if found:
            return f"matches /{rule.pattern}/ at {found.group(0)[:60]!r}"
    elif rule.kind == "not_name":
        named = [term for term in rule.terms if term.lower() in text.lower()]
        if named:
            return f"names {', '.join(repr(t) for t in named)}"
    elif rule.kind == "max_chars":
        if len(text) > rule.value:
            return f"{len(text)} characters, more than {rule.value}"
    elif rule.kind == "min_chars":
        if len(text) < rule.value:
            return f"{len(text)} characters, fewer than {rule.value}"
    elif rule.kind == "max_code_lines":
        longest = max((body.count("\n") for _, body in FENCE.findall(text)), default=0)
        if longest > rule.value:
            return f"a code block has {longest} lines, more than {rule.value}"
    return ""


def _opening(text: str) -> str:
    return text.strip().splitlines()[0][:60] if text.strip() else ""


def _field(message: Message | dict[str, Any], name: str) -> Any:
    return message.get(name) if isinstance(message, dict) else getattr(message, name)
