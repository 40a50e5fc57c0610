"""Issue 16: `engrain train --processes 2` runs the hf backend as two torch.distributed (gloo DDP) processes on
the CPU. Each takes half of every batch, so the effective batch and the loss curve stay the single-process ones;
rank 0 alone writes the run, and its adapter loads."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.training.test_train import adapter_weights, tiny_toml

# Every category: 15 sequences, batches of 6, 6 and 3 per epoch, so each process trains on 3, 3 and then 2 or 1.
ALL = '[[training.stages]]\nname = "all"\n'
STEPS = 6
# Relative difference allowed per step. Same data, same initial weights: the runs differ only in the order of
# floating-point sums (this CPU trains in bfloat16); measured here at most 6e-5. A process that trained on the
# whole batch instead of its share would double the loss, one that skipped its share would halve it.
TOLERANCE = 1e-3


def _train_two_processes(ws, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engrain", "train", "--backend", "hf", "--processes", "2",
                           "--max-steps", str(STEPS), "--workspace", str(ws.root), *extra],
                          capture_output=True, text=True, timeout=600)


def test_two_cpu_processes_follow_the_single_process_loss_curve(tiny_model, workspace):
    """DDP (the default) and FSDP (weights sharded across the processes) alike."""
    import training

    ws = workspace(tiny_toml(tiny_model, ALL))
    single = training.train(ws, backend="hf", max_steps=STEPS)
    runs = [single.id]
    for parallel in ("ddp", "fsdp"):
        toml = ws.root / "engrain.toml"
        toml.write_text(toml.read_text().replace("[training]\n", f'[training]\nparallel = "{parallel}"\n', 1))
        proc = _train_two_processes(ws)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        runs.append(proc.stdout.strip().splitlines()[-1])
        _check_against(ws, single, training.get_run(ws, runs[-1]), tiny_model)
        toml.write_text(toml.read_text().replace(f'parallel = "{parallel}"\n', ""))
    # Rank 0 alone wrote each run: one record per run, nothing half-written; the other rank wrote nothing.
    assert sorted(r.id for r in training.list_runs(ws)) == sorted(runs)


def _check_against(ws, single, multi, tiny_model) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    assert multi.state == "done" and multi.backend == "hf" and len(multi.losses) == STEPS
    assert multi.config["parallel"] in ("ddp", "fsdp")
    assert multi.losses[-1] < 0.95 * multi.losses[0]
    for step, (one, two) in enumerate(zip(single.losses, multi.losses), 1):
        assert abs(one - two) <= TOLERANCE * one, (multi.config["parallel"], step, single.losses, multi.losses)
    folder = ws.state_dir / "runs" / multi.id
    assert (folder / "loss.png").is_file()
    assert not list(folder.rglob("*.tmp"))
    # The whole adapter (gathered when sharded: same tensors and shapes as one process's), and it loads.
    # (Its weights are not compared: Adam turns the rounding noise of near-zero gradients into full steps.)
    adapter = Path(multi.artifacts["adapter"])
    a, b = adapter_weights(Path(single.artifacts["adapter"])), adapter_weights(adapter)
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model)), str(adapter))
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([[1, 2, 3]])).logits
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("toml_extra, backend, message", [
    ("batch_size = 1\n", "hf", "batch_size 1 is smaller than 2 processes"),
    ("", "mlx", "multi-process training runs the hf backend"),
])
def test_bad_multi_process_settings_are_refused_before_launch(toml_extra, backend, message, tiny_model, workspace):
    from typer.testing import CliRunner

    from engrain.cli import app

    ws = workspace(tiny_toml(tiny_model).replace("[training]\n", "[training]\n" + toml_extra).replace(
        "batch_size = 6\n", "" if toml_extra else "batch_size = 6\n"))
    result = CliRunner().invoke(app, ["train", "--backend", backend, "--processes", "2", "--workspace", str(ws.root)])
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.gpu
@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_gpu_processes_over_nccl(parallel, tiny_model, workspace):
    import torch

    import training

    if torch.cuda.device_count() < 2:
        pytest.skip("NCCL gives each process a GPU of its own: needs 2 GPUs")
    ws = workspace(tiny_toml(tiny_model, ALL).replace("[training]\n", f'[training]\nparallel = "{parallel}"\n'))
    single = training.train(ws, backend="hf", max_steps=STEPS)
    proc = _train_two_processes(ws)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    multi = training.get_run(ws, proc.stdout.strip().splitlines()[-1])
    # bfloat16 on the GPU: a looser bound than on the CPU
    assert all(abs(one - two) <= 0.02 * one for one, two in zip(single.losses, multi.losses)), (single.losses,
                                                                                               multi.losses)
    assert Path(multi.artifacts["adapter"]).is_dir()
