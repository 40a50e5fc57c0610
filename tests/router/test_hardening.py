"""Issue 13, cases 4, 5 and 10 (the router): a client's bad field is a 400 in its API's shape and never cools a
deployment down; request heads are bounded (431) before authentication; a busy local model answers 429 with
retry-after or falls back; an upstream's long retry-after is not waited on; streams have a deadline; a model
that failed to load is reported unavailable; a blank API key does not pass the bind guard."""
from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
from typer.testing import CliRunner

from tests.fakes import hosted_server
from tests.router.serving import running_router

ASK = [{"role": "user", "content": "What is a tuple?"}]


def _config(local: str, hosted: str, **extra) -> dict:
    return {"models": [{"name": "small", "provider": "openai", "model": "small", "api_base": local + "/v1",
                        "api_key": "k"},
                       {"name": "big", "provider": "openai", "model": "big", "api_base": hosted + "/v1",
                        "api_key": "k"}],
            "tiers": [{"name": "local", "models": ["small"]}, {"name": "hosted", "models": ["big"]}],
            "retries": 1, "backoff_s": 0.01, "timeout_s": 5.0, "cooldown_s": 60, **extra}


@pytest.fixture(scope="module")
def served():
    with hosted_server() as local, hosted_server() as hosted:
        with running_router(_config(local.url, hosted.url), api_key="secret") as url:
            yield url, local, hosted


def _cooling(url: str) -> dict[str, float]:
    models = httpx.get(url + "/health").json()["models"]
    return {name: m["cooling_down_s"] for name, m in models.items()}


AUTH = {"authorization": "Bearer secret", "content-type": "application/json"}
MSG = '"messages": [{"role": "user", "content": "hi"}]'

# (path, raw body, the field the 400 must name); case 5 of the issue, every row also streamed where it can be
BAD_FIELDS = [
    ("/v1/chat/completions", '{"model": "local", %s, "top_k": "abc"}' % MSG, "top_k"),
    ("/v1/chat/completions", '{"model": "local", %s, "min_p": "x"}' % MSG, "min_p"),
    ("/v1/chat/completions", '{"model": "local", %s, "repeat_penalty": "x"}' % MSG, "repeat_penalty"),
    ("/v1/chat/completions", '{"model": "local", %s, "presence_penalty": [1]}' % MSG, "presence_penalty"),
    ("/v1/chat/completions", '{"model": "local", %s, "frequency_penalty": 9}' % MSG, "frequency_penalty"),
    ("/v1/chat/completions", '{"model": "local", %s, "response_format": "x"}' % MSG, "response_format"),
    ("/v1/chat/completions", '{"model": "local", %s, "temperature": NaN}' % MSG, "temperature"),
    ("/v1/chat/completions", '{"model": "local", %s, "top_p": -3}' % MSG, "top_p"),
    ("/v1/chat/completions", '{"model": "local", %s, "top_p": Infinity}' % MSG, "top_p"),
    ("/v1/chat/completions", '{"model": "local", %s, "vendor_knob": -Infinity}' % MSG, "vendor_knob"),
    ("/v1/chat/completions", '{"model": "local", %s, "max_tokens": 100000000000000000000}' % MSG, "max_tokens"),
    ("/v1/chat/completions", '{"model": "local", %s, "seed": 1e400}' % MSG, "seed"),
    ("/v1/chat/completions", '{"model": "local", "messages": [{"role": "user", "content": [{"type": "text", '
                             '"text": 5}]}]}', "text"),
    ("/v1/messages", '{"model": "local", "max_tokens": 9, %s, "top_k": "abc"}' % MSG, "top_k"),
    ("/v1/messages", '{"model": "local", "max_tokens": 9, %s, "top_p": -3}' % MSG, "top_p"),
    ("/v1/messages", '{"model": "local", "max_tokens": 9, "messages": [{"role": "user", "content": []}]}',
     "empty list"),
    ("/v1/messages", '{"model": "local", "max_tokens": 9, "messages": [{"role": "user", "content": [{"type": '
                     '"tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": {"a": 1}}]}]}]}',
     "text"),
    ("/v1/route", '{"messages": [{"role": "user", "content": [1, 2]}]}', "content"),
    ("/v1/route", '{"messages": [{"role": "user", "content": [{"type": "text", "text": ["x"]}]}]}', "text"),
    ("/v1/route", '{"messages": [{"role": "user", "content": [{"text": "no type"}]}]}', "type"),
    ("/v1/route", '{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}', "temperature"),
]


CASES = [(*case, False) for case in BAD_FIELDS] + [(*case, True) for case in BAD_FIELDS if case[0] != "/v1/route"]


@pytest.mark.parametrize(("path", "body", "field", "stream"), CASES,
                         ids=[f"{p} {f}{' stream' if s else ''}" for p, _, f, s in CASES])
def test_a_bad_field_is_a_400_in_the_api_shape_and_cools_nothing(served, path, body, field, stream):
    url, local, hosted = served
    if stream:
        body = body[:-1] + ', "stream": true}'
    seen = len(local.requests) + len(hosted.requests)

    r = httpx.post(url + path, content=body, headers=AUTH)

    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert field in error["message"], error
    assert "Traceback" not in r.text and len(r.text) < 2000
    if path == "/v1/messages":
        assert r.json()["type"] == "error" and error["type"] == "invalid_request_error"
    else:
        assert error["type"] == "invalid_request_error"
    assert len(local.requests) + len(hosted.requests) == seen          # nothing reached a model
    assert _cooling(url) == {"small": 0.0, "big": 0.0}


def _raw(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass                      # refused while we were still sending: the answer is already there
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_an_oversized_head_is_a_431_before_authentication(served):
    url, _, _ = served
    huge = b"x" * (2 * 1024 * 1024)
    answer = _raw(url, b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-junk: " + huge + b"\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431")
    assert "larger than 64 KB" in json.loads(body)["error"]["message"]

    long_url = _raw(url, b"GET /v1/models?" + b"a" * 200_000 + b" HTTP/1.1\r\nhost: x\r\n\r\n")
    assert long_url.startswith(b"HTTP/1.1 431")

    many = httpx.get(url + "/v1/models", headers={**AUTH, **{f"x-h{i}": "1" for i in range(150)}})
    assert many.status_code == 431 and "header fields" in many.json()["error"]["message"]
    assert httpx.get(url + "/v1/models", headers=AUTH).status_code == 200


def test_a_busy_local_model_answers_429_with_retry_after_or_falls_back():
    with hosted_server() as local, hosted_server() as hosted:
        local.fail("sleep", seconds=1.5, times=None)
        models = _config(local.url, hosted.url)["models"]
        models[0]["max_queue"] = 1
        for fallbacks, expected in (({"local": []}, 429), ({}, 200)):
            cfg = _config(local.url, hosted.url, models=models, fallbacks=fallbacks)
            with running_router(cfg) as url:
                first = threading.Thread(target=httpx.post, args=(url + "/v1/chat/completions",),
                                         kwargs={"json": {"model": "local", "messages": ASK}, "timeout": 10})
                first.start()
                time.sleep(0.3)
                r = httpx.post(url + "/v1/chat/completions", json={"model": "local", "messages": ASK}, timeout=10)
                first.join()
                assert r.status_code == expected, r.text
                if expected == 429:
                    assert int(r.headers["retry-after"]) >= 1
                    assert "queued" in r.json()["error"]["message"]
                else:
                    assert r.headers["x-engrain-model"] == "big"
                assert _cooling(url)["small"] == 0.0            # busy is not broken


def test_connections_beyond_the_limit_are_refused_and_the_rest_answered():
    with hosted_server() as local, hosted_server() as hosted:
        local.fail("sleep", seconds=1.0, times=None)
        with running_router(_config(local.url, hosted.url, max_connections=3)) as url:
            results: list[int] = []

            def ask() -> None:
                with httpx.Client(timeout=10) as client:  # a connection of its own each
                    results.append(client.post(url + "/v1/chat/completions",
                                               json={"model": "local", "messages": ASK}).status_code)

            threads = [threading.Thread(target=ask) for _ in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(set(results)) == [200, 503] and results.count(200) >= 1, results
            assert httpx.get(url + "/health").status_code == 200       # and it serves again afterwards


def test_a_long_upstream_retry_after_is_not_waited_on_and_a_short_one_is():
    with hosted_server() as local, hosted_server() as hosted:
        with running_router(_config(local.url, hosted.url)) as url:
            local.fail("status", status=429, retry_after="3600")
            started = time.monotonic()
            r = httpx.post(url + "/v1/chat/completions", json={"model": "local", "messages": ASK}, timeout=30)
            assert time.monotonic() - started < 2
            assert (r.status_code, r.headers["x-engrain-model"]) == (200, "big")
            assert _cooling(url)["small"] > 3000
        with running_router(_config(local.url, hosted.url)) as url:
            local.fail("status", status=429, retry_after="1")
            started = time.monotonic()
            r = httpx.post(url + "/v1/chat/completions", json={"model": "local", "messages": ASK}, timeout=30)
            assert 1 <= time.monotonic() - started < 5
            assert (r.status_code, r.headers["x-engrain-model"]) == (200, "small")


def test_a_stream_ends_at_its_deadline():
    with hosted_server() as local, hosted_server() as hosted:
        local.chunk_delay = 0.4
        with running_router(_config(local.url, hosted.url, stream_deadline_s=1.0)) as url:
            words = " ".join(f"word{i}" for i in range(40))
            started = time.monotonic()
            r = httpx.post(url + "/v1/chat/completions", timeout=30, json={
                "model": "local", "stream": True, "messages": [{"role": "user", "content": words}]})
            assert time.monotonic() - started < 4
            assert r.status_code == 200
            assert "stream_deadline_s" in r.text
            assert _cooling(url)["small"] == 0.0


def test_a_model_that_fails_to_load_is_unavailable(tmp_path):
    broken = tmp_path / "header-only.gguf"
    broken.write_bytes(b"GGUF\x03\x00\x00\x00")
    with hosted_server() as hosted:
        cfg = {"models": [{"name": "mine", "provider": "llamacpp", "model": str(broken)},
                          {"name": "big", "provider": "openai", "model": "big", "api_base": hosted.url + "/v1",
                           "api_key": "k"}],
               "tiers": [{"name": "local", "models": ["mine"]}, {"name": "hosted", "models": ["big"]}]}
        with running_router(cfg) as url:
            health = httpx.get(url + "/health").json()["models"]
            assert health["mine"]["available"] is False and "cannot load GGUF" in health["mine"]["error"]
            assert health["big"]["available"] is True
            r = httpx.post(url + "/v1/chat/completions", json={"model": "local", "messages": ASK}, timeout=30)
            assert (r.status_code, r.headers["x-engrain-model"]) == (200, "big")


@pytest.mark.parametrize("key", [" ", "\t", ""])
def test_a_blank_api_key_does_not_pass_the_bind_guard(key):
    from engrain.cli import app

    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--api-key", key])
    assert result.exit_code == 2
    assert "blank" in result.output or "exposes the router" in result.output
