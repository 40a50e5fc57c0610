"""The `anthropic` provider and Anthropic's own shapes, with the anthropic and openai SDKs against `engrain serve`
and a loopback server speaking Anthropic's Messages API: pass-through fidelity, usage, model names, the score's
text, context errors, count_tokens, statuses in /metrics, plain failure messages."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import anthropic
import httpx
import openai
import pytest

from router.config import load_config
from router.user_text import user_words
from tests.fakes import Reply, closed_port_url, hosted_server
from tests.router.serving import running_router

USAGE = Reply(text="hello there", prompt_tokens=40, completion_tokens=2, cache_read_tokens=7, cache_creation_tokens=3)
ASK = [{"role": "user", "content": "What does `yield` do?"}]
HARD = ("Design the architecture for a multi-region active-active payments platform: service boundaries, "
        "consistency trade-offs, failover and the migration plan from our monolith.")


@pytest.fixture(scope="module")
def setup():
    with hosted_server(lambda call: USAGE) as fake:
        cfg = {"models": [
            {"name": "claude", "provider": "anthropic", "model": "claude-sonnet-4-5", "serves": ["claude-*"],
             "api_base": fake.url, "api_key": "upstream-key", "context_window": 200000},
            {"name": "weak", "provider": "openai", "model": "fake-weak", "api_base": fake.url + "/v1",
             "context_window": 100000},
            {"name": "smol", "provider": "llamacpp", "model": "", "context_window": 2048, "supports_tools": False}],
            "tiers": [{"name": "local", "models": ["weak"]}, {"name": "hosted", "models": ["claude"]},
                      {"name": "tiny", "models": ["smol"]}],
            "rules": [{"tier": "local", "model": "claude-*haiku*", "has_tools": False, "max_prompt_tokens": 4000}]}
        with running_router(cfg) as url:
            yield fake, url


def _client(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="client-key", max_retries=0)


def _events(response: httpx.Response) -> list[tuple[str, dict]]:
    out = []
    for block in response.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


BODY = {"model": "claude-opus-5-5", "max_tokens": 64, "stream": True, "metadata": {"user_id": "u-1"},
        "thinking": {"type": "adaptive"}, "output_config": {"effort": "medium"},
        "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "Grep", "input_schema": {"type": "object"}, "defer_loading": True}],
        "messages": [{"role": "system", "content": "mid-conversation system entry"},
                     {"role": "user", "content": [{"type": "text", "text": HARD, "cache_control": {"type": "ephemeral"}}]}]}


def test_stream_passes_through_event_by_event_with_the_body_untouched(setup):
    fake, url = setup
    headers = {"anthropic-version": "2023-06-01", "anthropic-beta": "context-management-2025-06-27",
               "x-api-key": "client-key"}
    ours = httpx.post(url + "/v1/messages?beta=true", json=BODY, headers=headers)
    assert ours.status_code == 200 and ours.headers["x-engrain-tier"] == "hosted"
    arrived = fake.requests[-1]
    assert arrived.body == BODY                         # the client named a claude-* id the deployment serves
    assert arrived.headers["anthropic-beta"] == "context-management-2025-06-27"
    assert arrived.headers["x-api-key"] == "upstream-key"
    direct = httpx.post(fake.url + "/v1/messages", json=BODY, headers=headers)

    def comparable(events):
        return [(name, {k: v for k, v in data.items() if k != "message"}) for name, data in events]
    assert comparable(_events(ours)) == comparable(_events(direct))
    assert _events(ours)[0][1]["message"]["usage"] == _events(direct)[0][1]["message"]["usage"]


def test_usage_is_the_upstreams_streamed_and_not(setup):
    fake, url = setup
    client = _client(url)
    expected = {"input_tokens": 40, "cache_read_input_tokens": 7, "cache_creation_input_tokens": 3,
                "output_tokens": 2}
    message = client.messages.create(model="claude", max_tokens=20, messages=ASK)
    with client.messages.stream(model="claude", max_tokens=20, messages=ASK) as stream:
        final = stream.get_final_message()
    for usage in (message.usage, final.usage):
        assert {k: getattr(usage, k) for k in expected} == expected
    metrics = httpx.get(url + "/metrics").text
    assert re.search(r'engrain_tokens_total\{direction="in",model="claude",tier="hosted"\} (\d+)', metrics)


@pytest.mark.parametrize("limit", [8, 40], ids=["cut-by-max-tokens", "ends-itself"])
def test_local_streams_report_the_tokens_they_made(setup, limit):
    _, url = setup
    client = _client(url)
    ask = [{"role": "user", "content": "Say hello in five words."}]
    message = client.messages.create(model="smol", max_tokens=limit, messages=ask, extra_body={"temperature": 0})
    with client.messages.stream(model="smol", max_tokens=limit, messages=ask,
                                extra_body={"temperature": 0}) as stream:
        final = stream.get_final_message()
    assert message.usage.output_tokens > 0
    assert (final.usage.input_tokens, final.usage.output_tokens) == (message.usage.input_tokens,
                                                                     message.usage.output_tokens)
    assert final.content[0].text == message.content[0].text
    assert final.stop_reason == message.stop_reason == ("max_tokens" if limit == 8 else "end_turn")


MODEL_NAMES = [
    # client's model name     -> how the router reads it          upstream model when hosted
    ("claude-opus-5-5",          "model 'claude-opus-5-5' -> 'auto'", "claude-opus-5-5"),
    ("claude-sonnet-4-5-20250929", "model 'claude-sonnet-4-5-20250929' -> 'auto'", "claude-sonnet-4-5-20250929"),
    ("sonnet",                   "model 'sonnet' -> 'auto'",          "claude-sonnet-4-5"),
    ("opus",                     "model 'opus' -> 'auto'",            "claude-sonnet-4-5"),
    ("claude",                   "explicit model 'claude'",           "claude-sonnet-4-5"),
    ("hosted",                   "explicit tier 'hosted'",            "claude-sonnet-4-5"),
]


@pytest.mark.parametrize("name,reason,upstream", MODEL_NAMES)
def test_every_claude_model_name_resolves(setup, name, reason, upstream):
    fake, url = setup
    route = httpx.post(url + "/v1/route", json={"model": name, "messages": [{"role": "user", "content": HARD}]}).json()
    assert reason in route["reasons"] and route["tier"] == "hosted"
    _client(url).messages.create(model=name, max_tokens=10, messages=[{"role": "user", "content": HARD}])
    assert fake.requests[-1].body["model"] == upstream


def test_unknown_model_is_a_404_that_lists_the_names_that_work(setup):
    _, url = setup
    with pytest.raises(anthropic.NotFoundError) as caught:
        _client(url).messages.create(model="gpt-9", max_tokens=5, messages=ASK)
    message = caught.value.body["error"]["message"]
    for name in ("auto", "claude", "hosted", "claude-*", "sonnet", "haiku"):
        assert repr(name) in message


BACKGROUND = [
    # model                tools  prompt      -> tier    (the rule: small-fast model, no tools, small)
    ("claude-haiku-4-5",   False, "Summarise: the build passed.",   "local"),
    ("claude-haiku-4-5",   True,  HARD,                             "hosted"),
    ("claude-haiku-4-5",   False, HARD + " " + "detail " * 4000,    "hosted"),
    ("claude-opus-5-5",    False, HARD,                             "hosted"),
]


@pytest.mark.parametrize("model,tools,prompt,tier", BACKGROUND)
def test_background_requests_go_local_by_rule(setup, model, tools, prompt, tier):
    _, url = setup
    body = {"model": model, "max_tokens": 32000, "messages": [{"role": "user", "content": prompt}], "system": "x",
            "tools": [{"name": "Grep", "input_schema": {"type": "object"}}] if tools else []}
    route = httpx.post(url + "/v1/route", json=body).json()
    assert route["tier"] == tier, route["reasons"]


def test_system_entries_in_messages_are_accepted_both_ways(setup):
    fake, url = setup
    messages = [{"role": "system", "content": "Answer in one line."}, *ASK]
    local = _client(url).messages.create(model="weak", max_tokens=10, messages=messages)
    assert local.content[0].text == "hello there"
    assert fake.requests[-1].body["messages"][0] == {"role": "system", "content": "Answer in one line."}
    _client(url).messages.create(model="claude", max_tokens=10, messages=messages)
    assert fake.requests[-1].body["messages"] == messages


def test_context_overflow_speaks_anthropics_words(setup):
    _, url = setup
    too_long = [{"role": "user", "content": "word " * 3000}]
    with pytest.raises(anthropic.BadRequestError) as caught:
        _client(url).messages.create(model="smol", max_tokens=10, messages=too_long)
    error = caught.value.body["error"]
    assert error["type"] == "invalid_request_error"
    assert re.fullmatch(r"prompt is too long: \d+ tokens > 2048 maximum", error["message"])
    with pytest.raises(anthropic.BadRequestError) as caught:
        _client(url).messages.create(model="smol", max_tokens=1000, messages=[{"role": "user", "content": "w " * 2500}])
    assert re.fullmatch(r"input length and `max_tokens` exceed context limit: \d+ \+ 512 > 2048, decrease input "
                        r"length or `max_tokens` and try again", caught.value.body["error"]["message"])


def test_count_tokens_asks_the_upstream_where_the_request_would_go(setup):
    fake, url = setup
    hard = {"model": "claude-opus-5-5", "messages": [{"role": "system", "content": "s"},
                                                     {"role": "user", "content": HARD}]}
    counted = httpx.post(url + "/v1/messages/count_tokens", json=hard)
    assert counted.status_code == 200 and counted.headers["x-engrain-tier"] == "hosted"
    assert fake.requests[-1].path == "/v1/messages/count_tokens"
    assert fake.requests[-1].body["model"] == "claude-opus-5-5"
    assert counted.json() == {"input_tokens": 1 + len(HARD.split())}          # the fake counts words
    seen = len(fake.requests)
    easy = httpx.post(url + "/v1/messages/count_tokens", json={"model": "weak", "messages": ASK})
    assert easy.status_code == 200 and easy.json()["input_tokens"] > 0 and len(fake.requests) == seen


def _count(url: str, path: str, status: str) -> float:
    found = re.search(rf'engrain_responses_total\{{path="{re.escape(path)}",status="{status}"\}} ([\d.]+)',
                      httpx.get(url + "/metrics").text)
    return float(found.group(1)) if found else 0.0


def test_every_status_is_counted(setup):
    fake, url = setup
    before = {s: _count(url, "/v1/messages", s) for s in ("200", "400", "404", "499")}
    httpx.post(url + "/v1/messages", json={"model": "claude", "max_tokens": 5, "messages": ASK})
    httpx.post(url + "/v1/messages", content=b"{not json", headers={"content-type": "application/json"})
    httpx.post(url + "/v1/messages", json={"model": "gpt-9", "max_tokens": 5, "messages": ASK})
    fake.fail("sleep", seconds=3)
    with pytest.raises(httpx.ReadTimeout):             # the client hangs up while the upstream is slow
        httpx.post(url + "/v1/messages", json={"model": "claude", "max_tokens": 5, "messages": ASK}, timeout=0.5)
    other = _count(url, "other", "404")
    httpx.get(url + "/nowhere")
    for _ in range(50):
        if _count(url, "/v1/messages", "499") > before["499"]:
            break
        httpx.get(url + "/health")
    after = {s: _count(url, "/v1/messages", s) for s in before}
    assert {s: after[s] - before[s] for s in before} == {"200": 1, "400": 1, "404": 1, "499": 1}
    assert _count(url, "other", "404") == other + 1


def test_openai_clients_reach_an_anthropic_deployment_across_families(setup):
    fake, url = setup
    reply = openai.OpenAI(base_url=url + "/v1", api_key="u", max_retries=0).chat.completions.create(
        model="claude", messages=ASK, max_tokens=10)
    assert reply.choices[0].message.content == "hello there"
    assert fake.requests[-1].path == "/v1/messages"


def test_all_deployments_failing_is_told_in_plain_words():
    with hosted_server(lambda call: USAGE) as fake:
        fake.fail("status", status=529, message="Overloaded", times=None)
        cfg = {"models": [{"name": "primary", "provider": "anthropic", "model": "m", "api_base": fake.url},
                          {"name": "backup", "provider": "litellm", "model": "anthropic/m",
                           "api_base": closed_port_url(), "api_key": "k"}],
               "tiers": [{"name": "local", "models": ["primary"]}, {"name": "hosted", "models": ["backup"]}],
               "backoff_s": 0.01}
        with running_router(cfg) as url:
            with pytest.raises(anthropic.APIStatusError) as caught:
                _client(url).messages.create(model="local", max_tokens=5, messages=ASK)
    message = caught.value.body["error"]["message"]
    assert message.startswith("every deployment failed: primary: answered 529 overloaded_error: Overloaded "
                              "(2 attempts); backup: unreachable ("), message
    assert message.endswith("(2 attempts)")
    for internal in ("litellm", "Exception", " object at 0x", "Handle with"):
        assert internal not in message


WORDS = [
    # messages (OpenAI shape, as the scorer sees them)                               -> text, user turns
    ([{"role": "user", "content": "<system-reminder>\nCLAUDE.md: ...\n</system-reminder>\nsay hi"}], "say hi", 1),
    ([{"role": "user", "content": [{"type": "text", "text": "<system-reminder>x</system-reminder>"},
                                   {"type": "text", "text": "fix the bug"}]}], "fix the bug", 1),
    ([{"role": "user", "content": "plan the migration"}, {"role": "assistant", "tool_calls": [{"id": "1"}]},
      {"role": "tool", "content": "file contents"}, {"role": "user", "content": "Tool loaded."}],
     "plan the migration", 1),
    ([{"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
      {"role": "user", "content": "<system-reminder>todo list</system-reminder>"}], "first", 1),
    ([{"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
      {"role": "user", "content": "<command-name>/review</command-name><command-args>the parser</command-args>"}],
     "the parser", 2),
    ([{"role": "system", "content": "you are"}, {"role": "user", "content": "[Request interrupted by user]"}], "", 1),
]


@pytest.mark.parametrize("messages,text,turns", WORDS)
def test_the_score_reads_the_users_words(messages, text, turns):
    assert user_words(messages) == (text, turns)


def test_default_config_routes_claude_names_and_sends_background_work_local():
    cfg = load_config(None)
    assert [cfg.resolve(n) for n in ("claude-opus-5-5", "claude-haiku-4-5", "sonnet", "gpt-9")] == \
        ["auto", "auto", "auto", None]
    hosted = cfg.model(cfg.tier("hosted").models[0])
    assert hosted.provider == "anthropic" and hosted.serves == ["claude-*"]
    assert [(r.tier, r.model, r.has_tools) for r in cfg.rules] == [("local", "claude-*haiku*", False)]


def test_litellm_reads_its_cost_map_locally_without_being_told():
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    done = subprocess.run([sys.executable, "-c", "from router.providers import hosted; hosted.warm(None)"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "cost map" not in done.stderr and "fetch" not in done.stderr.lower()
