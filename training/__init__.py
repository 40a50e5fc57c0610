"""training — LoRA fine-tuning (hf, unsloth, mlx, hosted), curriculum, GGUF/Modelfile/Ollama packaging,
and the run registry. This module is the package's public surface; everything else is private."""
from __future__ import annotations

from importlib import import_module

from training.config import TOML_TEMPLATE, StageConfig, TrainingConfig, TrainingConfigError
from training.detached import start_training
from training.errors import RunFailed, TrainingError, TrainingInputError
from training.package import package
from training.registry import (RunNotFound, RunRecord, RunStatus, StageResult, get_run, list_runs, record_eval,
                               run_status)
from training.runner import interrupt_on_sigterm, launch, main_process, train

_LAZY = {  # the behaviour eval (public name -> module, its name there): loaded on first use, it imports the router
    "evaluate": ("eval", "evaluate"), "load_prompts": ("eval", "load_prompts"),
    "write_eval_report": ("eval", "write_report"), "find_deployment": ("judging", "find_deployment"),
    "router_judge": ("judging", "router_judge"), "eval_cell": ("eval_report", "cell"),
    "headline_sentence": ("eval_report", "headline_sentence"),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'training' has no attribute {name!r}")
    module, attr = _LAZY[name]
    return getattr(import_module(f"training.{module}"), attr)


__all__ = [
    "TOML_TEMPLATE", "RunFailed", "RunNotFound", "RunRecord", "RunStatus", "StageConfig", "StageResult",
    "TrainingConfig", "TrainingConfigError", "TrainingError", "TrainingInputError", "get_run", "interrupt_on_sigterm", "launch",
    "list_runs", "main_process", "package", "record_eval", "run_status", "start_training", "train", *_LAZY,
]
