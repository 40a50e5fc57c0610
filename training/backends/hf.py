"""The hf backend: transformers + peft with our own loop (see training/loop.py for why not TRL on CPU)."""
from __future__ import annotations

from pathlib import Path

from training import distributed, loop
from training.backends import local
from training.backends.job import StageJob, StageOutput
from training.base import prepared_base


def cpu_has_bf16() -> bool:
    """bfloat16 on a CPU pays only where it has bf16 instructions (measured on a 2-core avx512_bf16 EPYC,
    SmolLM2-135M LoRA fwd+bwd: 115 tok/s float32, 170 tok/s bfloat16); elsewhere torch emulates it slowly.
    PEFT keeps the adapter weights themselves in float32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


DATA_FORMAT = "openai"
start = prepared_base


def train_stage(job: StageJob, on_step: loop.Progress | None = None) -> StageOutput:
    return local.fit_in_memory(_train, job, on_step)


def _train(job: StageJob, on_step: loop.Progress | None) -> StageOutput:
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loop.set_threads()
    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if (torch.cuda.is_bf16_supported() if cuda else cpu_has_bf16()) else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(job.base)
    model = AutoModelForCausalLM.from_pretrained(job.base, dtype=dtype, attn_implementation="sdpa")
    device = distributed.device(distributed.world())
    sharded = distributed.world().size > 1 and job.config.parallel == "fsdp"
    # The same seed gives the same LoRA initialisation in every process and every run.
    torch.manual_seed(job.config.seed)
    # fsdp moves each rank's shard to the GPU itself: the whole model need not fit on one.
    model = get_peft_model(model if sharded else model.to(device), local.lora_config(job))
    local.load_init_adapter(model, job)
    return local.train(model, tokenizer, job, device=device, on_step=on_step)
