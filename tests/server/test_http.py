"""`engrain mcp --transport http` serves streamable HTTP on 127.0.0.1."""
from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest
from mcp import Client

from tests.server.conftest import ENGRAIN, structured


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"engrain mcp exited with {proc.returncode}: {proc.stderr.read()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    pytest.fail(f"engrain mcp did not listen on {port} within {timeout}s")


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_http_transport(workspace, mode):
    port = free_port()
    proc = subprocess.Popen(
        [str(ENGRAIN), "mcp", "--workspace", str(workspace.root), "--transport", "http", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )
    try:
        wait_for_port(port, proc)
        async with Client(f"http://127.0.0.1:{port}/mcp", mode=mode) as c:
            cov = structured(await c.call_tool("coverage", {}))
        assert [x["name"] for x in cov["categories"]] == ["tool-use", "code-review"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
