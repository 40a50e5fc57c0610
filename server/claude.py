"""Register the server with Claude Code: `.mcp.json` plus one generator subagent per plan category."""
from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import datagen
from server import agents

SERVER_NAME = "engrain"
GENERATOR_TOOLS = ("brief", "submit", "examples", "coverage")


def engrain_command() -> Path:
    """The `engrain` console script of the running interpreter, so the server runs in this environment."""
    # Not resolve(): a venv's python is a symlink to the system one, and the script lives beside the link.
    script = Path(sys.executable).absolute().parent / "engrain"
    if not script.exists():
        raise datagen.DatagenError(f"no engrain script at {script}; install engrain into this environment first")
    return script


def register_for_claude_code(root: Path, router_url: str | None = None,
                             on_change: Callable[[str], None] | None = None) -> str:
    """Write (or merge into) `root/.mcp.json` and `root/.claude/agents/`; return the equivalent `claude mcp add`.

    With `router_url`, also point the project's Claude Code at the router (`.claude/settings.json` `env`). The
    subagents follow the plan (server/agents.py); `on_change` hears each file written or removed.
    """
    root = Path(root).resolve()
    if router_url:
        _merge_settings_env(root / ".claude" / "settings.json", router_env(router_url))
    command = str(engrain_command())
    args = ["mcp", "--workspace", str(root)]
    _merge_mcp_json(root / ".mcp.json", {"type": "stdio", "command": command, "args": args, "env": {}})
    wanted = {f"{agents.PREFIX}{c.name}.md": _subagent(c) for c in datagen.plan(datagen.find_workspace(root))}
    agents.sync(root / ".claude" / "agents", wanted, on_change or (lambda _message: None))
    return shlex.join(["claude", "mcp", "add", "--scope", "project", SERVER_NAME, "--", command, *args])


def _merge_mcp_json(path: Path, entry: dict) -> None:
    config = _json_object(path, "mcpServers", "engrain init --claude")
    config["mcpServers"][SERVER_NAME] = entry
    _atomic_write(path, json.dumps(config, indent=2) + "\n")


def router_env(router_url: str) -> dict[str, str]:
    """Claude Code's settings for going through the router. Its background requests (titles, summaries, web
    page digests) are sent to its main model unless a haiku model is named; naming one lets the router's
    default rule send them to the local tier."""
    return {"ANTHROPIC_BASE_URL": router_url.rstrip("/"), "ANTHROPIC_DEFAULT_HAIKU_MODEL": "claude-haiku-4-5"}


def _merge_settings_env(path: Path, env: dict[str, str]) -> None:
    settings = _json_object(path, "env", "engrain init --claude --router")
    settings["env"].update(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, json.dumps(settings, indent=2) + "\n")


def _json_object(path: Path, key: str, command: str) -> dict:
    """The user's JSON file (empty when missing) whose `key` holds an object. Anything else is refused, not
    rewritten: rewriting would drop the user's other entries. DatagenError: the CLI prints it as one line."""
    data = {}
    if path.exists():
        try:
            data = json.loads(path.read_text() or "{}")
        except json.JSONDecodeError as exc:
            raise datagen.DatagenError(f"{path} is not valid JSON ({exc}); fix it and run `{command}` again") from exc
    if not isinstance(data, dict) or not isinstance(data.setdefault(key, {}), dict):
        raise datagen.DatagenError(f'{path} should hold {{"{key}": {{...}}, ...}}; fix it and run `{command}` again')
    return data


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _subagent(category: datagen.Category) -> str:
    name = category.name
    # Claude Code defers MCP tools: a subagent started before the server connected loads them with ToolSearch
    tools = ", ".join([*(f"mcp__{SERVER_NAME}__{t}" for t in GENERATOR_TOOLS), "ToolSearch", "Read", "Grep", "Glob"])
    description = (
        f"Writes engrain training examples for the '{name}' category ({category.description.rstrip('.')}). "
        f"Use it to grow the '{name}' part of the dataset; several can run in parallel."
    )
    return f"""---
name: engrain-gen-{name}
description: {json.dumps(description, ensure_ascii=False)}
tools: {tools}
model: inherit
---
You write fine-tuning examples for the engrain dataset, category `{name}`: {category.description}

They teach a model this project's agent behaviour without the system prompt, so every example must show
that behaviour in full, as a real session would.

1. If the `mcp__engrain__*` tools are not loaded yet, load them with ToolSearch (query `+engrain`).
   Call `mcp__engrain__brief` with category `{name}` and the count you were asked for (at most 20 per brief).
   Read the guidance, every rule, the knowledge chunks, the format and the sample.
2. Write the examples. Vary the user requests (skip the openings listed in `avoid`); make each reply pass
   every rule; ground them in the knowledge chunks and list the chunk ids you used in `source_refs`; use
   only the tools in `tools`, with arguments that fit their schemas, and include realistic tool results.
   You may Read/Grep/Glob this repository to make requests and code realistic.
3. Call `mcp__engrain__submit` with all of them in one call.
4. For each rejected verdict, fix the example by every listed reason and submit it again. For a
   duplicate, write a genuinely different example instead. Repeat until all are accepted.
5. Finish with `mcp__engrain__coverage` and report how many you added and what `{name}` still needs.
"""
