"""One chat completion through litellm (any provider: openai/..., anthropic/..., ollama/...): text out, plus the
tokens it used and what litellm says it cost."""
from __future__ import annotations

import os

from pydantic import BaseModel


class Usage(BaseModel):
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0      # None: litellm has no price for at least one call's model

    def add(self, other: "Usage") -> None:
        self.calls += other.calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_usd = None if self.cost_usd is None or other.cost_usd is None else self.cost_usd + other.cost_usd

    def describe(self, model: str) -> str:
        cost = (f"${self.cost_usd:.6f}" if self.cost_usd is not None
                else f"unknown (litellm has no price for {model})")
        return (f"{self.calls} model calls, {self.prompt_tokens} prompt + {self.completion_tokens} completion tokens;"
                f" cost {cost}")


def complete(model: str, messages: list[dict], *, api_base: str | None = None, retries: int = 2,
             temperature: float | None = None) -> str:
    return complete_with_usage(model, messages, api_base=api_base, retries=retries, temperature=temperature)[0]


def complete_with_usage(model: str, messages: list[dict], *, api_base: str | None = None, retries: int = 2,
                        temperature: float | None = None) -> tuple[str, Usage]:
    # litellm otherwise fetches its model cost map from GitHub on import, which stalls offline machines.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    response = litellm.completion(model=model, messages=messages, api_base=api_base, num_retries=retries,
                                  temperature=temperature)
    usage = getattr(response, "usage", None)
    try:
        cost: float | None = float(litellm.completion_cost(completion_response=response))
    except Exception:  # litellm raises its own errors for a model it cannot price
        cost = None
    return response.choices[0].message.content or "", Usage(
        calls=1, prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
        completion_tokens=getattr(usage, "completion_tokens", 0) or 0, cost_usd=cost)
