"""Registration for Claude Code, checked by Claude Code itself (`claude mcp list` health-checks the server)."""
from __future__ import annotations

import json
import os
import subprocess

import datagen
import pytest
import yaml

from mcp import Client

from server import build_server, register_for_claude_code
from tests.server.conftest import ENGRAIN, external_cli


def frontmatter(text: str) -> dict:
    assert text.startswith("---\n")
    head, _, body = text[4:].partition("\n---\n")
    assert body.strip()
    return yaml.safe_load(head)


async def test_register_merges_mcp_json_and_writes_one_subagent_per_category(workspace):
    root = workspace.root
    (root / ".mcp.json").write_text(json.dumps({"mcpServers": {"other": {"command": "other-server"}}}))
    edited = root / ".claude" / "agents" / "engrain-gen-code-review.md"
    edited.parent.mkdir(parents=True)
    edited.write_text("my own version")

    line = register_for_claude_code(root)

    servers = json.loads((root / ".mcp.json").read_text())["mcpServers"]
    assert servers["other"] == {"command": "other-server"}
    assert servers["engrain"] == {
        "type": "stdio", "command": str(ENGRAIN), "args": ["mcp", "--workspace", str(root)], "env": {},
    }
    assert line == f"claude mcp add --scope project engrain -- {ENGRAIN} mcp --workspace {root}"

    agent = (root / ".claude" / "agents" / "engrain-gen-tool-use.md").read_text()
    meta = frontmatter(agent)
    assert meta["name"] == "engrain-gen-tool-use"
    assert "tool-use" in meta["description"]
    tools = {t.strip() for t in meta["tools"].split(",")}
    async with Client(build_server(workspace)) as c:
        served = {f"mcp__engrain__{t.name}" for t in (await c.list_tools()).tools}
    assert {"mcp__engrain__brief", "mcp__engrain__submit"} <= tools
    assert {t for t in tools if t.startswith("mcp__")} <= served
    assert "resubmit" in agent or "submit it again" in agent
    assert edited.read_text() == "my own version"  # a user's edit survives a second registration


@pytest.mark.parametrize("file, text, reason", [
    (".mcp.json", "{not json", "not valid JSON"),
    (".mcp.json", "[1, 2]", 'should hold {"mcpServers"'),
    (".mcp.json", '{"mcpServers": []}', 'should hold {"mcpServers"'),
    (".claude/settings.json", "{not json", r"not valid JSON .*engrain init --claude --router"),
    (".claude/settings.json", '{"env": "x"}', 'should hold {"env"'),
])
def test_register_refuses_to_clobber_a_file_it_cannot_merge_into(workspace, file, text, reason):
    path = workspace.root / file
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    with pytest.raises(datagen.DatagenError, match=reason):
        register_for_claude_code(workspace.root, router_url="http://127.0.0.1:4000")
    assert path.read_text() == text


@pytest.mark.timeout(300)
def test_claude_mcp_list_connects_to_the_server_engrain_init_registers(tmp_path):
    claude = external_cli("claude")
    project = tmp_path / "project"
    project.mkdir()
    init = subprocess.run([str(ENGRAIN), "init", "--claude"], cwd=project, capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    assert "claude mcp add" in init.stdout
    assert (project / ".mcp.json").is_file()
    categories = [c.name for c in datagen.plan(datagen.find_workspace(project))]
    assert sorted(p.name for p in (project / ".claude" / "agents").glob("engrain-gen-*.md")) == sorted(
        f"engrain-gen-{c}.md" for c in categories
    )

    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    # A project .mcp.json server stays "pending approval" until the user enables it.
    (home / ".claude" / "settings.json").write_text(json.dumps({"enabledMcpjsonServers": ["engrain"]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE"))}
    env.update(HOME=str(home), DISABLE_AUTOUPDATER="1", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1")
    listed = subprocess.run(
        [str(claude), "mcp", "list"], cwd=project, env=env, capture_output=True, text=True, timeout=240
    )
    print(listed.stdout, listed.stderr)
    # `claude mcp list` exits 0 even when a server fails: the health line is the result.
    engrain_lines = [line for line in listed.stdout.splitlines() if line.startswith("engrain")]
    assert engrain_lines and "✔ Connected" in engrain_lines[0], listed.stdout + listed.stderr
