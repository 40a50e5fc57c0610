"""The unsloth backend: Unsloth's patched model and LoRA (CUDA, or its CPU fallback), trained by our loop so
curriculum, resume and progress behave the same as the hf backend."""
from __future__ import annotations

from training import loop
from training.backends import local
from training.backends.job import StageJob, StageOutput
from training.base import prepared_base
from training.errors import TrainingError


DATA_FORMAT = "openai"
start = prepared_base


def train_stage(job: StageJob, on_step: loop.Progress | None = None) -> StageOutput:
    return local.fit_in_memory(_train, job, on_step)


def _train(job: StageJob, on_step: loop.Progress | None) -> StageOutput:
    try:
        from unsloth import FastLanguageModel  # must be imported before transformers/peft touch the model
    except ImportError as exc:
        raise TrainingError(f"the unsloth backend needs Unsloth: pip install 'engrain[unsloth]' ({exc})") from exc
    import torch

    loop.set_threads()
    c = job.config
    cuda = torch.cuda.is_available()
    # Unsloth's CPU fallback picks bfloat16 when the CPU reports it; float32 is faster without AMX (loop.py).
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=job.base, max_seq_length=c.max_seq_len, dtype=None if cuda else torch.float32,
        load_in_4bit=False, local_files_only=True)
    model = FastLanguageModel.get_peft_model(
        model, r=c.lora_r, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout,
        target_modules=c.target_modules, bias="none", use_gradient_checkpointing=False, random_state=c.seed)
    local.load_init_adapter(model, job)
    device = "cuda" if cuda else "cpu"
    return local.train(model, tokenizer, job, device=device, on_step=on_step)
