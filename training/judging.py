"""The judge for eval's `judge` rules: any deployment the router can reach (hosted, Ollama, the embedded GGUF),
called through the router's providers with the router's own retry rule (retryable failures and 429s are
retried with backoff, honouring the upstream's retry-after; others fail at once)."""
from __future__ import annotations

import functools
import time
from pathlib import Path

import datagen
import router

ATTEMPTS = 4
MAX_WAIT_S = 30.0


def router_judge(model: router.ModelConfig, cache_path: Path | None = None) -> datagen.Judge:
    return datagen.Judge(functools.partial(complete, model), name=model.name, cache_path=cache_path)


def complete(model: router.ModelConfig, messages: list[dict], *, sleep=time.sleep) -> str:
    for attempt in range(ATTEMPTS):
        try:
            return router.chat(model, messages, max_tokens=120, temperature=0.0,
                               timeout=model.timeout_s or 300.0).text
        except router.ProviderError as exc:
            if not exc.retryable or attempt == ATTEMPTS - 1:
                raise datagen.JudgeError(f"the judge {model.name} failed after {attempt + 1} attempt(s): {exc}") \
                    from None
            sleep(min(MAX_WAIT_S, exc.retry_after if exc.retry_after is not None else 0.5 * 2 ** attempt))
    return ""  # not reached: the last attempt returns or raises


def find_deployment(config: router.RouterConfig, name: str) -> router.ModelConfig:
    """The `[[router.models]]` entry called `name`, or a clear error listing the ones there are."""
    for model in config.models:
        if model.name == name:
            return model
    names = ", ".join(m.name for m in config.models) or "none"
    raise datagen.DatagenError(f"no router deployment named {name!r} to judge with (configured: {names}); "
                               "add it under [[router.models]] in engrain.toml")
