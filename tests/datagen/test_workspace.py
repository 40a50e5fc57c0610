"""engrain init, workspace discovery, knowledge sources, rules and briefs."""
from __future__ import annotations

import os
import tomllib

import pytest

import datagen
from tests.datagen.conftest import QUICKSTART, chat, engrain

# The seed plan (issue 14): seven categories, 2,525 examples; semantic navigation is part of tool use (seed 000).
SEED_CATEGORIES = ["tool-use", "skills-workflows", "agentic-planning", "craftsmanship", "collaboration",
                   "problem-solving", "code-review"]
SEED_TOTAL = 2525


def test_init_writes_the_default_plan_and_is_idempotent(tmp_path, cli):
    root = tmp_path / "project"
    first = cli("init", root)
    assert first.exit_code == 0
    config = tomllib.loads((root / "engrain.toml").read_text())
    assert [c["name"] for c in config["plan"]["categories"]] == SEED_CATEGORIES
    assert all(c["quota"] > 0 and c["description"] and c["guidance"] for c in config["plan"]["categories"])
    assert sum(c["quota"] for c in config["plan"]["categories"]) == SEED_TOTAL
    assert "rules" not in config
    assert (root / ".engrain" / "engrain.db").exists()

    (root / "engrain.toml").write_text((root / "engrain.toml").read_text().replace("quota = 600", "quota = 7"))
    again = cli("init", root)
    assert "already an engrain workspace" in again.stdout
    assert "quota = 7" in (root / "engrain.toml").read_text()

    forced = cli("init", root, "--force")
    assert "wrote" in forced.stdout and "quota = 600" in (root / "engrain.toml").read_text()


def test_init_from_the_quickstart_template_keeps_its_plan_and_rules(tmp_path, cli):
    result = cli("init", tmp_path / "qs", "--template", "quickstart")
    assert result.exit_code == 0
    ws = datagen.find_workspace(tmp_path / "qs")
    template = datagen.load_workspace(QUICKSTART)
    assert ws.config.categories == template.config.categories
    assert ws.config.rules == template.config.rules and ws.config.rules


def test_extra_toml_sections_are_appended_once(tmp_path):
    fragment = "# training settings\n[training]\nbase = \"smollm2-135m\"\n"
    datagen.init_workspace(tmp_path / "a", extra_toml=[fragment])
    assert datagen.find_workspace(tmp_path / "a").raw["training"] == {"base": "smollm2-135m"}
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "engrain.toml").write_text("[training]\nbase = \"mine\"\n")
    datagen.init_workspace(tmp_path / "b", template=tmp_path / "tpl", extra_toml=[fragment])
    assert datagen.find_workspace(tmp_path / "b").raw["training"] == {"base": "mine"}


def test_workspace_is_found_upward_from_the_cwd_or_from_the_environment(ws, tmp_path, monkeypatch):
    nested = ws.root / "src" / "pkg"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    monkeypatch.delenv("ENGRAIN_WORKSPACE", raising=False)
    assert datagen.find_workspace().root == ws.root
    monkeypatch.chdir(tmp_path)
    with pytest.raises(datagen.WorkspaceNotFound, match="engrain init"):
        datagen.find_workspace()
    monkeypatch.setenv("ENGRAIN_WORKSPACE", str(ws.root))
    assert datagen.find_workspace().root == ws.root
    result = engrain("coverage", "--json", cwd=tmp_path, env={**os.environ, "ENGRAIN_WORKSPACE": str(ws.root)})
    assert result.returncode == 0 and '"tool-use"' in result.stdout


SOURCE = """# Project guide

Intro paragraph.

## Testing

Run the tests before saying done.

```bash
# not a heading: inside a code fence
pytest -q
```

## Style

### Files

Keep files under 300 lines.
"""


def test_knowledge_add_list_and_re_add_a_changed_file(ws, cli):
    (ws.root / "docs").mkdir()
    guide = ws.root / "docs" / "CLAUDE.md"
    guide.write_text(SOURCE)

    added = cli("knowledge", "add", ws.root / "docs", "-w", ws.root)
    assert "3 chunks from 1 files" in added.stdout
    chunks = datagen.list_knowledge(ws)
    assert [(c.heading, c.line_start, c.line_end) for c in chunks] == [
        ("Project guide", 1, 4), ("Project guide > Testing", 5, 13), ("Project guide > Style > Files", 16, 18)]
    assert {c.source for c in chunks} == {"docs/CLAUDE.md"}
    assert "not a heading" in chunks[1].text

    datagen.build_brief(ws, chunks[0].categories[0], 1)  # hands out its category's chunks: their use counts go up
    guide.write_text(SOURCE.replace("Keep files under 300 lines.", "Keep files under 200 lines."))
    datagen.add_knowledge(ws, [guide])
    after = datagen.list_knowledge(ws)
    assert len(after) == 3 and "200 lines" in after[2].text and "300 lines" not in after[2].text
    assert after[0].id == chunks[0].id and after[0].uses == 1  # unchanged sections keep id and use count
    assert after[2].id != chunks[2].id and after[2].uses == 0
    listed = cli("knowledge", "list", "-w", ws.root)
    assert after[2].id in listed.stdout


def test_briefs_hand_out_least_used_knowledge_first(ws):
    (ws.root / "notes.md").write_text("\n\n".join(f"# Note {i}\n\nBody {i}." for i in range(9)))
    datagen.add_knowledge(ws, [ws.root / "notes.md"])
    for chunk in datagen.list_knowledge(ws):  # briefs draw only from their category's chunks
        datagen.tag_knowledge(ws, chunk.id, "collaboration")

    first = datagen.build_brief(ws, "collaboration", 5)
    second = datagen.build_brief(ws, "collaboration", 5)

    assert len(first.knowledge) == 6
    assert not {c.id for c in first.knowledge[:3]} & {c.id for c in second.knowledge[:3]}
    handed_out = {c.id for c in first.knowledge} | {c.id for c in second.knowledge}
    assert handed_out == {c.id for c in datagen.list_knowledge(ws)}


def test_brief_carries_plan_rules_sample_tools_avoid_and_remaining(tmp_path):
    rule = '[[rules]]\nname = "say-why"\nkind = "regex_must"\npattern = "because"\ncategories = ["code-review"]\n'
    datagen.init_workspace(tmp_path / "w", extra_toml=[rule])
    ws = datagen.find_workspace(tmp_path / "w")
    datagen.submit(ws, [chat("Review `x = x + 1` in a hot loop.", "Fine, because it is clear.", "code-review")])

    brief = datagen.build_brief(ws, "code-review", 3)

    assert brief.category == "code-review" and brief.guidance and brief.description
    assert [r.name for r in brief.rules] == ["say-why"]
    assert brief.remaining == 249 and brief.count == 3
    assert brief.avoid == ["Review `x = x + 1` in a hot loop."]
    assert brief.sample["category"] == "code-review"
    assert {"Grep", "Read", "Edit", "Bash"} <= {t["function"]["name"] for t in brief.tools}
    with pytest.raises(datagen.UnknownCategory, match="choose one of"):
        datagen.build_brief(ws, "poetry", 1)
