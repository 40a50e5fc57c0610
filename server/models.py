"""Pydantic models for every tool's input and result.

Claude Code shows the model only `structuredContent`, so everything the model must read is a field here.
Field descriptions are short on purpose: they ship in every `tools/list` and count against the context.
Result fields have no defaults: every one is always sent, and a default would only add bytes to the output
schema. Nullable types are kept for where "unknown" differs from empty (loss before the first step).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

ExportFormat = Literal["openai", "alpaca", "sharegpt", "mlx", "hf"]
StatusFilter = Literal["pending", "approved", "rejected", "all"]
MAX_BATCH = 50


class ExamplesInput(BaseModel):
    category: str = Field("", description="empty for all")
    status: StatusFilter = "all"
    offset: int = Field(0, ge=0)
    limit: int = Field(10, ge=1, le=20)
    full: bool = Field(False, description="include messages")


class CoverageInput(BaseModel):
    pass


class RunStatusInput(BaseModel):
    run_id: str = Field(description="from train")
    wait_s: int = Field(0, ge=0, le=600)


class BriefInput(BaseModel):
    category: str = Field(description="plan category")
    count: int = Field(5, ge=1, le=20)


class SubmitInput(BaseModel):
    examples: list[dict[str, Any]] = Field(min_length=1, description=f"1-{MAX_BATCH} examples in the brief's format")


class KnowledgeChunk(BaseModel):
    id: str
    source: str
    heading: str
    text: str


class BriefResult(BaseModel):
    category: str
    remaining: int = Field(description="quota - approved - pending")
    description: str
    guidance: str
    rules: list[str]
    knowledge: list[KnowledgeChunk] = Field(description="cite ids in source_refs")
    format: str
    sample: dict[str, Any] = Field(description="one valid example")
    tools: list[dict[str, Any]] = Field(description="schemas for tool calls")
    avoid: list[str] = Field(description="recent openings; don't repeat")


class Verdict(BaseModel):
    index: int
    accepted: bool
    id: str | None
    reasons: list[str]
    duplicate_of: str | None


class SubmitResult(BaseModel):
    accepted: int
    rejected: int
    verdicts: list[Verdict]


class ExampleItem(BaseModel):
    id: str
    category: str
    status: str
    preview: str = Field(description="first user message, shortened")
    messages: list[dict[str, Any]] = Field(description="only with full=true")


class ExamplesPage(BaseModel):
    total: int
    items: list[ExampleItem]
    next_offset: int | None


class Decision(BaseModel):
    id: str
    verdict: Literal["approve", "reject"]
    notes: str = Field("", description="why; required for reject")


class ReviewInput(BaseModel):
    decisions: list[Decision] = Field(min_length=1, max_length=50)


class ExportInput(BaseModel):
    format: ExportFormat
    out: str = Field("", description="in the workspace; default exports/<format>")
    force: bool = Field(False, description="overwrite existing files")


class TrainInput(BaseModel):
    stage: str = Field("", description="empty for all stages")
    max_steps: int = Field(0, ge=0, description="0 for the config's")
    include_pending: bool = False


class ReviewResult(BaseModel):
    recorded: list[str] = Field(description="'<id>: approved|rejected'")


class CategoryCount(BaseModel):
    name: str
    quota: int
    approved: int
    pending: int
    rejected: int
    remaining: int


class CoverageResult(BaseModel):
    categories: list[CategoryCount]
    next_step: str


class ExportResult(BaseModel):
    format: str
    files: list[str] = Field(description="relative to the workspace")
    counts: dict[str, int]


class TrainResult(BaseModel):
    run_id: str


class RunStatusResult(BaseModel):
    run_id: str
    state: str
    stage: str
    step: int
    total_steps: int
    loss: float | None
    eta_s: float | None
    artifacts: dict[str, str]
    error: str
