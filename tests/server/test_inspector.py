"""The MCP Inspector CLI (the reference client) drives `engrain mcp` over stdio."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.server.conftest import ENGRAIN, external_cli, invalid_example, stored_total, valid_example

TOOL_IS_ERROR = 5  # the Inspector's exit code when a tool answers isError


def inspect(ws, *args: str, era: str = "legacy") -> tuple[int, dict]:
    cli = external_cli("mcp-inspector")
    cmd = [str(cli), "--cli", "--format", "json", "--protocol-era", era,
           str(ENGRAIN), "mcp", "--workspace", str(ws.root), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=dict(os.environ))
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_inspector_lists_tools(workspace, era):
    rc, out = inspect(workspace, "--method", "tools/list", era=era)
    assert rc == 0
    assert {"brief", "submit", "examples", "review", "coverage", "export", "train", "run_status"} == {
        t["name"] for t in out["result"]["tools"]
    }


@pytest.mark.timeout(600)
def test_inspector_submits_a_valid_and_an_invalid_example(workspace):
    rc, out = inspect(workspace, "--method", "tools/call", "--tool-name", "submit",
                      "--tool-args-json", json.dumps({"examples": [valid_example(21)]}))
    assert rc == 0
    verdict = out["result"]["structuredContent"]["verdicts"][0]
    assert verdict["accepted"] and verdict["id"]

    rc, out = inspect(workspace, "--method", "tools/call", "--tool-name", "submit",
                      "--tool-args-json", json.dumps({"examples": [invalid_example()]}))
    # A rejection is a verdict the model reads, not a failed call.
    assert rc == 0
    verdict = out["result"]["structuredContent"]["verdicts"][0]
    assert not verdict["accepted"]
    assert any("no-todo" in r for r in verdict["reasons"]) and any("Grep" in r for r in verdict["reasons"])
    assert stored_total(workspace) == 1


@pytest.mark.timeout(600)
def test_inspector_sees_a_tool_error_for_an_unknown_category(workspace):
    rc, out = inspect(workspace, "--method", "tools/call", "--tool-name", "brief",
                      "--tool-args-json", json.dumps({"category": "nope"}))
    assert rc == TOOL_IS_ERROR
    assert "tool-use, code-review" in out["result"]["content"][0]["text"]


@pytest.mark.timeout(600)
def test_inspector_gets_the_generate_prompt(workspace):
    rc, out = inspect(workspace, "--method", "prompts/get", "--prompt-name", "generate",
                      "--prompt-args", "category=code-review", "count=3")
    assert rc == 0
    text = out["result"]["messages"][0]["content"]["text"]
    assert "'code-review'" in text and "submit" in text
