"""Acceptance 1: each local backend trains the tiny model a few steps and the loss falls; curriculum stages
start from the previous stage's adapter; a crashed run resumes from its checkpoint."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from engrain.cli import app

TINY = """[training]
base = "{base}"
learning_rate = 3e-3
lora_r = 8
lora_alpha = 16
batch_size = 2
max_seq_len = 512
save_every = 4
{extra}
"""


def _toml(tiny_model, extra: str = "") -> str:
    return TINY.format(base=tiny_model, extra=extra)


def _losses_fell(record) -> bool:
    losses = record.losses
    q = max(1, len(losses) // 4)
    return sum(losses[-q:]) / q < 0.9 * sum(losses[:q]) / q


@pytest.mark.parametrize("backend", ["hf", "unsloth", "mlx"])
def test_backend_trains_and_loss_falls(backend, tiny_model, workspace):
    import training

    ws = workspace(_toml(tiny_model))
    record = training.train(ws, backend=backend, max_steps=12)
    assert record.state == "done" and record.backend == backend
    assert len(record.losses) == 12
    assert _losses_fell(record), record.losses
    assert (ws.state_dir / "runs" / record.id / "loss.png").stat().st_size > 1000
    assert (ws.state_dir / "runs" / record.id / "stages" / "all" / "adapter" / "adapter_model.safetensors").is_file()
