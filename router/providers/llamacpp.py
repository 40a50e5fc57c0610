"""Embedded llama.cpp (llama-cpp-python): one model instance per GGUF, one call at a time, off the event loop."""
from __future__ import annotations

import asyncio
import atexit
import os
import threading
from typing import Any, AsyncIterator

from router.config import ModelConfig, bundled_gguf
from router.errors import ProviderError

_models: dict[tuple[str, int], tuple[Any, threading.Lock]] = {}
_failed: dict[tuple[str, int], str] = {}        # a GGUF that would not load: not retried until restart
_load_lock = threading.Lock()


@atexit.register
def _close_all() -> None:
    # free llama.cpp models before interpreter teardown, when their __del__ can no longer reach the library
    for model, _ in _models.values():
        model.close()


_PARAMS = {"max_tokens", "temperature", "top_p", "top_k", "min_p", "stop", "seed", "tools", "tool_choice",
           "response_format", "presence_penalty", "frequency_penalty", "repeat_penalty", "logit_bias",
           "logprobs", "top_logprobs"}


def _key(m: ModelConfig) -> tuple[str, int]:
    return (m.model or str(bundled_gguf()), m.context_window)


def load_error(m: ModelConfig) -> str | None:
    try:
        return _failed.get(_key(m))
    except FileNotFoundError as exc:
        return str(exc)


def load(m: ModelConfig) -> tuple[Any, threading.Lock]:
    key = _key(m)
    path = key[0]
    with _load_lock:
        if key in _failed:
            raise ProviderError(_failed[key], retryable=False)
        if key not in _models:
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise ProviderError("llama-cpp-python is not installed: pip install 'engrain[local]'",
                                    retryable=False) from exc
            try:
                # llama-cpp-python defaults to half the cores for generation (1 thread on a 2-core box): use
                # every core this process may run on.
                cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
                llm = Llama(model_path=path, n_ctx=m.context_window, n_threads=cores, n_threads_batch=cores,
                            verbose=False, seed=0)
            except (ValueError, OSError) as exc:
                _failed[key] = f"cannot load GGUF {path}: {exc}"
                raise ProviderError(_failed[key], retryable=False) from exc
            _models[key] = (llm, threading.Lock())
        return _models[key]


def warm(m: ModelConfig) -> None:
    try:
        load(m)
    except ProviderError:
        pass        # reported on the first request that needs it; the other tiers still serve


def _kwargs(llm: Any, job: dict, cancel: threading.Event) -> dict:
    kwargs = {k: v for k, v in job.items() if k in _PARAMS}
    # Ollama and llama-cpp-python's own server both default to 1.1 (the library call to 1.0); without it a
    # small model decoding greedily falls into a loop and never reaches its stop token
    kwargs.setdefault("repeat_penalty", 1.1)
    if "stop" in kwargs and isinstance(kwargs["stop"], str):
        kwargs["stop"] = [kwargs["stop"]]
    # the chat API has no cancel call nor stopping criteria: once cancelled, a logits processor leaves the
    # model nothing to sample but end-of-sequence, so a call whose client has gone ends at the next token
    import numpy as np
    from llama_cpp import LogitsProcessorList

    eos = llm.token_eos()

    def stop_when_cancelled(_ids: Any, scores: Any) -> Any:
        if cancel.is_set():
            scores[:] = -np.inf
            scores[eos] = 0.0
        return scores

    kwargs["logits_processor"] = LogitsProcessorList([stop_when_cancelled])
    return kwargs


def _error(exc: Exception) -> ProviderError:
    text = str(exc)
    if "context window" in text or "exceed" in text:
        return ProviderError(f"prompt too long for this model: {text}", status=400, retryable=False,
                             client_fault=True, code="context_length_exceeded")
    return ProviderError(f"llama.cpp: {text}", status=400, retryable=False, client_fault=True)


def _messages(job: dict) -> list[dict]:
    # the GGUF's chat template takes string content only
    out = []
    for msg in job["messages"]:
        content = msg.get("content")
        if isinstance(content, list):
            content = "\n".join(p.get("text", "") for p in content if p.get("type") == "text")
        out.append({"role": "system" if msg["role"] == "developer" else msg["role"], "content": content or ""})
    return out


async def complete(m: ModelConfig, job: dict, timeout: float) -> dict:
    llm, lock = await asyncio.to_thread(load, m)
    cancel = threading.Event()

    def run() -> dict:
        with lock:
            return llm.create_chat_completion(messages=_messages(job), **_kwargs(llm, job, cancel))

    try:
        return await asyncio.to_thread(run)
    except (ValueError, RuntimeError, TypeError, OverflowError) as exc:
        raise _error(exc) from exc
    finally:
        cancel.set()


async def stream(m: ModelConfig, job: dict, timeout: float) -> AsyncIterator[dict]:
    llm, lock = await asyncio.to_thread(load, m)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cancel = threading.Event()
    done = object()

    def put(item: object) -> None:
        if not cancel.is_set():         # once the consumer has gone its loop may be closed
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:
                cancel.set()

    def run() -> None:
        try:
            with lock:
                generated, cid, finish = 0, "", None
                for chunk in llm.create_chat_completion(messages=_messages(job), stream=True,
                                                        **_kwargs(llm, job, cancel)):
                    if cancel.is_set():
                        break
                    generated += any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or [])
                    cid = chunk.get("id") or cid
                    finish = next((c["finish_reason"] for c in chunk.get("choices") or [] if c.get("finish_reason")),
                                  finish)
                    put(chunk)
                else:
                    # llama-cpp-python streams no usage: one content chunk is one token, and the context now
                    # holds the prompt and the answer (what a non-streamed call reports) — all but the last
                    # token when max_tokens stopped it (sampled, never evaluated)
                    prompt = llm.n_tokens - generated + (finish == "length")
                    put({"id": cid, "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": generated,
                                                            "total_tokens": prompt + generated}})
        except Exception as exc:  # handed to the consumer, which maps it
            put(exc)
        finally:
            put(done)

    loop.run_in_executor(None, run)
    try:
        while (item := await queue.get()) is not done:
            if isinstance(item, Exception):
                raise (_error(item) if isinstance(item, (ValueError, RuntimeError, TypeError, OverflowError))
                       else ProviderError(str(item)))
            yield item
    finally:
        cancel.set()
