"""training — LoRA fine-tuning (hf, unsloth, mlx, hosted), curriculum, GGUF/Modelfile/Ollama packaging,
and the run registry. This module is the package's public surface; everything else is private."""
from __future__ import annotations

from training.config import TOML_TEMPLATE, StageConfig, TrainingConfig, TrainingConfigError
from training.detached import start_training
from training.package import package
from training.registry import RunNotFound, RunRecord, RunStatus, StageResult, get_run, list_runs, run_status
from training.runner import launch, main_process, train

__all__ = [
    "TOML_TEMPLATE", "RunNotFound", "RunRecord", "RunStatus", "StageConfig", "StageResult", "TrainingConfig",
    "TrainingConfigError", "get_run", "launch", "list_runs", "main_process", "package", "run_status",
    "start_training", "train",
]
