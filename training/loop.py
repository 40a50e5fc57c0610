"""The LoRA training loop shared by the hf and unsloth backends: packed batches, assistant-only loss,
checkpoints to resume from, progress callbacks.

Why not TRL's SFTTrainer on CPU (bench/training.py, SmolLM2-135M, 2 cores: TRL 1.16 116 tokens/s, this loop
203, Unsloth 154; TRL on older setups measured 5-10): its defaults
are made for GPUs. It trains in bfloat16 (bf16=True by default), which CPUs without bf16 instructions emulate
slowly (hf.py uses bfloat16 only on CPUs with avx512_bf16/AMX, float32 elsewhere);
it turns on gradient checkpointing (every forward runs twice); without packing each batch is padded to its
longest example, so compute goes to pad tokens; and it projects every position through the 49k-token
lm_head although only assistant tokens carry loss. This loop keeps float32 on CPU, no checkpointing for
small models, packs examples, computes logits only at trained positions, and sizes torch's thread pool to
the cores this process may actually use (torch counts the machine's cores, not the container's share, and
oversubscribed threads stall on each other).
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from training.data import IGNORE, Row, batches, collate


@dataclass
class LoopSettings:
    learning_rate: float
    batch_size: int
    grad_accum: int
    total_steps: int
    seed: int
    save_every: int
    warmup_ratio: float = 0.05


@dataclass
class LoopResult:
    steps: int
    losses: list[float] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


Progress = Callable[[int, int, float, float], None]   # step, total_steps, loss, tokens/s


def set_threads() -> None:
    import torch

    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))


def steps_for(rows: int, batch_size: int, grad_accum: int, epochs: float) -> int:
    return max(1, math.ceil(epochs * math.ceil(rows / batch_size) / grad_accum))


def masked_loss(model, batch) -> "torch.Tensor":
    """Mean cross-entropy over trained positions, projecting only those hidden states through lm_head."""
    import torch
    import torch.nn.functional as F

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = inner.model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).last_hidden_state
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    logits = inner.get_output_embeddings()(hidden[:, :-1][keep])
    return F.cross_entropy(logits.float(), targets[keep], reduction="sum") / keep.sum().clamp(min=1)


def run(model, rows: list[Row], settings: LoopSettings, checkpoint_dir: Path, *, pad_id: int,
        device: str, on_step: Progress | None = None) -> LoopResult:
    """Train `model` (a PEFT model) for settings.total_steps optimizer steps, resuming from checkpoint_dir."""
    import torch
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    from transformers import get_cosine_schedule_with_warmup

    torch.manual_seed(settings.seed)
    random.seed(settings.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, math.ceil(settings.warmup_ratio * settings.total_steps), settings.total_steps)
    result, step = LoopResult(steps=settings.total_steps), 0
    state_file = checkpoint_dir / "state.pt"
    if state_file.is_file():
        state = torch.load(state_file, weights_only=False)
        set_peft_model_state_dict(model, state["adapter"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, result.losses, result.tokens = state["step"], state["losses"], state["tokens"]
        result.seconds = state["seconds"]
    model.train()
    micro = _micro_batches(rows, settings)
    for _ in range(step * settings.grad_accum):
        next(micro)
    started = time.perf_counter() - result.seconds
    for step in range(step, settings.total_steps):
        total = 0.0
        for _ in range(settings.grad_accum):
            batch = collate(next(micro), pad_id)
            tensors = {k: v.to(device) for k, v in batch.items() if k != "tokens"}
            loss = masked_loss(model, tensors) / settings.grad_accum
            loss.backward()
            total += loss.item()
            result.tokens += batch["tokens"]
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        result.losses.append(total)
        result.seconds = time.perf_counter() - started
        if on_step:
            on_step(step + 1, settings.total_steps, total, result.tokens_per_s)
        if (step + 1) % settings.save_every == 0 and step + 1 < settings.total_steps:
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
            tmp = checkpoint_dir / "state.pt.tmp"
            torch.save({"adapter": get_peft_model_state_dict(model), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "step": step + 1, "losses": result.losses,
                        "tokens": result.tokens, "seconds": result.seconds}, tmp)
            os.replace(tmp, state_file)
    return result


def _micro_batches(rows: list[Row], settings: LoopSettings):
    """Endless micro-batches, reshuffled each epoch (deterministic from the seed, so a resumed run sees the
    same order)."""
    epoch = 0
    while True:
        yield from batches(rows, settings.batch_size, settings.seed, epoch)
        epoch += 1
