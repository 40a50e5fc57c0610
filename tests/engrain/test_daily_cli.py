"""Issue 14, points 7 and 8: the CLI as a daily user meets it — subagents that follow the plan, one workspace option
and env var everywhere, paths resolved against the workspace, markup-safe help and errors, a readable
`review --show`, engrain's own ETA, no library progress bars in logs, one-line config errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import datagen
from engrain.cli import app

ENGRAIN = str(Path(sys.executable).with_name("engrain"))


def _cli(*args: object, env: dict | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "project"
    assert _cli("init", root).exit_code == 0
    return root


def _agents(root: Path) -> set[str]:
    return {p.name for p in (root / ".claude" / "agents").glob("*.md")}


def test_init_claude_keeps_subagents_in_step_with_the_plan(project):
    assert _cli("init", project, "--claude").exit_code == 0
    assert "engrain-gen-code-review.md" in _agents(project)
    mine = project / ".claude" / "agents" / "my-reviewer.md"
    mine.write_text("a subagent the user wrote")
    edited = project / ".claude" / "agents" / "engrain-gen-collaboration.md"
    edited.write_text(edited.read_text() + "\nAlways ask about deadlines.\n")
    toml = (project / "engrain.toml").read_text()
    # The user edits the plan: code-review and collaboration go, tool-use's description changes.
    for name in ("code-review", "collaboration"):
        start = toml.index(f'[[plan.categories]]\nname = "{name}"')
        end = toml.find("[[plan.categories]]", start + 1)
        toml = toml[:start] + toml[end:] if end != -1 else toml[:start]
    toml = toml.replace("Calling the agent's tools well", "Using tools with care")
    (project / "engrain.toml").write_text(toml)

    again = _cli("init", project, "--claude")

    assert again.exit_code == 0, again.output
    agents = _agents(project)
    assert "engrain-gen-code-review.md" not in agents and "removed" in again.output
    assert mine.read_text() == "a subagent the user wrote"                # never the user's own file
    assert "Always ask about deadlines." in edited.read_text()           # nor one the user edited
    assert "you edited it" in again.output
    assert "Using tools with care" in (project / ".claude" / "agents" / "engrain-gen-tool-use.md").read_text()


def test_one_workspace_option_and_env_var_everywhere(project, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # not inside the workspace
    for args in (["models"], ["models", "--json"], ["coverage", "--json"], ["knowledge", "list"]):
        by_option = _cli(*args, "-w", project)
        by_env = _cli(*args, env={"ENGRAIN_WORKSPACE": str(project)})
        assert by_option.exit_code == by_env.exit_code == 0, (args, by_option.output, by_env.output)
    for command in ("train", "package", "models", "eval", "export", "import", "review", "generate"):
        help_text = _cli(*command.split(), "--help").output
        assert "--workspace" in help_text and "-w" in help_text and "ENGRAIN_WORKSPACE" in help_text, command


def test_export_out_is_relative_to_the_workspace_not_the_cwd(project, tmp_path, monkeypatch):
    ws = datagen.find_workspace(project)
    datagen.submit(ws, [{"messages": [{"role": "user", "content": "Rename `tmp` in the parser?"},
                                      {"role": "assistant", "content": "Yes: call it `pending_tokens`."}],
                         "category": "craftsmanship"}], status="approved")
    monkeypatch.chdir(tmp_path)

    result = _cli("export", "-f", "openai", "-o", "exports/openai", "-w", project)

    assert result.exit_code == 0, result.output
    assert (project / "exports" / "openai" / "train.jsonl").is_file()
    assert not (tmp_path / "exports").exists()


def test_help_and_errors_print_brackets_as_written(project):
    assert "[[training.stages]]" in _cli("train", "--help").output
    (project / "engrain.toml").write_text((project / "engrain.toml").read_text().replace(
        'name = "craftsmanship"', 'name = "Craft Work"'))

    result = _cli("coverage", "-w", project)

    assert result.exit_code == 2
    assert "^[a-z0-9][a-z0-9-]*$" in result.output  # the pattern, brackets and all


def test_a_bad_serve_config_is_one_line_per_problem(tmp_path):
    config = tmp_path / "router.toml"
    config.write_text('[router]\n[[router.models]]\nname = "x"\nprovider = "nope"\n')

    result = _cli("serve", "--config", config)

    assert result.exit_code == 2
    assert "models.0.provider: Input should be" in result.output
    assert "errors.pydantic.dev" not in result.output and "validation error" not in result.output


def test_review_show_reads_as_a_conversation(project):
    ws = datagen.find_workspace(project)
    example_id = datagen.submit(ws, [{"messages": [
        {"role": "user", "content": "Why is the cache key [tenant, day] not enough?"},
        {"role": "assistant", "content": "Two regions share a tenant id; add the region."}],
        "category": "problem-solving"}])[0].id
    datagen.review_example(ws, example_id, "approve", notes="good catch")

    shown = _cli("review", "--show", example_id, "-w", project)
    raw = _cli("review", "--show", example_id, "--json", "-w", project)

    assert shown.exit_code == 0, shown.output
    text = shown.output
    assert "cache key [tenant, day]" in text                      # markup-safe
    assert text.index("user") < text.index("assistant") < text.index("reviews")
    assert "human: decision approve  good catch" in text
    assert "created_at" not in text and '"messages"' not in text   # no raw JSON, no epoch floats
    assert json.loads(raw.output)["id"] == example_id


def test_the_training_eta_is_engrains_own_estimate():
    from engrain.cmd_train import clock

    assert [clock(None), clock(59.6), clock(3725)] == ["-", "0:01:00", "1:02:05"]


def test_no_library_progress_bars_when_output_is_not_a_terminal(project):
    (project / "NOTES.md").write_text("# Notes\n\nKeep functions short.\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("TQDM_DISABLE", None)

    done = subprocess.run([ENGRAIN, "knowledge", "add", "NOTES.md", "-w", str(project)], capture_output=True,
                          text=True, env=env, timeout=300)

    assert done.returncode == 0, done.stderr[-2000:]
    assert "\r" not in done.stderr and "Loading weights" not in done.stderr
