"""The [training] TOML fragment, config errors as the user sees them, and the repository's Modelfile."""
from __future__ import annotations

import tomllib
from pathlib import Path

from typer.testing import CliRunner

from engrain.cli import app

REPO = Path(__file__).resolve().parents[2]


def test_toml_template_is_valid_and_commented():
    from training import TOML_TEMPLATE, TrainingConfig

    parsed = tomllib.loads(TOML_TEMPLATE)
    config = TrainingConfig.model_validate(parsed["training"])
    assert config == TrainingConfig()          # the template documents the defaults, it does not change them
    assert TOML_TEMPLATE.count("#") > 10


def test_invalid_training_section_is_a_clear_cli_error(workspace):
    ws = workspace('[training]\nlora_r = 0\nbackend = "tpu"\n[[training.stages]]\nname = "a"\n'
                   '[[training.stages]]\nname = "a"\n')
    result = CliRunner().invoke(app, ["train", "--workspace", str(ws.root)])
    assert result.exit_code == 2
    assert "engrain.toml [training] is invalid" in result.output
    assert "lora_r" in result.output and "backend" in result.output


def test_unknown_stage_and_base_are_clear_errors(workspace):
    ws = workspace('[training]\nbase = "/no/such/model"\n[[training.stages]]\nname = "tools"\n')
    runner = CliRunner()
    stage = runner.invoke(app, ["train", "--stage", "nope", "--workspace", str(ws.root)])
    assert stage.exit_code == 2 and "no stage 'nope'" in stage.output and "tools" in stage.output
    base = runner.invoke(app, ["train", "--backend", "hf", "--workspace", str(ws.root)])
    assert base.exit_code == 2 and "never downloads models" in base.output


def test_repository_modelfile_matches_what_package_writes():
    from training.config import TrainingConfig
    from training.modelfile import render

    text = (REPO / "Modelfile").read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("# ")) + "\n"
    assert body == render("quickstart.q4_k_m.gguf", system=TrainingConfig().system)
