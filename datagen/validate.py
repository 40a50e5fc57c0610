"""Validation that reports every reason an example is unusable, not just the first."""
from __future__ import annotations

import ast
import json
import textwrap
import tomllib
from typing import Any

import jsonschema
from pydantic import ValidationError

from datagen.config import DatasetConfig
from datagen.judge import Judge, JudgeError, litellm_judge
from datagen.rules import FENCE, check_rules
from datagen.schema import Example, Message
from datagen.toolschema import BUDGET_S, OverBudget, Unresolvable, argument_errors, budget, schema_problem
from datagen.untrusted import record_problem

ROLES = ("system", "user", "assistant", "tool")


def validate(record: dict[str, Any], config: DatasetConfig,
             judge: Judge | None = None) -> tuple[Example | None, list[str]]:
    """(the example, []) when it is usable, else (None, every reason it is not). `judge` grades judge rules
    (default: datagen's litellm client on [dataset] judge_model)."""
    if not isinstance(record.get("messages"), list) or not record["messages"]:
        return None, ["'messages' must be a non-empty list of {role, content} objects"]
    reasons: list[str] = []
    tools, tool_reasons = _tools(record.get("tools"))
    reasons += tool_reasons
    numbered: list[tuple[int, Message]] = []
    for number, raw in enumerate(record["messages"], 1):
        message, problems = _message(number, raw)
        reasons += problems
        if message is not None:
            numbered.append((number, message))
    messages = [message for _, message in numbered]
    if len(messages) == len(record["messages"]):
        reasons += _order(messages)
    with budget():
        for number, message in numbered:
            reasons += _calls(number, message, tools)
            if message.role == "assistant" and message.content:
                reasons += _fences(number, message.content)
    length = sum(len(m.content or "") + sum(len(c.function.arguments) for c in m.tool_calls or []) for m in messages)
    if length > config.max_chars:
        reasons.append(f"too long: {length} characters, the limit is {config.max_chars} ([dataset] max_chars)")
    category = record.get("category")
    if not category:
        reasons.append("no category: set \"category\" in the record or import with --category")
    elif config.category(category) is None:
        reasons.append(f"unknown category {category!r}; the plan has: {', '.join(c.name for c in config.categories)}")
    else:
        reasons += _rule_reasons(config, messages, category, judge)
    if reasons:
        return None, reasons
    try:
        return Example.model_validate({**record, "messages": messages}), []
    except ValidationError as exc:
        return None, [_pydantic_reason("example", e) for e in exc.errors()]


def _rule_reasons(config: DatasetConfig, messages: list[Message], category: str,
                  judge: Judge | None) -> list[str]:
    if judge is None and config.judge_model and any(r.kind == "judge" for r in config.rules):
        judge = litellm_judge(config.judge_model, config.judge_api_base)
    try:
        results = check_rules(config.rules, messages, category, judge)
    except JudgeError as exc:
        return [f"not judged, so not accepted: {exc}"]
    return [f"rule {r.name!r} failed: {r.detail}" for r in results if r.applicable and not r.passed]


def _message(number: int, raw: Any) -> tuple[Message | None, list[str]]:
    where = f"message {number}"
    if not isinstance(raw, dict):
        return None, [f"{where} is not an object"]
    if raw.get("role") not in ROLES:
        return None, [f"{where} has role {raw.get('role')!r}; use one of {', '.join(ROLES)}"]
    try:
        message = Message.model_validate(raw)
    except ValidationError as exc:
        return None, [_pydantic_reason(f"{where} ({raw['role']})", e) for e in exc.errors()]
    problems = []
    if message.tool_calls and message.role != "assistant":
        problems.append(f"{where} ({message.role}) has tool_calls; only assistant messages call tools")
    if message.role == "tool" and not message.tool_call_id:
        problems.append(f"{where} (tool) has no tool_call_id naming the call it answers")
    if message.role != "tool" and message.tool_call_id:
        problems.append(f"{where} ({message.role}) has a tool_call_id; only tool results carry one")
    if message.role in ("system", "user") and not (message.content or "").strip():
        problems.append(f"{where} ({message.role}) is empty")
    if message.role == "assistant" and not (message.content or "").strip() and not message.tool_calls:
        problems.append(f"{where} (assistant) is empty: no content and no tool calls")
    return (None if problems else message), problems


def _order(messages: list[Message]) -> list[str]:
    reasons = []
    roles = [m.role for m in messages]
    if "system" in roles[1:]:
        reasons.append(f"a system message may only come first (found at message {roles.index('system', 1) + 1})")
    body = roles[1:] if roles[0] == "system" else roles
    if not body or body[0] != "user":
        reasons.append("the conversation must start with a user message (after an optional system message)")
    for i in range(1, len(roles)):
        if roles[i] == roles[i - 1] == "user":
            reasons.append(f"messages {i} and {i + 1} are both user turns; merge them or put the reply between")
    if roles[-1] != "assistant":
        reasons.append(f"the conversation must end with an assistant message, not {roles[-1]}")
    if "assistant" not in roles:
        reasons.append("no assistant message: there is nothing to learn from")
    open_calls: dict[str, int] = {}
    for number, message in enumerate(messages, 1):
        if message.role == "tool":
            if message.tool_call_id not in open_calls:
                reasons.append(f"message {number} (tool) answers tool_call_id {message.tool_call_id!r}, "
                               "which no earlier assistant call is waiting on")
            open_calls.pop(message.tool_call_id, None)
            continue
        for call_id, at in open_calls.items():
            reasons.append(f"tool call {call_id!r} (message {at}) gets no tool result before message {number}")
        open_calls = {c.id: number for c in message.tool_calls or []}
    return reasons


def _tools(raw: Any) -> tuple[dict[str, dict], list[str]]:
    if raw is None:
        return {}, []
    if not isinstance(raw, list):
        return {}, ["'tools' must be a list of {type: function, function: {name, parameters}} objects"]
    tools, reasons = {}, []
    for number, tool in enumerate(raw, 1):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not function.get("name"):
            reasons.append(f"tool {number} needs {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}")
            continue
        schema = function.get("parameters") or {"type": "object"}
        problem = schema_problem(schema)
        if problem:
            reasons.append(f"tool {function['name']!r} parameters: {problem}")
            continue
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            reasons.append(f"tool {function['name']!r} parameters are not a valid JSON schema: {exc.message}")
            continue
        tools[function["name"]] = schema
    return tools, reasons


def _calls(number: int, message: Message, tools: dict[str, dict]) -> list[str]:
    reasons = []
    for call in message.tool_calls or []:
        where = f"message {number} tool call {call.id!r}"
        name = call.function.name
        if name not in tools:
            declared = ", ".join(tools) or "none"
            reasons.append(f"{where} names undeclared tool {name!r} (declared: {declared})")
        try:
            arguments = json.loads(call.function.arguments)
        except json.JSONDecodeError as exc:
            reasons.append(f"{where} ({name}) arguments are not JSON: {exc.msg} at column {exc.colno}")
            continue
        except RecursionError:
            arguments = None
        problem = record_problem(arguments) if arguments is not None else "nested too deeply to read"
        if problem:
            reasons.append(f"{where} ({name}) arguments: {problem}")
            continue
        if not isinstance(arguments, dict):
            reasons.append(f"{where} ({name}) arguments must be a JSON object")
            continue
        if name in tools:
            reasons += _argument_reasons(f"{where} ({name})", tools[name], arguments)
    ids = [c.id for c in message.tool_calls or []]
    reasons += [f"message {number} repeats tool call id {i!r}" for i in sorted({i for i in ids if ids.count(i) > 1})]
    return reasons


def _argument_reasons(where: str, schema: dict, arguments: dict) -> list[str]:
    try:
        errors = argument_errors(schema, arguments)
    except OverBudget:
        return [f"{where}: checking the arguments against the tool's schema took over {BUDGET_S:g} s (the budget "
                "per example); simplify the schema"]
    except Unresolvable as exc:
        return [f"{where}: the tool's schema has a $ref that does not resolve within it ({exc})"]
    except RecursionError:
        return [f"{where}: the tool's schema refers to itself without end"]
    return [f"{where} {'/'.join(map(str, e.path)) or 'arguments'}: {e.message}" for e in errors]


def _fences(number: int, content: str) -> list[str]:
    reasons = []
    for block, (language, body) in enumerate(FENCE.findall(content), 1):
        problem = parse_error(language.lower(), body)
        if problem:
            reasons.append(f"message {number}: ```{language} block {block} does not parse ({problem})")
    return reasons


def parse_error(language: str, code: str) -> str:
    """Why `code` does not parse as `language`, or '' (also for languages we have no parser for)."""
    try:
        if language in ("python", "py", "python3"):
            # Snippets are often indented excerpts or use top-level await; both are fine in an answer.
            compile(textwrap.dedent(code), "<example>", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        elif language == "json":
            json.loads(code)
        elif language == "toml":
            tomllib.loads(code)
        elif language in ("yaml", "yml"):
            yaml = _yaml()
            if yaml is not None:
                yaml.safe_load(code)
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    except json.JSONDecodeError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    except tomllib.TOMLDecodeError as exc:
        return str(exc)
    except RecursionError:
        return "nested too deeply to parse"
    except Exception as exc:  # yaml.YAMLError, kept import-free so yaml stays optional
        return str(exc).splitlines()[0]
    return ""


def _yaml():
    try:
        import yaml
    except ImportError:
        return None
    return yaml


def _pydantic_reason(where: str, error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error["loc"])
    return f"{where} {location}: {error['msg']}" if location else f"{where}: {error['msg']}"


def validate_example(ws, record: dict[str, Any], *, rules: bool = True, judge: Judge | None = None) -> list[str]:
    """Every reason `record` is unusable in this workspace ([] when it is fine), storing nothing.

    `rules=False` checks structure only (roles, tool calls against their schemas, code fences, category) — what
    training's eval uses to judge a model's tool calls apart from its content rules."""
    config = ws.config if rules else ws.config.model_copy(update={"rules": []})
    return validate(record, config, judge)[1]
