"""Machine-checked behaviours from `[[rules]]`, applied per reply.

A reply is the assistant messages that follow one user message, up to the next user message. `starts_with`
checks the first assistant message's content of the reply; the text kinds check the reply's assistant
text joined by newlines; `judge` asks a model (a function the caller passes in) about the user turn and that
text; the tool kinds check the reply's tool calls, message by message. A rule whose `categories` or `when_*`
do not match is not applicable: its result has applicable=False (and passed=True, so "all passed" stays
true), and an eval counts only applicable ones. Tool rules also apply only to replies that use tools where
they are about tools (`tool_preferred`: calls the tool or one it should be preferred to; `parallel_tool_calls`:
calls any tool); `tool_before_answer` applies to every matching reply, since answering without a tool is
exactly what it catches.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from datagen.judge import Judge, JudgeError
from datagen.schema import Message, Rule, RuleResult

FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.M | re.S)


@dataclass
class Reply:
    user: str
    first: str
    text: str
    calls: list[list[str]]            # tool names called, one list per assistant message


TOOL_KINDS = ("tool_preferred", "parallel_tool_calls", "tool_before_answer")


def load_rules(ws) -> list[Rule]:
    return list(ws.config.rules)


def replies(messages: Sequence[Message | dict[str, Any]]) -> list[Reply]:
    out: list[Reply] = []
    user: str | None = None
    parts: list[str] = []
    calls: list[list[str]] = []
    for message in messages:
        role, content = _field(message, "role"), _field(message, "content") or ""
        if role == "user":
            if user is not None:
                out.append(Reply(user, parts[0] if parts else "", "\n".join(parts), calls))
            user, parts, calls = content, [], []
        elif role == "assistant" and user is not None:
            parts.append(content)
            calls.append([_call_name(c) for c in _field(message, "tool_calls") or []])
    if user is not None:
        out.append(Reply(user, parts[0] if parts else "", "\n".join(parts), calls))
    return out


def check_rules(rules: Sequence[Rule], messages: Sequence[Message | dict[str, Any]],
                category: str | None, judge: Judge | None = None) -> list[RuleResult]:
    """One result per rule: failing if any applicable reply breaks it (the detail says which).

    `judge` grades `judge` rules; without one an applicable judge rule raises JudgeError, as does a judge model
    that fails: a verdict nobody gave must not count as a pass or a failure."""
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
            if not _uses_tools_it_concerns(rule, reply):
                continue
            applicable = True
            problem = _judged(rule, reply, judge) if rule.kind == "judge" else _check(rule, reply)
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
    elif rule.kind in TOOL_KINDS:
        return _check_tools(rule, reply.calls)
    return ""


def _uses_tools_it_concerns(rule: Rule, reply: Reply) -> bool:
    called = {name for turn in reply.calls for name in turn}
    if rule.kind == "tool_preferred":
        return bool(called & {rule.tool, *rule.instead_of})
    if rule.kind == "parallel_tool_calls":
        return bool(called)
    return True


def _check_tools(rule: Rule, calls: list[list[str]]) -> str:
    flat = [name for turn in calls for name in turn]
    if rule.kind == "tool_preferred":
        first = next(name for name in flat if name in (rule.tool, *rule.instead_of))
        if first != rule.tool:
            return f"called {first} before {rule.tool}"
    elif rule.kind == "parallel_tool_calls":
        # Independent calls belong in one turn: the widest turn must carry at least `value` (default 2) calls.
        wanted = rule.value or 2
        widest = max(len(turn) for turn in calls)
        if widest < wanted:
            return f"{len(flat)} tool call(s) spread over {sum(1 for t in calls if t)} turn(s), at most {widest} " \
                   f"in one; issue independent calls together (at least {wanted})"
    elif rule.kind == "tool_before_answer":
        first = calls[0] if calls else []
        if not first or (rule.tool and rule.tool not in first):
            what = rule.tool or "any tool"
            return f"answered without calling {what} first"
    return ""


def _judged(rule: Rule, reply: Reply, judge: Judge | None) -> str:
    if judge is None:
        raise JudgeError(f"rule {rule.name!r} is a judge rule and no judge model is set: set [dataset] judge_model "
                         "in engrain.toml (validation) or pass --judge (eval)")
    passed, reason = judge.grade(rule.description, reply.user, reply.text)
    return "" if passed else f"the judge ({judge.name}) says: {reason}"


def _opening(text: str) -> str:
    return text.strip().splitlines()[0][:60] if text.strip() else ""


def _field(message: Message | dict[str, Any], name: str) -> Any:
    return message.get(name) if isinstance(message, dict) else getattr(message, name)


def _call_name(call: Any) -> str:
    function = call.get("function") if isinstance(call, dict) else getattr(call, "function", None)
    if function is None:
        return str(call.get("name", "")) if isinstance(call, dict) else ""
    return str(function.get("name", "")) if isinstance(function, dict) else function.name
