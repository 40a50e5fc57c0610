"""What the hf and unsloth backends share once each has loaded its model: LoRA, data, the loop, saving."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from training import distributed, loop
from training.backends.job import StageJob, StageOutput
from training.data import pack, read_jsonl, tokenize
from training.errors import NoTrainingData, TrainingError


def lora_config(job: StageJob):
    from peft import LoraConfig

    c = job.config
    return LoraConfig(r=c.lora_r, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout,
                      target_modules=c.target_modules, bias="none", task_type="CAUSAL_LM")


def load_init_adapter(model, job: StageJob) -> None:
    """Start from the previous stage's adapter (same rank and targets: same config)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    if job.init_adapter is not None:
        weights = load_file(str(Path(job.init_adapter) / "adapter_model.safetensors"))
        result = set_peft_model_state_dict(model, weights)
        if getattr(result, "unexpected_keys", None):
            raise TrainingError(f"adapter {job.init_adapter} does not fit this model: {result.unexpected_keys[:3]}")


def train(model, tokenizer, job: StageJob, *, device: str, on_step: loop.Progress | None) -> StageOutput:
    c = job.config
    records = read_jsonl(job.data_dir / "train.jsonl")
    rows, warnings = tokenize(tokenizer, records, max_seq_len=c.max_seq_len, assistant_only=c.assistant_only_loss)
    if not rows:
        raise NoTrainingData(f"stage {job.name}: none of the {len(records)} examples has assistant tokens to train on")
    if c.packing:
        rows = pack(rows, c.max_seq_len)
    total = job.max_steps or loop.steps_for(len(rows), job.batch_size, job.grad_accum, job.epochs)
    settings = loop.LoopSettings(learning_rate=job.learning_rate, batch_size=job.batch_size,
                                 grad_accum=job.grad_accum, total_steps=total, seed=c.seed,
                                 save_every=c.save_every, strategy=c.parallel)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    result = loop.run(model, rows, settings, job.out_dir / "checkpoint", pad_id=pad, device=device,
                      on_step=on_step)
    _save_adapter(model, job, c.parallel)
    return StageOutput(adapter=job.adapter_dir, examples=len(records), steps=total, losses=result.losses,
                       tokens_per_s=result.tokens_per_s, warnings=warnings, started_from=job.init_adapter,
                       artifacts={f"adapter:{job.name}": str(job.adapter_dir)})


def fit_in_memory(train: Callable[[StageJob, loop.Progress | None], StageOutput], job: StageJob,
                  on_step: loop.Progress | None) -> StageOutput:
    """CUDA out of memory: retry with half the batch and twice the accumulation (the same effective batch). Not in
    a multi-process run: the other ranks train the same stage, and a retry on one rank alone would leave them
    waiting."""
    import torch

    notes: list[str] = []
    while True:
        try:
            output = train(job, on_step)
        except torch.cuda.OutOfMemoryError:
            if job.batch_size == 1 or distributed.world().size > 1:
                raise
            torch.cuda.empty_cache()
            job.batch_size, job.grad_accum = job.batch_size // 2, job.grad_accum * 2
            notes.append(f"CUDA out of memory; retrying with batch size {job.batch_size} and gradient "
                         f"accumulation {job.grad_accum} (same effective batch)")
            print(f"stage {job.name}: {notes[-1]}", flush=True)
            continue
        output.warnings[:0] = notes
        return output


def _save_adapter(model, job: StageJob, strategy: str) -> None:
    """Rank 0 writes the adapter (gathered from every rank first when its weights are sharded)."""
    world = distributed.world()
    state = None
    if world.size > 1 and strategy == "fsdp":
        from training.parallel import adapter_state

        state = adapter_state(model)
    if not world.main:
        return
    tmp = job.out_dir / "adapter.tmp"
    model.save_pretrained(tmp, state_dict=state)
    tmp.rename(job.adapter_dir)
