"""Acceptance 1(a) and 1(b): the openai and anthropic SDKs against `engrain serve` answering from real
SmolLM2 inference — embedded llama.cpp on the bundled GGUF, and a loopback Ollama (real inference behind it)."""
from __future__ import annotations

import anthropic
import httpx
import openai

import router
from tests.fakes import Reply, ollama_server
from tests.router.serving import running_router


ASK = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def _exercise_both_sdks(url: str, expect_model: str) -> None:
    oa = openai.OpenAI(base_url=url + "/v1", api_key="u", max_retries=0)
    raw = oa.chat.completions.with_raw_response.create(model="auto", messages=ASK, max_tokens=12, temperature=0)
    reply = raw.parse()
    assert raw.headers["x-engrain-model"] == expect_model and raw.headers["x-engrain-tier"] == "local"
    assert reply.choices[0].message.content.strip()
    assert reply.usage.completion_tokens > 0
    text = "".join(c.choices[0].delta.content or "" for c in oa.chat.completions.create(
        model="auto", messages=ASK, max_tokens=12, temperature=0, stream=True) if c.choices)
    assert text.strip()

    an = anthropic.Anthropic(base_url=url, api_key="u", max_retries=0)
    msg = an.messages.create(model="auto", max_tokens=12, messages=ASK)
    assert msg.content[0].type == "text" and msg.content[0].text.strip()
    assert msg.stop_reason in ("end_turn", "max_tokens") and msg.usage.output_tokens > 0
    with an.messages.stream(model="auto", max_tokens=12, messages=ASK) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed.strip() and final.content[0].text == streamed


def test_embedded_llamacpp_default_config_serves_both_sdks(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with running_router(router.load_config(None).model_dump()) as url:
        health = httpx.get(url + "/health").json()["models"]
        assert health["claude-sonnet"]["available"] is False      # hosted tier only with its key
        route = httpx.post(url + "/v1/route", json={"messages": [{"role": "user", "content":
                           "Design the architecture of a multi-region event-sourced payments platform."}]}).json()
        assert route["chain"] == ["smollm2-local"]
        assert any("ANTHROPIC_API_KEY" in r for r in route["reasons"])
        _exercise_both_sdks(url, "smollm2-local")


def test_ollama_provider_against_loopback_ollama_with_real_inference():
    with ollama_server() as fake:
        cfg = {"models": [{"name": "smollm2-ollama", "provider": "ollama", "model": "smollm2:135m",
                           "api_base": fake.url, "context_window": 2048}],
               "tiers": [{"name": "local", "models": ["smollm2-ollama"]},
                         {"name": "hosted", "models": ["smollm2-ollama"]}]}
        with running_router(cfg) as url:
            _exercise_both_sdks(url, "smollm2-ollama")
        chats = [r for r in fake.requests if r.path == "/api/chat"]
        assert chats and chats[0].body["options"]["num_predict"] == 12
        assert chats[0].body["model"] == "smollm2:135m"


def test_ollama_tool_calls_reach_both_sdks():
    with ollama_server(responder=lambda call: Reply(tool_calls=[("Grep", {"pattern": "TODO"})])) as fake:
        cfg = {"models": [{"name": "o", "provider": "ollama", "model": "smollm2:135m", "api_base": fake.url}],
               "tiers": [{"name": "local", "models": ["o"]}, {"name": "hosted", "models": ["o"]}]}
        tools = [{"type": "function", "function": {"name": "Grep", "parameters": {"type": "object"}}}]
        with running_router(cfg) as url:
            oa = openai.OpenAI(base_url=url + "/v1", api_key="u", max_retries=0)
            reply = oa.chat.completions.create(model="o", tools=tools, messages=ASK)
            assert reply.choices[0].message.tool_calls[0].function.name == "Grep"
            assert reply.choices[0].finish_reason == "tool_calls"
            an = anthropic.Anthropic(base_url=url, api_key="u", max_retries=0)
            with an.messages.stream(model="o", max_tokens=20, messages=ASK, tools=[
                    {"name": "Grep", "input_schema": {"type": "object"}}]) as stream:
                final = stream.get_final_message()
            assert final.content[0].type == "tool_use" and final.content[0].input == {"pattern": "TODO"}
        assert fake.requests[-1].body["tools"][0]["function"]["name"] == "Grep"


def test_chat_api_for_training_eval():
    local = router.ModelConfig(name="l", provider="llamacpp", context_window=2048, supports_tools=False)
    result = router.chat(local, ASK, max_tokens=8)
    assert result.text.strip() and result.completion_tokens > 0 and result.tool_calls == []
    assert router.chat(local, ASK, max_tokens=8).text == result.text          # temperature 0 is repeatable
    with ollama_server() as fake:
        remote = router.ModelConfig(name="o", provider="ollama", model="smollm2:135m", api_base=fake.url)
        assert router.chat(remote, ASK, max_tokens=8).text.strip()
