"""Loopback fakes of the hosted model APIs, usable from any test.

Two servers, each on 127.0.0.1 port 0 in a daemon thread, started as context managers or pytest fixtures:

    from tests.fakes import hosted_server, ollama_server, hosted_fake, ollama_fake  # fixtures: import them

    with hosted_server() as fake:                     # OpenAI + Anthropic wire protocols
        OpenAI(base_url=fake.url + "/v1", api_key="x").chat.completions.create(model="fake-strong", ...)
        Anthropic(base_url=fake.url, api_key="x").messages.create(model="fake-strong", max_tokens=64, ...)
        fake.responder = tool_responder("Grep", {"pattern": "x"})   # pluggable: Call -> Reply
        fake.fail("status", status=429, times=2)       # faults, consumed in order by matching requests
        fake.fail("sleep", seconds=5)                  # stall before answering (client timeout)
        fake.fail("die", after_chunks=2)               # stream 2 events then cut the connection
        fake.fail("drop")                              # close the connection without a response
        fake.chunk_delay = 0.05                        # pause between streamed events
        fake.aborted                                   # streams the client hung up on (cancellation tests)
        fake.stop_listening()                          # from now on, connections are refused
        fake.requests                                  # [Recorded(method, path, headers, body)]

    with ollama_server() as fake:                     # Ollama's /api/* with real llama.cpp inference
        ollama.Client(host=fake.url).chat(model="smollm2:135m", messages=[...])
        digest = ollama.Client(host=fake.url).create_blob("model.gguf")
        ollama.Client(host=fake.url).create(model="mine", files={"model.gguf": digest}, template="...")

`closed_port_url()` gives a URL where nothing listens. See hosted.py and ollama.py for the exact routes and
the documented differences from the real services; llm.py holds the shared llama-cpp-python instances.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.fakes.base import Fault, FakeServer, Recorded, closed_port_url
from tests.fakes.hosted import Call, HostedFake, Reply, echo_responder, start_hosted, tool_responder
from tests.fakes.llm import bundled_gguf
from tests.fakes.ollama import OllamaFake, OllamaModel, start_ollama

__all__ = ["Call", "Fault", "FakeServer", "HostedFake", "OllamaFake", "OllamaModel", "Recorded", "Reply",
           "bundled_gguf", "closed_port_url", "echo_responder", "hosted_fake", "hosted_server", "ollama_fake",
           "ollama_server", "tool_responder"]


@contextmanager
def hosted_server(responder: Callable[[Call], Reply] = echo_responder,
                  models: list[str] | None = None) -> Iterator[HostedFake]:
    fake = start_hosted(responder, models)
    try:
        yield fake
    finally:
        fake.stop_listening()


@contextmanager
def ollama_server(models: dict[str, str | Path] | None = None,
                  responder: Callable[[Call], Reply] | None = None) -> Iterator[OllamaFake]:
    fake = start_ollama(models, responder)
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def hosted_fake() -> Iterator[HostedFake]:
    with hosted_server() as fake:
        yield fake


@pytest.fixture
def ollama_fake() -> Iterator[OllamaFake]:
    with ollama_server() as fake:
        yield fake
