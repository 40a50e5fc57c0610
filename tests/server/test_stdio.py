"""`engrain mcp` as a real subprocess over stdio: one client per protocol, then eight at once."""
from __future__ import annotations

import json
import os
import subprocess
from contextlib import AsyncExitStack

import anyio
import datagen
import pytest
from mcp import Client, StdioServerParameters

from tests.server.conftest import ENGRAIN, structured, valid_example

CLIENTS = 8
PER_CLIENT = 4


def engrain_mcp(ws: datagen.Workspace, *extra: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=str(ENGRAIN), args=["mcp", "--workspace", str(ws.root), *extra], env=dict(os.environ)
    )


@pytest.mark.parametrize(("mode", "version"), [("auto", "2026-07-28"), ("legacy", "2025-11-25")])
async def test_stdio_subprocess_serves_both_protocols(workspace, mode, version):
    async with Client(engrain_mcp(workspace), mode=mode) as c:
        assert c.protocol_version == version
        assert "submit" in {t.name for t in (await c.list_tools()).tools}
        result = structured(await c.call_tool("submit", {"examples": [valid_example(11)]}))
    assert result["accepted"] == 1
    assert datagen.get_example(workspace, result["verdicts"][0]["id"]).generator == "mcp"


async def test_workspace_comes_from_claude_project_dir(workspace, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {**os.environ, "CLAUDE_PROJECT_DIR": str(workspace.root)}
    env.pop("ENGRAIN_WORKSPACE", None)
    params = StdioServerParameters(command=str(ENGRAIN), args=["mcp", "--read-only"], env=env)
    async with Client(params) as c:
        cov = structured(await c.call_tool("coverage", {}))
        assert "submit" not in {t.name for t in (await c.list_tools()).tools}
    assert [x["name"] for x in cov["categories"]] == ["tool-use", "code-review"]


@pytest.mark.timeout(600)
async def test_eight_servers_into_one_workspace_lose_and_duplicate_nothing(workspace):
    shared = valid_example(999)
    verdicts: dict[int, list[dict]] = {i: [] for i in range(CLIENTS)}

    async def work(i: int, c: Client) -> None:
        for j in range(PER_CLIENT):
            for example in (valid_example(1000 * (i + 1) + j), shared):
                result = structured(await c.call_tool("submit", {"examples": [example]}))
                verdicts[i].append(result["verdicts"][0])

    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Client(engrain_mcp(workspace))) for _ in range(CLIENTS)]
        async with anyio.create_task_group() as tg:
            for i, c in enumerate(clients):
                tg.start_soon(work, i, c)

    unique = [v for vs in verdicts.values() for v in vs[0::2]]
    repeats = [v for vs in verdicts.values() for v in vs[1::2]]
    assert all(v["accepted"] for v in unique), [v for v in unique if not v["accepted"]]
    shared_ids = {v["id"] for v in repeats if v["accepted"]}
    assert len(shared_ids) == 1, repeats
    (shared_id,) = shared_ids
    assert all(v["duplicate_of"] == shared_id for v in repeats if not v["accepted"])

    page = datagen.list_examples(workspace, limit=100)
    stored = {s.id for s in page.items}
    assert page.total == len(stored) == CLIENTS * PER_CLIENT + 1
    assert stored == {v["id"] for v in unique} | {shared_id}


def test_stdout_carries_nothing_but_protocol(workspace):
    initialize = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
    }
    tools = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    lines = [json.dumps(initialize), json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
             json.dumps(tools)]
    # stdin stays open until the last reply: a server may drop requests still in flight when its input ends
    proc = subprocess.Popen([str(ENGRAIN), "mcp", "--workspace", str(workspace.root)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=dict(os.environ))
    try:
        proc.stdin.write("\n".join(lines) + "\n")
        proc.stdin.flush()
        replies = [json.loads(proc.stdout.readline()) for _ in range(2)]
        proc.stdin.close()
        rest = proc.stdout.read()
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert [r.get("id") for r in replies] == [1, 2] and not rest.strip(), rest
    assert all(r["jsonrpc"] == "2.0" for r in replies)
