"""HTTP request bodies (validated at the door; unknown fields pass through to the provider)."""
from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Sampling fields are forwarded to llama.cpp, Ollama and hosted APIs: each is checked here (type and range) so a
# client's mistake is a 400 from the router, never an upstream failure that would cool a deployment down.
_INT32 = 2**31 - 1
_SEED = Field(default=None, ge=-(2**63), le=2**64 - 1)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


def refuse_non_finite(value: Any, where: str = "body") -> None:
    """NaN and Infinity (which Python's JSON parser accepts, as it turns 1e400 into inf) anywhere in a request,
    extra fields included."""
    if _all_finite(value):
        return
    stack = [(value, where)]        # found one: walk again, keeping paths, to name it
    while stack:
        item, at = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{at} is {item}; JSON numbers must be finite")
        if isinstance(item, dict):
            stack.extend((v, f"{at}.{k}") for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{at}[{i}]") for i, v in enumerate(item))


def _all_finite(value: Any) -> bool:
    # every request pays for this walk (~0.7 ms for a 125 KB Claude Code request): type checks only, no paths
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is dict:
            extend(item.values())
        elif kind is list:
            extend(item)
        elif kind is float and not math.isfinite(item):
            return False
    return True


def check_content(content: Any, where: str = "content") -> None:
    """A list content must hold objects with a string `type`, text parts a string `text` (also inside
    tool results); an empty list is a message with nothing in it."""
    if not isinstance(content, list):
        return
    if not content:
        raise ValueError(f"{where} is an empty list; send at least one content block or a string")
    for i, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise ValueError(f"{where}[{i}] must be an object with a string 'type'")
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise ValueError(f"{where}[{i}] is a text block whose 'text' is not a string")
        if part["type"] == "tool_result" and isinstance(part.get("content"), list) and part["content"]:
            check_content(part["content"], f"{where}[{i}].content")


class _Request(_Open):
    @model_validator(mode="before")
    @classmethod
    def _finite(cls, data: Any) -> Any:
        refuse_non_finite(data)
        return data


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

    @field_validator("content")
    @classmethod
    def _parts(cls, content: Any) -> Any:
        check_content(content)
        return content


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]


class ChatCompletionRequest(_Request):
    model: str
    messages: list[OpenAIMessage] = Field(min_length=1)
    stream: bool = False
    tools: list[OpenAITool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=_INT32)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=_INT32)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0, le=_INT32)
    min_p: float | None = Field(default=None, ge=0, le=1)
    repeat_penalty: float | None = Field(default=None, gt=0, le=10)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    n: int | None = Field(default=None, ge=1, le=128)
    response_format: ResponseFormat | None = None
    stop: str | list[str] | None = None
    seed: int | None = _SEED
    stream_options: dict[str, Any] | None = None


class AnthropicTool(_Open):
    name: str
    description: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})


class AnthropicMessage(_Open):
    role: Literal["user", "assistant", "system"]      # Claude Code 2.x sends system entries inside messages
    content: str | list[dict[str, Any]]

    @field_validator("content")
    @classmethod
    def _blocks(cls, content: Any) -> Any:
        check_content(content)
        return content


class MessagesRequest(_Request):
    model: str
    max_tokens: int = Field(ge=1, le=_INT32)
    messages: list[AnthropicMessage] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    stream: bool = False
    tools: list[AnthropicTool] | None = None
    tool_choice: dict[str, Any] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0, le=_INT32)
    stop_sequences: list[str] | None = None
    metadata: dict[str, Any] | None = None

    @field_validator("system")
    @classmethod
    def _system(cls, system: Any) -> Any:
        check_content(system, "system")
        return system


class RouteRequest(_Request):
    """POST /v1/route: either an OpenAI-shaped or an Anthropic-shaped body (model optional)."""

    model: str = "auto"
    messages: list[dict[str, Any]] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=_INT32)

    @field_validator("messages")
    @classmethod
    def _parts(cls, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, message in enumerate(messages):
            check_content(message.get("content"), f"messages[{i}].content")
        return messages
