"""Merging a run's LoRA adapter into its base: the HF folder that GGUF conversion and continued
fine-tuning start from."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from training import registry
from training.base import save_tokenizer
from training.chat import CHAT_TEMPLATE
from training.errors import TrainingError
from training.registry import RunRecord


def merged_folder(ws, record: RunRecord) -> Path:
    """run_dir/merged-hf (float32 safetensors + tokenizer with our chat template), built once."""
    out = registry.run_dir(ws, record.id) / "merged-hf"
    if (out / "config.json").is_file():
        return out
    if record.state != "done" or "adapter" not in record.artifacts:
        raise TrainingError(f"run {record.id} has no finished local adapter to merge (state {record.state}, "
                         f"backend {record.backend})")
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(record.base_path, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, record.artifacts["adapter"]).merge_and_unload()
    tmp = out.with_name(f"merged-hf.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    save_tokenizer(AutoTokenizer.from_pretrained(record.base_path), tmp, chat_template=CHAT_TEMPLATE)
    os.replace(tmp, out)
    return out
