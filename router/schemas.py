"""HTTP request bodies (validated at the door; unknown fields pass through to the provider)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class OpenAIFunction(_Open):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class OpenAITool(_Open):
    type: Literal["function"] = "function"
    function: OpenAIFunction


class OpenAIMessage(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class ChatCompletionRequest(_Open):
    model: str
    messages: list[OpenAIMessage] = Field(min_length=1)
    stream: bool = False
    tools: list[OpenAITool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream_options: dict[str, Any] | None = None


class AnthropicTool(_Open):
    name: str
    description: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})


class AnthropicMessage(_Open):
    role: Literal["user", "assistant", "system"]      # Claude Code 2.x sends system entries inside messages
    content: str | list[dict[str, Any]]


class MessagesRequest(_Open):
    model: str
    max_tokens: int = Field(ge=1)
    messages: list[AnthropicMessage] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    stream: bool = False
    tools: list[AnthropicTool] | None = None
    tool_choice: dict[str, Any] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    metadata: dict[str, Any] | None = None


class RouteRequest(_Open):
    """POST /v1/route: either an OpenAI-shaped or an Anthropic-shaped body (model optional)."""

    model: str = "auto"
    messages: list[dict[str, Any]] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    max_tokens: int | None = None
