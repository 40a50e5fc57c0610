"""training — LoRA fine-tuning (hf, unsloth, mlx, hosted), curriculum, GGUF/Modelfile/Ollama packaging,
and the run registry. This module is the package's public surface; everything else is private."""
from __future__ import annotations

from training.config import TOML_TEMPLATE, StageConfig, TrainingConfig, TrainingConfigError
from training.detached import start_training
from training.package import package
from training.registry import (RunNotFound, RunRecord, RunStatus, StageResult, get_run, list_runs, record_eval,
                               run_status)
from training.runner import interrupt_on_sigterm, launch, main_process, train

__all__ = [
    "TOML_TEMPLATE", "RunNotFound", "RunRecord", "RunStatus", "StageConfig", "StageResult", "TrainingConfig",
    "TrainingConfigError", "get_run", "interrupt_on_sigterm", "launch", "list_runs", "main_process", "package",
    "record_eval", "run_status", "start_training", "train",
]
