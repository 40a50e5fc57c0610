"""One chat completion through litellm (any provider: openai/..., anthropic/..., ollama/...), text out."""
from __future__ import annotations

import os


def complete(model: str, messages: list[dict], *, api_base: str | None = None, retries: int = 2,
             temperature: float | None = None) -> str:
    # litellm otherwise fetches its model cost map from GitHub on import, which stalls offline machines.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    response = litellm.completion(model=model, messages=messages, api_base=api_base, num_retries=retries,
                                  temperature=temperature)
    return response.choices[0].message.content or ""
