"""The server through the SDK's own Client, in memory, on both protocol generations."""
from __future__ import annotations

import json

import datagen
import pytest
from mcp import Client

from server import build_server
from tests.server.conftest import WORDS, error_text, invalid_example, stored_total, structured, valid_example

# "auto" dispatches in-process on the 2026-07-28 protocol; "legacy" runs the 2025-11-25 initialize handshake.
PROTOCOLS = {"auto": "2026-07-28", "legacy": "2025-11-25"}
WRITE_TOOLS = {"brief", "submit", "review", "export", "train"}  # brief counts the knowledge chunks it hands out
READ_TOOLS = {"examples", "coverage", "run_status"}


@pytest.fixture(params=sorted(PROTOCOLS))
def mode(request) -> str:
    return request.param


async def test_negotiates_each_protocol(workspace, mode):
    async with Client(build_server(workspace), mode=mode) as c:
        assert c.protocol_version == PROTOCOLS[mode]
        assert "coverage" in (c.instructions or "")


async def test_tools_are_typed_annotated_and_small(workspace, mode):
    async with Client(build_server(workspace), mode=mode) as c:
        tools = (await c.list_tools()).tools
    assert {t.name for t in tools} == READ_TOOLS | WRITE_TOOLS
    for t in tools:
        a = t.annotations
        hints = (a.read_only_hint, a.destructive_hint, a.idempotent_hint, a.open_world_hint)
        assert None not in hints, f"{t.name} leaves an annotation unset: {hints}"
        assert a.read_only_hint == (t.name in READ_TOOLS)
        assert t.output_schema is not None, f"{t.name} has no structured result"
        assert len(t.description.encode()) < 1024, t.name
    # Measured as the wire carries it: the whole tools array (names, descriptions, schemas, annotations).
    listed = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]
    size = len(json.dumps(listed, separators=(",", ":")).encode())
    print(f"\ntools/list ({mode}): {size} bytes for {len(tools)} tools")
    assert size < 8 * 1024


async def test_read_only_leaves_out_write_tools_and_prompts(workspace, mode):
    async with Client(build_server(workspace, read_only=True), mode=mode) as c:
        assert {t.name for t in (await c.list_tools()).tools} == READ_TOOLS
        assert (await c.list_prompts()).prompts == []
        result = await c.call_tool("submit", {"examples": [valid_example(1)]})
    assert "submit" in error_text(result)
    assert stored_total(workspace) == 0


async def test_brief_has_what_a_generator_needs(workspace, mode):
    notes = workspace.root / "CLAUDE.md"
    notes.write_text("# Project\n\n## Testing\n\nRun pytest before saying done.\n")
    datagen.add_knowledge(workspace, [notes])
    async with Client(build_server(workspace), mode=mode) as c:
        structured(await c.call_tool("submit", {"examples": [valid_example(5)]}))
        b = structured(await c.call_tool("brief", {"category": "tool-use", "count": 3}))
    assert b["category"] == "tool-use" and b["remaining"] == 19
    assert b["rules"] == ["no-todo: Never leave TODO placeholders in a reply."]
    assert b["sample"]["messages"] and b["format"] and b["guidance"] == "Search before editing."
    assert any("Run pytest" in k["text"] and k["id"] for k in b["knowledge"])
    assert {t["function"]["name"] for t in b["tools"]} >= {"Grep", "Read"}
    assert b["avoid"] and b["avoid"][0].startswith("Explain how")


async def test_submit_gives_a_verdict_per_example(workspace, mode):
    async with Client(build_server(workspace), mode=mode) as c:
        first = structured(await c.call_tool("submit", {"examples": [valid_example(1), invalid_example()]}))
        again = structured(await c.call_tool("submit", {"examples": [valid_example(1)]}))
    ok, bad = first["verdicts"]
    assert (first["accepted"], first["rejected"]) == (1, 1)
    assert ok["accepted"] and ok["id"]
    assert not bad["accepted"] and len(bad["reasons"]) >= 2
    assert any("no-todo" in r for r in bad["reasons"])
    assert again["verdicts"][0]["duplicate_of"] == ok["id"]
    assert stored_total(workspace) == 1


async def test_list_review_and_coverage(workspace, mode):
    async with Client(build_server(workspace), mode=mode) as c:
        sub = structured(await c.call_tool("submit", {"examples": [valid_example(i) for i in range(3)]}))
        ids = [v["id"] for v in sub["verdicts"]]
        page = structured(await c.call_tool("examples", {"status": "pending", "full": True, "limit": 2}))
        assert page["total"] == 3 and len(page["items"]) == 2 and page["next_offset"] == 2
        assert page["items"][0]["messages"][0]["role"] == "user"
        assert page["items"][0]["preview"].startswith("Explain how")

        no_notes = await c.call_tool("review", {"decisions": [{"id": ids[0], "verdict": "reject"}]})
        assert "notes" in error_text(no_notes)
        unknown = await c.call_tool("review", {"decisions": [{"id": "nope", "verdict": "approve"}]})
        assert "nope" in error_text(unknown)

        decisions = [{"id": ids[0], "verdict": "approve"}, {"id": ids[1], "verdict": "reject", "notes": "vague"}]
        recorded = structured(await c.call_tool("review", {"decisions": decisions}))
        assert recorded["recorded"] == [f"{ids[0]}: approved", f"{ids[1]}: rejected"]

        cov = structured(await c.call_tool("coverage", {}))
    tool_use = next(x for x in cov["categories"] if x["name"] == "tool-use")
    assert (tool_use["approved"], tool_use["pending"], tool_use["rejected"], tool_use["remaining"]) == (1, 1, 1, 18)
    assert "tool-use" in cov["next_step"]
    assert datagen.get_example(workspace, ids[1]).status == "rejected"


async def test_a_full_page_stays_small_enough_for_claude_code(workspace):
    # Three long examples with disjoint vocabularies (so none is a near-duplicate of another).
    long = []
    for k in range(3):
        words = WORDS[k * 60:(k + 1) * 60]
        text = " ".join(words[(i * 7) % len(words)] for i in range(2000))
        long.append({"messages": [{"role": "user", "content": f"Summarise {words[0]} please."},
                                  {"role": "assistant", "content": text}], "category": "code-review"})
    async with Client(build_server(workspace)) as c:
        assert structured(await c.call_tool("submit", {"examples": long}))["accepted"] == 3
        page = structured(await c.call_tool("examples", {"full": True, "limit": 3}))
        rest = structured(await c.call_tool("examples", {"full": True, "offset": page["next_offset"]}))
    assert len(page["items"]) == 2 and page["next_offset"] == 2
    assert len(rest["items"]) == 1 and rest["next_offset"] is None
    assert len(json.dumps(page)) < 40_000


async def test_export_writes_inside_the_workspace(workspace, mode):
    async with Client(build_server(workspace), mode=mode) as c:
        sub = structured(await c.call_tool("submit", {"examples": [valid_example(i) for i in range(4)]}))
        decisions = [{"id": v["id"], "verdict": "approve"} for v in sub["verdicts"]]
        structured(await c.call_tool("review", {"decisions": decisions}))
        out = structured(await c.call_tool("export", {"format": "openai"}))
    assert out["files"] and all(not f.startswith("/") for f in out["files"])
    assert all((workspace.root / f).is_file() for f in out["files"])
    assert sum(out["counts"].values()) == 4


async def test_prompts_become_slash_commands(workspace, mode):
    async with Client(build_server(workspace), mode=mode) as c:
        names = {p.name for p in (await c.list_prompts()).prompts}
        gen = await c.get_prompt("generate", {"category": "code-review", "count": "4"})
        rev = await c.get_prompt("review", {})
    assert names == {"generate", "review"}
    text = gen.messages[0].content.text
    assert "code-review" in text and "brief" in text and "submit" in text
    assert "status='pending'" in rev.messages[0].content.text


async def test_resources_show_plan_and_coverage(workspace, mode):
    async with Client(build_server(workspace), mode=mode) as c:
        uris = {str(r.uri) for r in (await c.list_resources()).resources}
        plan = json.loads((await c.read_resource("engrain://plan")).contents[0].text)
        cov = json.loads((await c.read_resource("engrain://coverage")).contents[0].text)
    assert uris == {"engrain://plan", "engrain://coverage"}
    assert [c["name"] for c in plan["categories"]] == ["tool-use", "code-review"]
    assert plan["categories"][0]["rules"] == ["no-todo: Never leave TODO placeholders in a reply."]
    assert {c["name"] for c in cov["categories"]} == {"tool-use", "code-review"}
