"""The mlx backend: mlx-lm's LoRA trainer (`mlx_lm.lora.run`) in a subprocess (see mlx_worker.py).

A subprocess keeps mlx and torch out of one process. Its data is
datagen's "mlx" export, which already splits trajectories into one example per assistant turn (mlx-lm's
--mask-prompt trains only the last message). The adapter is converted to PEFT's layout afterwards so
curriculum, packaging and the LoRA GGUF work the same as for the other backends.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from training import loop
from training.backends.job import StageJob, StageOutput
from training.base import prepared_base
from training.data import read_jsonl
from training.errors import RunFailed, TrainingError

_MODULE_PATHS = {"q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj",
                 "o_proj": "self_attn.o_proj", "gate_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj",
                 "down_proj": "mlp.down_proj"}


DATA_FORMAT = "mlx"
start = prepared_base


def train_stage(job: StageJob, on_step: loop.Progress | None = None) -> StageOutput:
    try:
        import mlx_lm  # noqa: F401  (only to fail early with a clear message)
    except ImportError as exc:
        raise TrainingError(f"the mlx backend needs mlx-lm: pip install 'engrain[mlx]' ({exc})") from exc
    c = job.config
    train_rows = read_jsonl(job.data_dir / "train.jsonl")
    valid = job.data_dir / "valid.jsonl"
    if not valid.is_file():
        # mlx-lm refuses to train without a validation set; one training example stands in.
        valid.write_text(json.dumps(train_rows[0]) + "\n", encoding="utf-8")
    batch = min(job.batch_size, len(train_rows))
    total = job.max_steps or loop.steps_for(len(train_rows), batch, job.grad_accum, job.epochs)
    work = job.out_dir / "mlx"
    work.mkdir(parents=True, exist_ok=True)
    done, resume = _last_checkpoint(work)
    if job.init_adapter is not None and resume is None:
        resume = _to_mlx(Path(job.init_adapter), work / "init_adapters.safetensors")
    settings = {
        "model": job.base, "train": True, "data": str(job.data_dir), "adapter_path": str(work),
        "fine_tune_type": "lora", "num_layers": -1, "batch_size": batch, "iters": total - done,
        "learning_rate": job.learning_rate, "mask_prompt": c.assistant_only_loss, "max_seq_length": c.max_seq_len,
        "steps_per_report": 1, "steps_per_eval": total + 1, "val_batches": 1, "save_every": c.save_every,
        "seed": c.seed, "grad_accumulation_steps": job.grad_accum,
        "lora_parameters": {"rank": c.lora_r, "scale": c.lora_alpha / c.lora_r, "dropout": c.lora_dropout,
                            "keys": [_MODULE_PATHS.get(m, m) for m in c.target_modules]},
    }
    if resume is not None:
        settings["resume_adapter_file"] = str(resume)
    config = work / "lora.json"
    config.write_text(json.dumps(settings), encoding="utf-8")
    losses = _run([sys.executable, "-m", "training.backends.mlx_worker", str(config)], work / "mlx.log", done,
                  total, on_step)
    adapter = _to_peft(work / "adapters.safetensors", job)
    return StageOutput(adapter=adapter, examples=len(train_rows), steps=total, losses=losses[0],
                       tokens_per_s=losses[1], artifacts={f"adapter:{job.name}": str(adapter)},
                       started_from=job.init_adapter)


def _run(cmd: list[str], log: Path, offset: int, total: int, on_step) -> tuple[list[float], float]:
    losses, tps = [], 0.0
    with log.open("a", encoding="utf-8") as out, subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        for line in proc.stdout:
            out.write(line)
            if line.startswith("ENGRAIN "):
                info = json.loads(line.removeprefix("ENGRAIN "))
                losses.append(float(info["train_loss"]))
                tps = float(info["tokens_per_second"])
                if on_step:
                    on_step(offset + int(info["iteration"]), total, losses[-1], tps)
    if proc.returncode:
        tail = "".join(log.read_text(encoding="utf-8").splitlines(keepends=True)[-15:])
        raise RunFailed(f"mlx-lm training failed (exit {proc.returncode}); last lines of {log}:\n{tail}")
    return losses, tps


def _last_checkpoint(work: Path) -> tuple[int, Path | None]:
    """(iterations done, adapter file) of the newest `NNNNNNN_adapters.safetensors` mlx-lm saved."""
    saved = sorted(work.glob("[0-9]*_adapters.safetensors"))
    return (int(saved[-1].name.split("_")[0]), saved[-1]) if saved else (0, None)


def _peft_key(mlx_key: str) -> str:
    # model.layers.0.self_attn.q_proj.lora_a -> base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight
    module, kind = mlx_key.rsplit(".", 1)
    return f"base_model.model.{module}.lora_{kind[-1].upper()}.weight"


def _to_peft(mlx_file: Path, job: StageJob) -> Path:
    """mlx-lm stores lora_a as (in, r) and lora_b as (r, out) with a scale; PEFT wants transposes and alpha."""
    import mlx.core as mx
    import numpy as np
    from safetensors.numpy import save_file

    c = job.config
    weights = {_peft_key(k): np.ascontiguousarray(np.array(v.astype(mx.float32)).T)
               for k, v in mx.load(str(mlx_file)).items()}
    tmp = job.out_dir / "adapter.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(tmp / "adapter_model.safetensors"))
    (tmp / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": c.lora_r, "lora_alpha": c.lora_alpha,
        "lora_dropout": c.lora_dropout, "target_modules": c.target_modules, "bias": "none",
        "base_model_name_or_path": job.base, "fan_in_fan_out": False, "inference_mode": True}),
        encoding="utf-8")
    tmp.rename(job.adapter_dir)
    return job.adapter_dir


def _to_mlx(peft_dir: Path, out: Path) -> Path:
    import mlx.core as mx
    from safetensors.numpy import load_file

    weights = {}
    for key, value in load_file(str(peft_dir / "adapter_model.safetensors")).items():
        module = key.removeprefix("base_model.model.").rsplit(".lora_", 1)
        weights[f"{module[0]}.lora_{module[1][0].lower()}"] = mx.array(value.T.copy())
    mx.save_safetensors(str(out), weights)
    return out
