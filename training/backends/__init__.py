"""Training backends by name. Each module trains one curriculum stage, `train_stage(job, on_step) -> StageOutput`,
on data exported in its DATA_FORMAT, from the base its `start(ws, cfg)` gives (a prepared folder, or a provider's
model)."""
from __future__ import annotations

from importlib import import_module
from types import ModuleType


def load(name: str) -> ModuleType:
    """The backend module for a configured name (hf, unsloth, mlx, hosted: [training] backend validates it)."""
    return import_module(f"training.backends.{name}")
