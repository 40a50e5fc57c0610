"""Issue 14, point 2: knowledge is tied to categories (plan sources/keywords, else the nearest description; editable),
a brief hands out only its category's chunks, front matter is parsed rather than handed out, and an example citing a
chunk that does not exist is rejected — all through the CLI as a user runs it."""
from __future__ import annotations

import json

import pytest

import datagen
from datagen.generate import first_json_object
from tests.datagen.conftest import tool_example

FILES = {
    "CLAUDE.md": "# Style guide\n\nName variables for what they hold. Keep functions short, under 40 lines, and "
                 "extract duplicated logic into one helper.\n",
    "rules/testing.md": "# Testing rules\n\nWrite the failing test first (red), make it pass (green), then refactor. "
                        "Run the whole suite before saying done.\n",
    "rules/tools.md": "# Tools\n\nSearch with Grep before editing; read a file before changing it.\n\n"
                      "# Parallel calls\n\nIssue independent reads in one turn.\n",
    "skills/tdd/SKILL.md": "---\nname: tdd-loop\ndescription: Use when implementing any feature: red, green, "
                           "refactor.\n---\n\n# Steps\n\n1. Write a failing test.\n2. Make it pass.\n",
}


@pytest.fixture
def project(ws):
    for name, text in FILES.items():
        (ws.root / name).parent.mkdir(parents=True, exist_ok=True)
        (ws.root / name).write_text(text, encoding="utf-8")
    toml = ws.config_path.read_text(encoding="utf-8")
    # The user ties rules/tools.md to tool-use in the plan; everything else is matched by description.
    toml = toml.replace('name = "tool-use"\n', 'name = "tool-use"\nsources = ["rules/tools.md"]\n', 1)
    ws.config_path.write_text(toml, encoding="utf-8")
    return datagen.find_workspace(ws.root)


def _chunks(cli, ws, *extra) -> dict[str, dict]:
    result = cli("knowledge", "list", "--json", *extra, "-w", ws.root)
    assert result.exit_code == 0, result.output
    return {c["id"]: c for c in map(json.loads, result.stdout.splitlines())}


def test_a_brief_for_a_category_hands_out_only_chunks_mapped_to_it(project, cli):
    assert cli("knowledge", "add", "CLAUDE.md", "rules", "skills", "-w", project.root).exit_code == 0
    chunks = _chunks(cli, project)
    tool_use = {i for i, c in chunks.items() if "tool-use" in c["categories"]}
    assert {chunks[i]["source"] for i in tool_use} == {"rules/tools.md"}
    assert all(c["categories"] for c in chunks.values())  # every chunk serves some category
    style = next(c for c in chunks.values() if c["source"] == "CLAUDE.md")
    assert "tool-use" not in style["categories"]

    for _ in range(3):  # least-used rotation never leaves the category
        brief = datagen.build_brief(project, "tool-use", 2)
        assert brief.knowledge and {c.id for c in brief.knowledge} <= tool_use


def test_front_matter_is_parsed_not_handed_out(project, cli):
    assert cli("knowledge", "add", "skills", "-w", project.root).exit_code == 0

    skill = list(_chunks(cli, project).values())
    assert [c["heading"] for c in skill] == ["tdd-loop > Steps"]
    assert "---" not in skill[0]["text"] and "description:" not in skill[0]["text"]
    assert skill[0]["line_start"] == 6  # still the file's own line numbers


def test_the_users_mapping_edits_win_and_survive_a_remap(project, cli):
    cli("knowledge", "add", "rules/tools.md", "CLAUDE.md", "-w", project.root)
    parallel = next(c for c in _chunks(cli, project).values() if c["heading"] == "Parallel calls")
    style = next(c for c in _chunks(cli, project).values() if c["source"] == "CLAUDE.md")

    removed = cli("knowledge", "tag", parallel["id"], "-c", "tool-use", "--remove", "-w", project.root)
    added = cli("knowledge", "tag", style["id"], "-c", "tool-use", "-w", project.root)
    remapped = cli("knowledge", "map", "-w", project.root)

    assert removed.exit_code == added.exit_code == remapped.exit_code == 0, remapped.output
    tool_use = _chunks(cli, project, "--category", "tool-use")
    assert style["id"] in tool_use and parallel["id"] not in tool_use
    unknown = cli("knowledge", "tag", style["id"], "-c", "poetry", "-w", project.root)
    assert unknown.exit_code == 2 and "unknown category 'poetry'" in unknown.stderr


def test_generate_sends_only_the_categorys_chunks(project, cli, fake_openai):
    cli("knowledge", "add", "CLAUDE.md", "rules", "skills", "-w", project.root)
    tool_use = set(_chunks(cli, project, "--category", "tool-use"))
    example = {**tool_example(), "source_refs": sorted(tool_use)[:1]}
    server = fake_openai([json.dumps(example)])

    result = cli("generate", "-c", "tool-use", "-n", "1", "-m", "openai/fake", "--api-base", server.api_base,
                 "-w", project.root)

    assert result.exit_code == 0, result.output
    brief = first_json_object(server.requests[0]["messages"][1]["content"])
    assert brief["category"] == "tool-use" and {c["id"] for c in brief["knowledge"]} <= tool_use


@pytest.mark.parametrize("refs, reason", [
    (["kn_DOES_NOT_EXIST"], "unknown knowledge chunk 'kn_DOES_NOT_EXIST'"),
    ("kn_not_a_list", "source_refs must be a list"),
])
def test_an_example_citing_a_chunk_that_is_not_stored_is_rejected(project, cli, tmp_path, refs, reason):
    cli("knowledge", "add", "rules/tools.md", "-w", project.root)
    real = next(iter(_chunks(cli, project)))
    path = tmp_path / "cites.jsonl"
    path.write_text(json.dumps({**tool_example(), "source_refs": refs}) + "\n"
                    + json.dumps({**tool_example("def save_invoice"), "source_refs": [real]}) + "\n")

    result = cli("import", path, "--json", "-w", project.root)

    first, second = map(json.loads, result.stdout.splitlines())
    assert result.exit_code == 1
    assert not first["accepted"] and any(reason in r for r in first["reasons"]), first["reasons"]
    assert second["accepted"], second["reasons"]
