"""Bad tool input gets an error the model can act on, and the dataset stays exactly as it was."""
from __future__ import annotations

import datagen
import pytest
from mcp import Client

from server import build_server
from tests.server.conftest import error_text, structured, valid_example

FIVE_MB = "x" * (5 * 1024 * 1024)

BAD_CALLS = [
    ("wrong type for count", "brief", {"category": "tool-use", "count": "many"}, "count"),
    ("examples not a list", "submit", {"examples": "one example"}, "examples"),
    ("limit out of range", "examples", {"limit": 1000}, "limit"),
    ("bad review verdict", "review", {"decisions": [{"id": "x", "verdict": "maybe"}]}, "verdict"),
    ("unknown export format", "export", {"format": "csv"}, "format"),
    ("path escapes with ..", "export", {"format": "openai", "out": "../outside"}, "outside the workspace"),
    ("absolute path elsewhere", "export", {"format": "openai", "out": "/tmp/engrain-out"}, "outside the workspace"),
    ("path that reads as an option", "export", {"format": "openai", "out": "--force"}, "starts with '-'"),
    ("path into the state dir", "export", {"format": "openai", "out": ".engrain/x"}, "holds the dataset"),
    (
        "a 5 MB example",
        "submit",
        {"examples": [{"messages": [{"role": "user", "content": FIVE_MB}], "category": "tool-use"}]},
        "the limit is",
    ),
    ("unknown category", "brief", {"category": "nope", "count": 2}, "tool-use, code-review"),
    ("unknown run id", "run_status", {"run_id": "no-such-run"}, "no-such-run"),
]


def snapshot(ws: datagen.Workspace) -> list[tuple]:
    page = datagen.list_examples(ws, limit=100)
    return [(s.id, s.status, s.content_hash, len(s.reviews)) for s in page.items]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize(("case", "tool", "args", "expected"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
async def test_bad_input_is_refused_and_changes_nothing(workspace, mode, case, tool, args, expected):
    async with Client(build_server(workspace), mode=mode) as c:
        structured(await c.call_tool("submit", {"examples": [valid_example(7)]}))
        before = snapshot(workspace)
        message = error_text(await c.call_tool(tool, args))
    assert expected in message, message
    assert len(message) < 2000
    assert snapshot(workspace) == before
    assert not (workspace.root.parent / "outside").exists()


async def test_unknown_category_in_a_submission_is_a_reason(workspace):
    async with Client(build_server(workspace)) as c:
        result = structured(await c.call_tool("submit", {"examples": [valid_example(3, category="nope")]}))
    (verdict,) = result["verdicts"]
    assert not verdict["accepted"]
    assert any("nope" in r and "tool-use" in r for r in verdict["reasons"]), verdict["reasons"]
    assert snapshot(workspace) == []


async def test_unknown_category_in_a_prompt_lists_the_valid_ones(workspace):
    async with Client(build_server(workspace)) as c:
        with pytest.raises(Exception, match="tool-use, code-review"):
            await c.get_prompt("generate", {"category": "nope"})
