"""train starts a detached run and returns at once; run_status follows it with progress notifications."""
from __future__ import annotations

import os
import signal

import datagen
import pytest
import training
from mcp import Client

from server import build_server
from tests.server.conftest import error_text, structured

@pytest.fixture
def stop_runs(workspace):
    yield
    # Never leave a training process behind: each run is its own session (process group).
    for record in training.list_runs(workspace):
        pid = training.run_status(workspace, record.id).pid
        if pid:
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_train_returns_a_run_id_and_run_status_follows_it_to_the_end(workspace, mode, stop_runs):
    # The hosted backend needs no base model on disk, so with nothing approved the run fails at once, offline,
    # with a message that says what to do.
    with workspace.config_path.open("a") as toml:
        toml.write('\n[training]\nbackend = "hosted"\n')
    workspace = datagen.find_workspace(workspace.root)
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async with Client(build_server(workspace), mode=mode) as c:
        run_id = structured(await c.call_tool("train", {"max_steps": 1}))["run_id"]
        status = structured(
            await c.call_tool("run_status", {"run_id": run_id, "wait_s": 120}, progress_callback=on_progress)
        )
    assert status["run_id"] == run_id and status["state"] == "failed"
    assert "approve" in status["error"], status["error"]
    # The run was queued a moment before the first poll, so at least one notification went out while waiting.
    assert progress and all(message for _, _, message in progress)


async def test_train_refuses_an_unknown_stage(workspace):
    async with Client(build_server(workspace)) as c:
        message = error_text(await c.call_tool("train", {"stage": "no-such-stage"}))
    assert "no-such-stage" in message
    assert training.list_runs(workspace) == []
