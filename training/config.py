"""The `[training]` and `[[training.stages]]` sections of engrain.toml, validated, with env overrides."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from training.errors import TrainingConfigError

Backend = Literal["auto", "unsloth", "mlx", "hf", "hosted"]


class StageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    categories: list[str] = []          # empty: every category
    max_steps: int | None = Field(default=None, gt=0)
    epochs: float | None = Field(default=None, gt=0)
    learning_rate: float | None = Field(default=None, gt=0)
    continue_learning_rate: float | None = Field(default=None, gt=0)   # when the base is an earlier run


class TrainingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base: str = "smollm2"
    backend: Backend = "auto"
    lora_r: int = Field(default=16, gt=0)
    lora_alpha: int = Field(default=32, gt=0)
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    learning_rate: float = Field(default=2e-4, gt=0)
    continue_learning_rate: float = Field(default=5e-5, gt=0)
    epochs: float = Field(default=2.0, gt=0)
    max_steps: int | None = Field(default=None, gt=0)
    batch_size: int = Field(default=4, gt=0)
    grad_accum: int = Field(default=1, gt=0)
    max_seq_len: int = Field(default=1024, ge=32)
    assistant_only_loss: bool = True
    packing: bool = True
    seed: int = 0
    save_every: int = Field(default=25, gt=0)
    parallel: Literal["ddp", "fsdp"] = "ddp"   # with --processes N: replicate the model, or shard it (fsdp)
    quant: str = "q4_k_m"
    system: str = "You are a careful coding agent."
    hosted_model: str = "gpt-4.1-mini-2025-04-14"
    hosted_poll_seconds: float = Field(default=10.0, gt=0)
    stages: list[StageConfig] = []

    @model_validator(mode="after")
    def _unique_stages(self) -> "TrainingConfig":
        names = [s.name for s in self.stages]
        if len(names) != len(set(names)):
            raise ValueError(f"[[training.stages]] names must be unique, got {names}")
        return self


def load_config(raw: dict[str, Any], env: dict[str, str] | None = None) -> TrainingConfig:
    """The workspace's `[training]` section; `ENGRAIN_TRAINING_<FIELD>` env vars override scalar fields."""
    from datagen import env_overrides, setting_problems

    try:
        return TrainingConfig.model_validate(env_overrides(raw.get("training") or {}, TrainingConfig,
                                                           "ENGRAIN_TRAINING_", env))
    except ValidationError as exc:
        raise TrainingConfigError(f"engrain.toml [training] is invalid: {setting_problems(exc, 'training')}") from None


TOML_TEMPLATE = '''\
[training]
# Base model: "smollm2" (the bundled SmolLM2-135M-Instruct), an HF model directory, a .gguf file,
# or the id of an earlier run to continue fine-tuning it (then continue_learning_rate applies).
base = "smollm2"
# auto picks unsloth on CUDA, mlx on Apple silicon, hf otherwise; hosted uses OpenAI's fine-tuning API.
backend = "auto"
lora_r = 16
lora_alpha = 32
lora_dropout = 0.0
target_modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
learning_rate = 2e-4
continue_learning_rate = 5e-5     # used when base is an earlier run (over any stage's learning_rate)
epochs = 2.0                      # ignored when max_steps is set
# max_steps = 200
batch_size = 4                    # halved automatically (with accumulation doubled) on CUDA out-of-memory
grad_accum = 1
max_seq_len = 1024
assistant_only_loss = true        # loss on assistant turns only (tool calls and <|im_end|> included)
packing = true                    # pack several examples into one sequence: no compute spent on padding
seed = 0
save_every = 25                   # checkpoint every N steps; an interrupted run resumes from the last one
# `engrain train --processes N` trains with N processes (torch.distributed: gloo on CPU, NCCL on CUDA), each on
# its share of every batch: batch_size stays the effective batch. "ddp" keeps a whole model in each process;
# "fsdp" shards its weights across the GPUs (for a model that does not fit one; no mid-run checkpoints).
parallel = "ddp"
quant = "q4_k_m"                  # GGUF quantization for `engrain package`
system = "You are a careful coding agent."   # the Modelfile's SYSTEM, written only when training examples had one
hosted_model = "gpt-4.1-mini-2025-04-14"     # base model for --backend hosted (OPENAI_API_KEY, OPENAI_BASE_URL)
hosted_poll_seconds = 10.0                   # how often to ask the hosted API about the job

# Curriculum: stages run in order, each starting from the previous stage's adapter.
# [[training.stages]]
# name = "tool-use"
# categories = ["tool-use"]
# max_steps = 100
# [[training.stages]]
# name = "agentic"
# categories = ["agentic-planning", "problem-solving"]
# learning_rate = 1e-4
# [[training.stages]]
# name = "everything"
# categories = []
'''
