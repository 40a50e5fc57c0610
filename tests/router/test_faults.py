"""Acceptance 2: primary down / 500 / 429 / timing out / dying mid-stream, all deployments down — each with
the documented behaviour and a correct x-engrain-fallbacks (the number of moves to the next deployment)."""
from __future__ import annotations

import json
import time

import anthropic
import httpx
import openai
import pytest

from tests.fakes import Reply, closed_port_url, hosted_server
from tests.router.serving import running_router

ASK = [{"role": "user", "content": "What is a tuple?"}]


@pytest.fixture(params=["litellm", "openai"])
def provider(request) -> str:
    """Every fault through litellm, and through the direct OpenAI-compatible provider."""
    return request.param


def _config(provider: str, primary: str, secondary: str, **extra) -> dict:
    prefix = "openai/" if provider == "litellm" else ""
    return {"models": [{"name": "primary", "provider": provider, "model": prefix + "p", "api_base": primary + "/v1",
                        "api_key": "k"},
                       {"name": "secondary", "provider": provider, "model": prefix + "s",
                        "api_base": secondary + "/v1", "api_key": "k"}],
            "tiers": [{"name": "local", "models": ["primary"]}, {"name": "hosted", "models": ["secondary"]}],
            "retries": 1, "backoff_s": 0.01, "timeout_s": 2.0, "cooldown_s": 60, **extra}


def _streamed_text(r: httpx.Response) -> str:
    chunks = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


@pytest.fixture
def pair(provider):
    with hosted_server() as a, hosted_server() as b:
        with running_router(_config(provider, a.url, b.url)) as url:
            yield a, b, url


def _post(url: str, **body) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json={"model": "auto", "messages": ASK, **body}, timeout=30)


def test_primary_refusing_connections_falls_back_and_cools_down(provider):
    with hosted_server() as b:
        with running_router(_config(provider, closed_port_url(), b.url)) as url:
            r = _post(url)
            assert r.status_code == 200
            assert (r.headers["x-engrain-model"], r.headers["x-engrain-fallbacks"]) == ("secondary", "1")
            assert r.json()["choices"][0]["message"]["content"].startswith("[s]")
            health = httpx.get(url + "/health").json()
            assert health["models"]["primary"]["cooling_down_s"] > 0
            again = _post(url)               # cooling primary goes last: no second failed attempt
            assert (again.headers["x-engrain-model"], again.headers["x-engrain-fallbacks"]) == ("secondary", "0")


def test_primary_500_retries_then_falls_back(pair):
    a, b, url = pair
    a.fail("status", status=500, times=None)
    r = _post(url)
    assert r.status_code == 200 and r.headers["x-engrain-fallbacks"] == "1"
    assert r.headers["x-engrain-model"] == "secondary"
    assert len(a.requests) == 2                      # one try + one retry, no hidden client retries


def test_primary_429_once_is_retried_on_the_same_deployment(pair):
    a, b, url = pair
    a.fail("status", status=429, times=1)
    r = _post(url)
    assert r.status_code == 200
    assert (r.headers["x-engrain-model"], r.headers["x-engrain-fallbacks"]) == ("primary", "0")
    assert len(a.requests) == 2 and not b.requests


def test_primary_timing_out_falls_back(pair):
    a, b, url = pair
    a.fail("sleep", seconds=10, times=None)
    started = time.monotonic()
    r = _post(url, stream=True)
    assert r.status_code == 200 and r.headers["x-engrain-fallbacks"] == "1"
    assert r.headers["x-engrain-model"] == "secondary"
    assert _streamed_text(r) == "[s] you said: What is a tuple?"
    assert r.text.rstrip().endswith("data: [DONE]")
    assert time.monotonic() - started < 9             # gave up on the primary at timeout_s, twice


def test_primary_dying_before_first_byte_falls_back(pair):
    a, b, url = pair
    a.fail("die", after_chunks=0, times=None)
    r = _post(url, stream=True)
    assert r.status_code == 200 and r.headers["x-engrain-model"] == "secondary"
    assert r.headers["x-engrain-fallbacks"] == "1"


def test_primary_dying_mid_stream_ends_with_an_error_event_in_each_api(pair):
    a, b, url = pair
    a.fail("die", after_chunks=3, times=2)
    oa = openai.OpenAI(base_url=url + "/v1", api_key="u", max_retries=0)
    got = []
    with pytest.raises(openai.APIError, match="mid-stream"):
        with oa.chat.completions.with_streaming_response.create(model="auto", messages=ASK, stream=True) as resp:
            assert (resp.headers["x-engrain-model"], resp.headers["x-engrain-fallbacks"]) == ("primary", "0")
            for chunk in resp.parse():
                got.append(chunk.choices[0].delta.content if chunk.choices else None)
    assert "[p] " in got                              # what arrived before the failure reached the client
    an = anthropic.Anthropic(base_url=url, api_key="u", max_retries=0)
    with pytest.raises(anthropic.APIError, match="mid-stream"):
        with an.messages.stream(model="auto", max_tokens=20, messages=ASK) as stream:
            for _ in stream.text_stream:
                pass
    assert httpx.get(url + "/health").json()["status"] == "ok"


def test_all_deployments_down_is_a_503_in_each_api_shape(provider):
    with running_router(_config(provider, closed_port_url(), closed_port_url())) as url:
        r = _post(url)
        assert r.status_code == 503 and r.headers["x-engrain-fallbacks"] == "1"
        assert r.json()["error"]["code"] == "all_deployments_failed"
        m = httpx.post(url + "/v1/messages", json={"model": "auto", "max_tokens": 5, "messages": ASK})
        assert m.status_code == 503
        assert m.json()["type"] == "error" and m.json()["error"]["type"] == "overloaded_error"
        s = _post(url, stream=True)
        assert s.status_code == 503 and "error" in s.json()


def test_client_fault_upstream_error_passes_through_without_fallback(pair):
    a, b, url = pair
    a.fail("status", status=400, message="messages[0].content is too silly", times=1)
    r = _post(url)
    assert r.status_code == 400 and "too silly" in r.json()["error"]["message"]
    assert not b.requests and len(a.requests) == 1
    a.fail("status", status=400, message="bad request upstream", times=1)
    m = httpx.post(url + "/v1/messages", json={"model": "primary", "max_tokens": 5, "messages": ASK})
    assert m.status_code == 400 and m.json()["error"]["type"] == "invalid_request_error"


def test_client_disconnect_cancels_the_upstream_stream(pair):
    a, b, url = pair
    a.responder = lambda call: Reply(text="word " * 200)
    a.chunk_delay = 0.05
    with httpx.stream("POST", url + "/v1/chat/completions", timeout=30,
                      json={"model": "auto", "messages": ASK, "stream": True}) as r:
        for _ in zip(range(3), r.iter_lines()):
            pass
    deadline = time.monotonic() + 10
    while a.aborted == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert a.aborted == 1                             # the router hung up on the upstream too
