"""Pydantic models for everything that crosses datagen's boundary (store rows, verdicts, briefs, exports)."""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["system", "user", "assistant", "tool"]
Status = Literal["pending", "approved", "rejected"]


class ToolFunction(BaseModel):
    name: str
    arguments: str = Field(description="JSON-encoded arguments object (OpenAI style: a string, not a dict)")


class ToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: ToolFunction


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    # OpenAI fine-tuning's per-assistant-message training weight (0 or 1); kept so imports round-trip.
    weight: int | None = None


class Example(BaseModel):
    """One training conversation in canonical (OpenAI chat) form."""

    messages: list[Message]
    tools: list[dict[str, Any]] | None = None
    category: str | None = None
    source_refs: list[str] = Field(default_factory=list, description="ids of knowledge chunks it draws on")
    meta: dict[str, Any] = Field(default_factory=dict, description="language, skill, stage, generator, ...")

    def wire(self) -> dict[str, Any]:
        """The example as our JSONL line: no nulls, no empty optionals."""
        return self.model_dump(mode="json", exclude_none=True)


class Verdict(BaseModel):
    index: int
    accepted: bool
    id: str | None = None
    reasons: list[str] = Field(default_factory=list)
    duplicate_of: str | None = None
    skipped: bool = Field(False, description="deliberately not imported (an mlx export's per-turn prefix)")


class ReviewEvent(BaseModel):
    id: int
    example_id: str
    kind: Literal["decision", "suggestion", "edit"]  # edit: content replaced, the old one kept as a revision
    verdict: Literal["approve", "reject", "edit"]
    reviewer: str
    notes: str = ""
    score: float | None = None
    created_at: float


class StoredExample(BaseModel):
    id: str
    status: Status
    created_at: float
    updated_at: float
    content_hash: str
    generator: str
    example: Example
    reviews: list[ReviewEvent] = Field(default_factory=list)


class ExamplePage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[StoredExample]


class Chunk(BaseModel):
    id: str
    source: str
    heading: str
    text: str
    line_start: int
    line_end: int
    uses: int = 0
    categories: list[str] = Field(default_factory=list, description="plan categories this chunk serves")


class Category(BaseModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = ""
    quota: int = Field(default=100, ge=0)
    guidance: str = ""
    sources: list[str] = Field(default_factory=list, description="globs over knowledge source paths it draws on")
    keywords: list[str] = Field(default_factory=list, description="words that tie a knowledge chunk to it")


RuleKind = Literal["starts_with", "regex_must", "regex_must_not", "not_name", "max_chars", "min_chars",
                   "max_code_lines", "judge", "tool_preferred", "parallel_tool_calls", "tool_before_answer"]


class Rule(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    kind: RuleKind
    pattern: str = ""
    terms: list[str] = Field(default_factory=list)
    value: int = 0
    categories: list[str] = Field(default_factory=lambda: ["*"])
    when_user: str = ""
    when_reply: str = ""
    tool: str = ""                     # tool_preferred: the tool to use; tool_before_answer: the one to call first
    instead_of: list[str] = Field(default_factory=list)   # tool_preferred: tools it should not reach for first

    @model_validator(mode="after")
    def _patterns_compile(self) -> "Rule":
        for field in ("pattern", "when_user", "when_reply"):
            try:
                re.compile(getattr(self, field))
            except re.error as exc:
                raise ValueError(f"rule {self.name!r}: {field} is not a valid regex ({exc})") from None
        if self.kind in ("starts_with", "regex_must", "regex_must_not") and not self.pattern:
            raise ValueError(f"rule {self.name!r}: kind {self.kind} needs a pattern")
        if self.kind == "not_name" and not self.terms:
            raise ValueError(f"rule {self.name!r}: kind not_name needs terms")
        if self.kind == "judge" and not self.description.strip():
            raise ValueError(f"rule {self.name!r}: kind judge needs a description (what the judge grades against)")
        if self.kind == "tool_preferred" and not (self.tool and self.instead_of):
            raise ValueError(f"rule {self.name!r}: kind tool_preferred needs tool and instead_of")
        return self


class RuleResult(BaseModel):
    name: str
    applicable: bool
    passed: bool
    detail: str = ""


class CategoryCoverage(BaseModel):
    name: str
    quota: int
    approved: int = 0
    pending: int = 0
    rejected: int = 0


class Coverage(BaseModel):
    categories: list[CategoryCoverage]


class Brief(BaseModel):
    category: str
    description: str
    guidance: str
    rules: list[Rule]
    knowledge: list[Chunk]
    format: str
    sample: dict[str, Any]
    tools: list[dict[str, Any]]
    avoid: list[str]
    remaining: int
    count: int


class ExportResult(BaseModel):
    format: str
    out: str
    files: list[str]
    counts: dict[str, int]
    skipped: int = Field(0, description="examples the target format cannot hold (e.g. tool calls in Alpaca)")
