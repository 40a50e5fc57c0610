"""Acceptance 3: malformed JSON, missing fields, wrong types, a 20 MB body, a prompt over every context
window — each a 4xx in the API's own error shape, and the server still healthy after. Plus the API key."""
from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from tests.fakes import hosted_server
from tests.router.serving import running_router


@pytest.fixture(scope="module")
def router_url():
    with hosted_server() as fake:
        cfg = {"models": [{"name": "small", "provider": "litellm", "model": "openai/small",
                           "api_base": fake.url + "/v1", "api_key": "k", "context_window": 1000,
                           "supports_tools": False},
                          {"name": "big", "provider": "litellm", "model": "openai/big", "api_base": fake.url + "/v1",
                           "api_key": "k", "context_window": 4000}],
               "tiers": [{"name": "local", "models": ["small"]}, {"name": "hosted", "models": ["big"]}]}
        with running_router(cfg) as url:
            yield url
            assert httpx.get(url + "/health").json()["status"] == "ok"


def _openai_error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "code"} and err["message"]
    assert r.headers["x-engrain-fallbacks"] == "0" and "x-engrain-model" in r.headers
    return err


def _anthropic_error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"] == "error" and body["error"]["message"]
    return body["error"]


OPENAI_BAD = [
    ("{not json", "invalid request"),
    ('{"messages": [{"role": "user", "content": "hi"}]}', "model"),
    ('{"model": "auto"}', "messages"),
    ('{"model": "auto", "messages": []}', "messages"),
    ('{"model": "auto", "messages": "hi"}', "messages"),
    ('{"model": 5, "messages": [{"role": "user", "content": "hi"}]}', "model"),
    ('{"model": "auto", "messages": [{"role": "wizard", "content": "hi"}]}', "role"),
    ('{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "lots"}', "max_tokens"),
    ('{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "temperature": 7}', "temperature"),
    ('[1, 2, 3]', "invalid request"),
]


@pytest.mark.parametrize("body,mentions", OPENAI_BAD)
def test_openai_malformed_requests_get_400_in_openai_shape(router_url, body, mentions):
    r = httpx.post(router_url + "/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    err = _openai_error(r, 400)
    assert err["type"] == "invalid_request_error" and mentions in err["message"]


ANTHROPIC_BAD = [
    ("{not json", "invalid request"),
    ('{"model": "auto", "messages": [{"role": "user", "content": "hi"}]}', "max_tokens"),
    ('{"model": "auto", "max_tokens": 5}', "messages"),
    ('{"model": "auto", "max_tokens": 0, "messages": [{"role": "user", "content": "hi"}]}', "max_tokens"),
    ('{"model": "auto", "max_tokens": 5, "messages": [{"role": "tool", "content": "hi"}]}', "role"),
    ('{"model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": 42}]}', "content"),
]


@pytest.mark.parametrize("body,mentions", ANTHROPIC_BAD)
def test_anthropic_malformed_requests_get_400_in_anthropic_shape(router_url, body, mentions):
    r = httpx.post(router_url + "/v1/messages", content=body, headers={"content-type": "application/json"})
    err = _anthropic_error(r, 400)
    assert err["type"] == "invalid_request_error" and mentions in err["message"]


def test_unknown_model_is_404_in_each_shape(router_url):
    r = httpx.post(router_url + "/v1/chat/completions",
                   json={"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]})
    assert _openai_error(r, 404)["code"] == "model_not_found"
    r = httpx.post(router_url + "/v1/messages",
                   json={"model": "gpt-9", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    assert _anthropic_error(r, 404)["type"] == "not_found_error"


def test_body_over_20_mb_is_413_in_each_shape(router_url):
    big = b'{"model": "auto", "messages": [{"role": "user", "content": "' + b"x" * (21 * 1024 * 1024) + b'"}]}'
    _openai_error(httpx.post(router_url + "/v1/chat/completions", content=big, timeout=60), 413)
    assert _anthropic_error(httpx.post(router_url + "/v1/messages", content=big, timeout=60),
                            413)["type"] == "request_too_large"

    def chunked():  # no content-length: refused once the stream passes the limit
        for _ in range(22):
            yield b"x" * (1024 * 1024)

    _openai_error(httpx.post(router_url + "/v1/chat/completions", content=chunked(), timeout=60), 413)


def test_prompt_over_every_context_window_is_refused_not_truncated(router_url):
    long = "word " * 20000
    r = httpx.post(router_url + "/v1/chat/completions",
                   json={"model": "auto", "messages": [{"role": "user", "content": long}]})
    assert _openai_error(r, 400)["code"] == "context_length_exceeded"
    r = httpx.post(router_url + "/v1/messages",
                   json={"model": "auto", "max_tokens": 10, "messages": [{"role": "user", "content": long}]})
    assert _anthropic_error(r, 400)["message"].startswith("prompt is too long: ")      # Anthropic's own wording
    # too long for the small local model only: routed to the big one instead, and it says why
    mid = "How do I reverse a list? " + "word " * 1000
    route = httpx.post(router_url + "/v1/route", json={"messages": [{"role": "user", "content": mid}]}).json()
    assert route["chain"] == ["big"] and any("context window 1000" in r for r in route["reasons"])
    r = httpx.post(router_url + "/v1/chat/completions",
                   json={"model": "small", "messages": [{"role": "user", "content": mid}]})
    assert _openai_error(r, 400)["code"] == "context_length_exceeded"


def test_tools_skip_models_without_tool_support(router_url):
    tools = [{"type": "function", "function": {"name": "Grep", "parameters": {"type": "object"}}}]
    route = httpx.post(router_url + "/v1/route", json={"messages": [{"role": "user", "content": "What is a tuple?"}],
                                                       "tools": tools}).json()
    assert route["chain"] == ["big"] and any("tools" in r for r in route["reasons"])
    r = httpx.post(router_url + "/v1/chat/completions",
                   json={"model": "small", "tools": tools, "messages": [{"role": "user", "content": "hi"}]})
    assert _openai_error(r, 400)["code"] == "tools_unsupported"


def test_api_key_is_enforced_in_each_shape():
    with hosted_server() as fake:
        cfg = {"models": [{"name": "m", "provider": "litellm", "model": "openai/m", "api_base": fake.url + "/v1",
                           "api_key": "k"}],
               "tiers": [{"name": "local", "models": ["m"]}, {"name": "hosted", "models": ["m"]}]}
        with running_router(cfg, api_key="sesame") as url:
            body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
            _openai_error(httpx.post(url + "/v1/chat/completions", json=body), 401)
            _anthropic_error(httpx.post(url + "/v1/messages", json=body, headers={"x-api-key": "wrong"}), 401)
            assert httpx.post(url + "/v1/messages", json=body, headers={"x-api-key": "sesame"}).status_code == 200
            ok = httpx.post(url + "/v1/chat/completions", json=body, headers={"authorization": "Bearer sesame"})
            assert ok.status_code == 200
            assert httpx.get(url + "/health").status_code == 200


def test_serve_refuses_to_bind_beyond_loopback_without_a_key():
    proc = subprocess.run([sys.executable, "-c", "from engrain.cli import main; main()", "serve", "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2 and "--api-key" in proc.stderr
