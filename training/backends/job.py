"""What a backend is asked to do for one stage, and what it hands back."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from training.config import TrainingConfig


@dataclass
class StageJob:
    name: str
    base: str                    # prepared HF folder (our chat template); hosted: the provider's model
    data_dir: Path               # train.jsonl [+ valid.jsonl], openai or mlx layout per backend
    out_dir: Path                # the stage folder: adapter/ and checkpoint/ go here
    config: TrainingConfig
    learning_rate: float
    max_steps: int | None
    epochs: float
    batch_size: int
    grad_accum: int
    init_adapter: str | None = None   # the previous stage's adapter folder; hosted: its fine-tuned model

    @property
    def adapter_dir(self) -> Path:
        return self.out_dir / "adapter"


@dataclass
class StageOutput:
    adapter: Path | str          # the adapter folder; hosted: the fine-tuned model's name
    examples: int
    steps: int
    losses: list[float] = field(default_factory=list)
    tokens_per_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)   # recorded in the run beside the stage
    started_from: str | None = None
    hosted_model: str | None = None   # a model the provider serves (the run's hosted_model)
