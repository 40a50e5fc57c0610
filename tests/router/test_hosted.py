"""Acceptance 1(c): the openai and anthropic SDKs, unmodified, against `engrain serve` routing to a loopback
server that speaks the OpenAI and Anthropic APIs, reached through litellm."""
from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest

from tests.fakes import echo_responder, hosted_server, tool_responder
from tests.router.serving import running_router

GREP = {"type": "function", "function": {"name": "Grep", "description": "search",
                                         "parameters": {"type": "object", "properties": {"pattern": {"type": "string"}},
                                                        "required": ["pattern"]}}}


@pytest.fixture(scope="module")
def setup():
    with hosted_server() as fake:
        cfg = {"models": [
            {"name": "weak-openai", "provider": "litellm", "model": "openai/fake-weak", "api_base": fake.url + "/v1",
             "api_key": "k", "cost_per_mtok_in": 0.0},
            {"name": "strong-anthropic", "provider": "litellm", "model": "anthropic/fake-strong",
             "api_base": fake.url, "api_key": "k", "cost_per_mtok_in": 3.0, "cost_per_mtok_out": 15.0}],
            "tiers": [{"name": "local", "models": ["weak-openai"]}, {"name": "hosted", "models": ["strong-anthropic"]}]}
        with running_router(cfg) as url:
            yield fake, url


def test_openai_sdk_routes_easy_prompt_local_and_says_so(setup):
    fake, url = setup
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "How do I reverse a list in Python?"}], max_tokens=20)
    reply = raw.parse()
    assert reply.choices[0].message.content == "[fake-weak] you said: How do I reverse a list in Python?"
    assert reply.model == "weak-openai"
    assert raw.headers["x-engrain-model"] == "weak-openai"
    assert raw.headers["x-engrain-tier"] == "local"
    assert float(raw.headers["x-engrain-score"]) < 0.5
    assert raw.headers["x-engrain-fallbacks"] == "0"
    assert float(raw.headers["x-engrain-overhead-ms"]) >= 0
    assert fake.requests[-1].path == "/v1/chat/completions"
    assert fake.requests[-1].body["max_tokens"] == 20


def test_openai_sdk_streams_hard_prompt_from_hosted_tier(setup):
    fake, url = setup
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    prompt = ("Design the architecture for a multi-region active-active payments platform: service boundaries, "
              "consistency trade-offs, failover and the migration plan from our monolith.")
    with client.chat.completions.with_streaming_response.create(
            model="auto", stream=True, messages=[{"role": "user", "content": prompt}]) as resp:
        assert resp.headers["x-engrain-tier"] == "hosted"
        text = "".join(c.choices[0].delta.content or "" for c in resp.parse() if c.choices)
    assert text == f"[fake-strong] you said: {prompt}"
    assert fake.requests[-1].path == "/v1/messages"     # litellm spoke Anthropic's wire protocol upstream


def test_anthropic_sdk_message_and_stream(setup):
    fake, url = setup
    client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    msg = client.messages.create(model="weak-openai", max_tokens=30, system="be brief",
                                 messages=[{"role": "user", "content": "What does `yield` do?"}])
    assert msg.content[0].text == "[fake-weak] you said: What does `yield` do?"
    assert msg.stop_reason == "end_turn" and msg.model == "weak-openai"
    assert fake.requests[-1].body["messages"][0] == {"role": "system", "content": "be brief"}
    with client.messages.stream(model="strong-anthropic", max_tokens=30,
                                messages=[{"role": "user", "content": "hello"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "[fake-strong] you said: hello"
    assert final.stop_reason == "end_turn"


def test_tool_calls_round_trip_through_both_apis(setup):
    fake, url = setup
    fake.responder = tool_responder("Grep", {"pattern": "def load_config"})
    try:
        oa = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        reply = oa.chat.completions.create(model="weak-openai", tools=[GREP],
                                           messages=[{"role": "user", "content": "find the config loader"}])
        call = reply.choices[0].message.tool_calls[0]
        assert call.function.name == "Grep" and json.loads(call.function.arguments) == {"pattern": "def load_config"}
        assert reply.choices[0].finish_reason == "tool_calls"
        assert fake.requests[-1].body["tools"][0]["function"]["name"] == "Grep"

        an = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
        tools = [{"name": "Grep", "description": "search", "input_schema": GREP["function"]["parameters"]}]
        msg = an.messages.create(model="strong-anthropic", max_tokens=50, tools=tools,
                                 messages=[{"role": "user", "content": "find the config loader"}])
        block = next(b for b in msg.content if b.type == "tool_use")
        assert (block.name, block.input, msg.stop_reason) == ("Grep", {"pattern": "def load_config"}, "tool_use")
        with an.messages.stream(model="weak-openai", max_tokens=50, tools=tools,
                                messages=[{"role": "user", "content": "find it"}]) as stream:
            final = stream.get_final_message()
        block = next(b for b in final.content if b.type == "tool_use")
        assert (block.name, block.input) == ("Grep", {"pattern": "def load_config"})
    finally:
        fake.responder = echo_responder


def test_models_route_health_and_metrics(setup):
    fake, url = setup
    ids = [m.id for m in openai.OpenAI(base_url=url + "/v1", api_key="u").models.list()]
    assert {"auto", "local", "hosted", "weak-openai", "strong-anthropic"} <= set(ids)
    route = httpx.post(url + "/v1/route", json={"messages": [{"role": "user", "content": "What is a tuple?"}]})
    assert route.status_code == 200
    body = route.json()
    assert body["tier"] == "local" and body["chain"] == ["weak-openai", "strong-anthropic"]
    assert any("threshold" in r for r in body["reasons"])
    assert route.headers["x-engrain-tier"] == "local"
    assert httpx.get(url + "/health").json()["status"] == "ok"
    metrics = httpx.get(url + "/metrics").text
    assert 'engrain_requests_total{api="openai",model="weak-openai",status="200",tier="local"}' in metrics
    assert 'engrain_cost_usd_total{kind="always_strong"}' in metrics
