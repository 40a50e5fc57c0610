"""The hf backend: transformers + peft with our own loop (see training/loop.py for why not TRL on CPU)."""
from __future__ import annotations

from training import loop
from training.backends import local
from training.backends.job import StageJob, StageOutput


def train_stage(job: StageJob, on_step: loop.Progress | None = None) -> StageOutput:
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loop.set_threads()
    cuda = torch.cuda.is_available()
    # float32 on CPU: bfloat16 matmuls are emulated (slow) on CPUs without AMX; bf16 where CUDA supports it.
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(str(job.base_dir))
    model = AutoModelForCausalLM.from_pretrained(str(job.base_dir), dtype=dtype, attn_implementation="sdpa")
    device = "cuda" if cuda else "cpu"
    model = get_peft_model(model.to(device), local.lora_config(job))
    local.load_init_adapter(model, job)
    return local.train(model, tokenizer, job, device=device, on_step=on_step)
