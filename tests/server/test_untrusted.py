"""Issue 13, cases 2, 7 and 8 through the MCP server: export never writes through a planted link nor overwrites
without force (and says why), and one bad example in a submit gets its own verdict while the rest are stored."""
from __future__ import annotations

import json

import datagen
from mcp import Client

from server import build_server
from tests.server.conftest import error_text, stored_total, structured, valid_example


async def test_export_through_a_planted_link_is_refused_with_a_reason(workspace, tmp_path):
    victim = tmp_path / "outside" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("precious")
    trap = workspace.root / "exports" / "trap"
    trap.mkdir(parents=True)
    (trap / "train.jsonl").symlink_to(victim)
    async with Client(build_server(workspace)) as c:
        sub = structured(await c.call_tool("submit", {"examples": [valid_example(i) for i in range(3)]}))
        structured(await c.call_tool("review", {"decisions": [{"id": v["id"], "verdict": "approve"}
                                                              for v in sub["verdicts"]]}))
        refused = error_text(await c.call_tool("export", {"format": "openai", "out": "exports/trap"}))
        forced = error_text(await c.call_tool("export", {"format": "openai", "out": "exports/trap", "force": True}))
        first = structured(await c.call_tool("export", {"format": "openai", "out": "exports/ok"}))
        again = error_text(await c.call_tool("export", {"format": "openai", "out": "exports/ok"}))
        overwritten = structured(await c.call_tool("export", {"format": "openai", "out": "exports/ok",
                                                              "force": True}))
    assert "already exists" in refused or "symbolic link" in refused
    assert "symbolic link" in forced
    assert victim.read_text() == "precious"
    assert "already exists; pass force" in again
    assert first["files"] == overwritten["files"]


async def test_one_bad_example_in_a_submit_gets_its_own_verdict(workspace):
    deep: object = "leaf"
    for _ in range(100):
        deep = [deep]
    bad_surrogate = valid_example(2)
    bad_surrogate["messages"][0]["content"] = "hi \ud800 there"
    bad_deep = {**valid_example(3), "meta": {"x": deep}}
    bad_ref = valid_example(4)
    bad_ref["tools"] = [{"type": "function", "function": {"name": "Grep", "parameters": {
        "type": "object", "properties": {"p": {"$ref": "file:///etc/passwd"}}}}}]
    batch = [valid_example(1), bad_surrogate, bad_deep, bad_ref, valid_example(5)]

    async with Client(build_server(workspace)) as c:
        result = structured(await c.call_tool("submit", {"examples": batch}))

    verdicts = result["verdicts"]
    assert [v["accepted"] for v in verdicts] == [True, False, False, False, True]
    assert "lone surrogate" in verdicts[1]["reasons"][0]
    assert "nested deeper than 64" in verdicts[2]["reasons"][0]
    assert "points outside the schema" in verdicts[3]["reasons"][0]
    assert "root:" not in json.dumps(verdicts)
    assert stored_total(workspace) == 2
    assert datagen.get_example(workspace, verdicts[0]["id"]).example.messages[0].content.startswith("Explain")


async def test_a_read_only_dataset_is_a_tool_error_that_says_what_to_do(workspace):
    import shutil
    import subprocess

    import pytest

    if shutil.which("chattr") is None:
        pytest.skip("chattr is not available to make a file read-only for root")
    locked = [str(workspace.db_path), str(workspace.state_dir)]
    if subprocess.run(["chattr", "+i", *locked], capture_output=True).returncode != 0:
        pytest.skip("this filesystem does not support the immutable attribute")
    try:
        async with Client(build_server(workspace)) as c:
            message = error_text(await c.call_tool("submit", {"examples": [valid_example(1)]}))
    finally:
        subprocess.run(["chattr", "-i", *locked], check=True)
    assert "cannot be written" in message and "chmod -R u+w .engrain" in message, message
    assert stored_total(workspace) == 0
