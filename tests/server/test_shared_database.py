"""Issue 16: two workspaces (two checkouts, as on two machines) whose engrain.toml name one PostgreSQL database. Their
MCP servers, each a real `engrain mcp` subprocess over stdio, see each other's examples and review decisions, and
the duplicate check spans both."""
from __future__ import annotations

from pathlib import Path

import datagen
from mcp import Client

from tests.server.conftest import TEST_TOML, structured, valid_example
from tests.server.test_stdio import engrain_mcp


def _workspace(root: Path, database_url: str) -> datagen.Workspace:
    template = root.parent / f"{root.name}.toml"
    template.write_text(TEST_TOML.replace("[dataset]\n", f'[dataset]\ndatabase_url = "{database_url}"\n', 1))
    datagen.init_workspace(root, template=template)
    return datagen.find_workspace(root)


async def test_mcp_servers_on_two_workspaces_sharing_one_database_see_each_others_examples(tmp_path, database_url):
    alice, bob = _workspace(tmp_path / "alice", database_url), _workspace(tmp_path / "bob", database_url)

    async with Client(engrain_mcp(alice)) as a, Client(engrain_mcp(bob)) as b:
        sent = structured(await a.call_tool("submit", {"examples": [valid_example(1), valid_example(2)]}))
        seen = structured(await b.call_tool("examples", {"status": "all"}))
        again = structured(await b.call_tool("submit", {"examples": [valid_example(1), valid_example(3)]}))
        decision = {"id": sent["verdicts"][0]["id"], "verdict": "approve"}
        structured(await b.call_tool("review", {"decisions": [decision]}))
        after = structured(await a.call_tool("examples", {"status": "all"}))

    ids = [v["id"] for v in sent["verdicts"]]
    assert sent["accepted"] == 2
    assert [item["id"] for item in seen["items"]] == ids
    duplicate, fresh = again["verdicts"]
    assert not duplicate["accepted"] and duplicate["duplicate_of"] == ids[0]
    assert fresh["accepted"]
    assert [(i["id"], i["status"]) for i in after["items"]] == [(ids[0], "approved"), (ids[1], "pending"),
                                                               (fresh["id"], "pending")]
    assert datagen.list_examples(alice, status="all").total == 3
    assert not (alice.state_dir / "engrain.db").exists() and not (bob.state_dir / "engrain.db").exists()
