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

Several processes (torch.distributed, see training/distributed.py) split each micro-batch: every rank builds the
same sequence of micro-batches from the seed and takes every N-th sequence of each. Each rank's loss is
normalised by the whole micro-batch's trained tokens (known to every rank) and scaled by N, so DDP's averaged
gradient equals the single-process gradient and the effective batch (batch_size x grad_accum) is unchanged.
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from training import distributed
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
    strategy: str = "ddp"            # with several processes: ddp (replicas) or fsdp (sharded weights)


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

    torch.set_num_threads(distributed.threads())


def steps_for(rows: int, batch_size: int, grad_accum: int, epochs: float) -> int:
    return max(1, math.ceil(epochs * math.ceil(rows / batch_size) / grad_accum))


def trained_tokens(rows: list[Row]) -> int:
    """Positions that carry loss (a label is predicted from the token before it: the first never is)."""
    return sum(1 for r in rows for t in r.labels[1:] if t != IGNORE)


def masked_loss(model, batch, trained: int | None = None) -> "torch.Tensor":
    """Cross-entropy summed over trained positions and divided by `trained` (default: this batch's count),
    projecting only those hidden states through lm_head."""
    import torch
    import torch.nn.functional as F

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = inner.model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).last_hidden_state
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    logits = inner.get_output_embeddings()(hidden[:, :-1][keep])
    count = keep.sum().clamp(min=1) if trained is None else max(trained, 1)
    return F.cross_entropy(logits.float(), targets[keep], reduction="sum") / count


def run(model, rows: list[Row], settings: LoopSettings, checkpoint_dir: Path, *, pad_id: int,
        device: str, on_step: Progress | None = None) -> LoopResult:
    """Train `model` (a PEFT model) for settings.total_steps optimizer steps, resuming from checkpoint_dir.
    In a multi-process run every rank calls this; only rank 0 reports progress and writes checkpoints."""
    import torch
    from peft import set_peft_model_state_dict
    from transformers import get_cosine_schedule_with_warmup

    from training import parallel

    world = distributed.world()
    torch.manual_seed(settings.seed)
    random.seed(settings.seed)
    objective = parallel.wrap(model, world, device, settings.strategy)
    params = [p for p in objective.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, math.ceil(settings.warmup_ratio * settings.total_steps), settings.total_steps)
    result, step = LoopResult(steps=settings.total_steps), 0
    state_file = checkpoint_dir / "state.pt"
    # Sharded (fsdp) weights and optimizer state are not gathered for checkpoints: such a run restarts a stage.
    checkpoints = world.size == 1 or settings.strategy != "fsdp"
    if checkpoints and state_file.is_file():
        state = torch.load(state_file, weights_only=False)
        set_peft_model_state_dict(model, state["adapter"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, result.losses, result.tokens = state["step"], state["losses"], state["tokens"]
        result.seconds = state["seconds"]
    objective.train()
    micro = _micro_batches(rows, settings)
    for _ in range(step * settings.grad_accum):
        next(micro)
    started = time.perf_counter() - result.seconds
    for step in range(step, settings.total_steps):
        total = _accumulate(objective, micro, settings, world, pad_id, device, result)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        result.losses.append(total)
        result.seconds = time.perf_counter() - started
        if on_step and world.main:
            on_step(step + 1, settings.total_steps, total, result.tokens_per_s)
        if checkpoints and world.main and (step + 1) % settings.save_every == 0 and step + 1 < settings.total_steps:
            _checkpoint(model, optimizer, scheduler, step + 1, result, checkpoint_dir)
    return result


def _accumulate(objective, micro, settings: LoopSettings, world: distributed.World, pad_id: int, device: str,
                result: LoopResult) -> float:
    """Forward and backward over one optimizer step's micro-batches (this rank's share of each); returns the
    step's loss, the same number on every rank."""
    from training import parallel

    total = 0.0
    for i in range(settings.grad_accum):
        whole = next(micro)
        mine = whole[world.rank::world.size]
        # A rank whose share is empty (the short last batch of an epoch) still joins the all-reduce, with a
        # zero-weighted loss on a sequence it borrows.
        batch = collate(mine or whole[:1], pad_id)
        tensors = {k: v.to(device) for k, v in batch.items() if k != "tokens"}
        with parallel.no_sync(objective, last=i == settings.grad_accum - 1):
            loss = objective(**tensors, trained=trained_tokens(whole)) * (world.size if mine else 0.0)
            (loss / settings.grad_accum).backward()
        total += loss.item() / settings.grad_accum
        result.tokens += sum(len(r.input_ids) for r in whole)
    return distributed.sum_across(total) / world.size


def _checkpoint(model, optimizer, scheduler, step: int, result: LoopResult, checkpoint_dir: Path) -> None:
    import torch
    from peft import get_peft_model_state_dict

    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    tmp = checkpoint_dir / "state.pt.tmp"
    torch.save({"adapter": get_peft_model_state_dict(model), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "step": step, "losses": result.losses,
                "tokens": result.tokens, "seconds": result.seconds}, tmp)
    os.replace(tmp, checkpoint_dir / "state.pt")


def _micro_batches(rows: list[Row], settings: LoopSettings):
    """Endless micro-batches, reshuffled each epoch (deterministic from the seed, so a resumed run sees the
    same order)."""
    epoch = 0
    while True:
        yield from batches(rows, settings.batch_size, settings.seed, epoch)
        epoch += 1
