"""Acceptance 1: each local backend trains the tiny model a few steps and the loss falls; a curriculum's second
stage starts from the first stage's adapter; an interrupted run resumes from its checkpoint."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engrain.cli import app

# One small category without tools, all of it in every batch: the loss on a random tiny model falls clearly.
TINY = """[training]
base = "{base}"
learning_rate = 2e-2
lora_r = 8
lora_alpha = 32
batch_size = 6
max_seq_len = 384
save_every = 3
{stages}
"""
ONE_STAGE = '[[training.stages]]\nname = "collab"\ncategories = ["collaboration"]\n'


def tiny_toml(tiny_model, stages: str = ONE_STAGE) -> str:
    return TINY.format(base=tiny_model, stages=stages)


def adapter_weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


@pytest.mark.parametrize("backend", ["hf", "unsloth", "mlx"])
def test_backend_trains_and_loss_falls(backend, tiny_model, workspace):
    ws = workspace(tiny_toml(tiny_model))
    result = CliRunner().invoke(app, ["train", "--backend", backend, "--max-steps", "10",
                                      "--workspace", str(ws.root)])
    assert result.exit_code == 0, result.output
    run_id = result.output.strip().splitlines()[-1]

    import training

    record = training.get_run(ws, run_id)
    assert record.state == "done" and record.backend == backend
    assert len(record.losses) == 10 and record.metrics["final_loss"] < 0.95 * record.metrics["first_loss"]
    assert record.dataset_hash and record.config["lora_r"] == 8
    assert (ws.state_dir / "runs" / run_id / "loss.png").stat().st_size > 1000
    weights = adapter_weights(ws.state_dir / "runs" / run_id / "stages" / "collab" / "adapter")
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in weights.items())


def test_long_examples_are_cut_after_a_whole_assistant_turn_and_the_run_says_so(tiny_model, workspace):
    import training

    stage = '[[training.stages]]\nname = "tools"\ncategories = ["tool-use"]\n'
    ws = workspace(tiny_toml(tiny_model, stage).replace("max_seq_len = 384", "max_seq_len = 640"))
    result = CliRunner().invoke(app, ["train", "--backend", "hf", "--max-steps", "1", "--workspace", str(ws.root)])
    assert result.exit_code == 0, result.output
    record = training.get_run(ws, result.output.strip().splitlines()[-1])
    assert [w for w in record.warnings if "longer than max_seq_len=640 tokens were cut after their last assistant "
            "turn that fits" in w], record.warnings
    assert not [w for w in record.warnings if "mid-turn" in w]


def test_curriculum_second_stage_starts_from_first(tiny_model, workspace):
    import training

    stages = ONE_STAGE + ('[[training.stages]]\nname = "review"\ncategories = ["code-review"]\n'
                          "learning_rate = 1e-12\n")
    ws = workspace(tiny_toml(tiny_model, stages))
    record = training.train(ws, backend="hf", max_steps=3)
    first, second = record.stages
    assert second.started_from == first.adapter
    # A vanishing learning rate leaves the second adapter where the first one ended (lora_B is not zero).
    a, b = adapter_weights(Path(first.adapter)), adapter_weights(Path(second.adapter))
    assert a.keys() == b.keys()
    assert all((a[k] - b[k]).abs().max() < 1e-6 for k in a)
    assert any(v.abs().sum() > 0 for k, v in a.items() if "lora_B" in k)
    assert record.artifacts["adapter"] == second.adapter


def test_resume_after_crash_continues_from_checkpoint(tiny_model, workspace):
    import training
    from training import registry

    ws = workspace(tiny_toml(tiny_model))
    calls = []

    def crash_at_step_4(status):
        calls.append(status.step)
        if status.step == 4:
            raise KeyboardInterrupt("simulated crash")

    with pytest.raises(KeyboardInterrupt):
        training.train(ws, backend="hf", max_steps=6, on_progress=crash_at_step_4)
    run_id = training.list_runs(ws)[0].id
    assert training.run_status(ws, run_id).state == "failed"
    assert (registry.run_dir(ws, run_id) / "stages" / "collab" / "checkpoint" / "state.pt").is_file()

    resumed = []
    record = training.train(ws, run_id=run_id, on_progress=lambda s: resumed.append(s.step))
    assert record.state == "done"
    assert resumed == [4, 5, 6]          # the checkpoint was written after step 3
    assert len(record.losses) == 6


def test_models_lists_and_shows_runs(tiny_model, workspace):
    import training

    ws = workspace(tiny_toml(tiny_model))
    record = training.train(ws, backend="hf", max_steps=2)
    runner = CliRunner()
    listed = runner.invoke(app, ["models", "--json", "--workspace", str(ws.root)])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert row["id"] == record.id and row["backend"] == "hf" and row["artifacts"]["adapter"]
    table = runner.invoke(app, ["models", "--workspace", str(ws.root)])
    assert record.id in table.output
    shown = runner.invoke(app, ["models", "show", record.id, "--workspace", str(ws.root)])
    assert json.loads(shown.output)["dataset_hash"] == record.dataset_hash
    missing = runner.invoke(app, ["models", "show", "nope", "--workspace", str(ws.root)])
    assert missing.exit_code == 2 and "no training run 'nope'" in missing.output


def test_no_examples_is_a_clear_error(tiny_model, workspace):
    ws = workspace(tiny_toml(tiny_model, '[[training.stages]]\nname = "x"\ncategories = ["no-such-category"]\n'))
    result = CliRunner().invoke(app, ["train", "--backend", "hf", "--workspace", str(ws.root)])
    assert result.exit_code == 1
    assert "no approved examples" in result.output


def test_start_training_runs_detached_and_run_status_follows(tiny_model, workspace):
    import time

    import training

    ws = workspace(tiny_toml(tiny_model))
    run_id = training.start_training(ws, backend="hf", max_steps=2)
    assert training.run_status(ws, run_id).state in ("queued", "running")
    deadline = time.monotonic() + 600
    while (status := training.run_status(ws, run_id)).state in ("queued", "running"):
        assert time.monotonic() < deadline, status
        time.sleep(1)
    assert status.state == "done", status.error
    assert status.step == status.total_steps == 2 and status.stage == "collab"
    assert Path(status.artifacts["adapter"]).is_dir()
    assert (ws.state_dir / "runs" / run_id / "train.log").read_text().strip().endswith(f"run {run_id} done")


def test_continued_fine_tuning_starts_from_an_earlier_run_with_lower_lr(tiny_model, workspace):
    import training

    ws = workspace(tiny_toml(tiny_model).replace("[training]\n", "[training]\ncontinue_learning_rate = 1e-3\n"))
    first = training.train(ws, backend="hf", max_steps=2)
    second = training.train(ws, backend="hf", base=first.id, max_steps=2)
    assert second.base == first.id
    assert Path(second.base_path) == ws.state_dir / "runs" / first.id / "merged-hf"
    assert second.stages[0].learning_rate == 1e-3
