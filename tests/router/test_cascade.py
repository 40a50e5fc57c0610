"""Cascade (acceptance 4): the local tier answers first; a reply that breaks an opted-in workspace rule is
answered again by the hosted tier. Real HTTP throughout: the openai SDK against the router, the router against a
loopback server speaking the OpenAI protocol (weak model) and Anthropic's (strong model, through litellm)."""
from __future__ import annotations

import re

import httpx
import openai
import pytest

import datagen
import router
from engrain.cmd_router import WorkspaceRules
from tests.fakes import Call, Reply, hosted_server
from tests.router.serving import running_router

RULES = '''
[[rules]]
name = "no-hedging"
description = "Answer plainly."
kind = "regex_must_not"
pattern = "(?i)\\\\bmaybe\\\\b"
categories = ["code-review"]

[[rules]]
name = "short"
kind = "max_chars"
value = 2000
'''


def _reply(call: Call) -> Reply:
    """The weak model hedges on prompts about threads; the strong one never does."""
    user = next(m["content"] for m in reversed(call.messages) if m["role"] == "user")
    if call.model == "fake-weak" and "thread" in user:
        return Reply(text="Maybe a lock? Maybe not.", prompt_tokens=20, completion_tokens=8)
    return Reply(text=f"[{call.model}] A plain answer.", prompt_tokens=20, completion_tokens=6)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cascade") / "proj"
    datagen.init_workspace(root)
    with (root / "engrain.toml").open("a", encoding="utf-8") as f:
        f.write(RULES)
    with hosted_server(_reply) as fake:
        cfg = {"models": [
            {"name": "weak", "provider": "openai", "model": "fake-weak", "api_base": fake.url + "/v1"},
            {"name": "strong", "provider": "litellm", "model": "anthropic/fake-strong", "api_base": fake.url,
             "api_key": "k", "cost_per_mtok_in": 3.0, "cost_per_mtok_out": 15.0}],
            "tiers": [{"name": "local", "models": ["weak"]}, {"name": "hosted", "models": ["strong"]}],
            "threshold": 1.01,            # every scored request goes local first: the cascade decides
            "cascade": ["no-hedging"]}
        apps: list = []
        with running_router(cfg, app_out=apps) as url:
            apps[0].state.reply_check = WorkspaceRules(root)   # what `engrain serve` hands the app
            yield fake, url


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_a_reply_breaking_a_rule_is_escalated_and_a_passing_one_is_kept(setup):
    fake, url = setup
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    before = httpx.get(url + "/metrics").text

    kept = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "How do I reverse a list?"}])
    assert kept.headers["x-engrain-cascade"] == "local-passed"
    assert kept.headers["x-engrain-model"] == "weak" and kept.headers["x-engrain-tier"] == "local"
    assert kept.parse().choices[0].message.content == "[fake-weak] A plain answer."

    sent = len(fake.requests)
    escalated = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Is this thread-safe?"}])
    assert escalated.headers["x-engrain-cascade"] == "local-failed:no-hedging"
    assert escalated.headers["x-engrain-model"] == "strong" and escalated.headers["x-engrain-tier"] == "hosted"
    assert escalated.parse().choices[0].message.content == "[fake-strong] A plain answer."
    assert [r.path for r in fake.requests[sent:]] == ["/v1/chat/completions", "/v1/messages"]  # weak, then strong

    after = httpx.get(url + "/metrics").text
    for outcome in ("passed", "escalated"):
        name = f'engrain_cascade_total{{outcome="{outcome}"}}'
        assert _metric(after, name) - _metric(before, name) == 1.0
    # the kept answer saved what the strong model would have cost (20 in + 6 out at 3/15 $ per Mtok)
    saved = _metric(after, "engrain_cascade_saved_usd") - _metric(before, "engrain_cascade_saved_usd")
    assert saved == pytest.approx((20 * 3.0 + 6 * 15.0) / 1e6)


def test_streams_and_explicit_models_are_not_cascaded(setup):
    fake, url = setup
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    with client.chat.completions.with_streaming_response.create(
            model="auto", stream=True, messages=[{"role": "user", "content": "Is this thread-safe?"}]) as resp:
        assert "x-engrain-cascade" not in resp.headers
        assert "".join(c.choices[0].delta.content or "" for c in resp.parse() if c.choices).startswith("Maybe")
    explicit = client.chat.completions.with_raw_response.create(
        model="strong", messages=[{"role": "user", "content": "Is this thread-safe?"}])
    assert "x-engrain-cascade" not in explicit.headers


def _serve(workspace: Path, toml: str, *args: str):
    """`engrain serve` in a fresh workspace whose engrain.toml ends with `toml` (refusals come before it listens)."""
    from typer.testing import CliRunner

    from engrain.cli import app

    datagen.init_workspace(workspace)
    with (workspace / "engrain.toml").open("a", encoding="utf-8") as f:
        f.write(toml)
    return CliRunner().invoke(app, ["serve", "--port", "1", "-w", str(workspace), *args])


def test_serve_refuses_a_cascade_naming_rules_the_workspace_lacks(tmp_path):
    result = _serve(tmp_path, RULES + '\n[router]\ncascade = ["no-hedging", "be-nice"]\n')
    assert result.exit_code != 0 and "['be-nice']" in result.output


JUDGE_RULE = '''
[[rules]]
name = "plain"
description = "The reply answers plainly, without hedging."
kind = "judge"
'''


def _judged_reply(call: Call) -> Reply:
    """As _reply, plus model `grader`: a judge that fails hedged replies; `mute`: a judge that gives no verdict."""
    if call.model == "mute":
        return Reply(text="I would rather not say.")
    if call.model == "grader":
        reply = call.messages[-1]["content"].split("Assistant reply:\n", 1)[1]
        return Reply(text="FAIL: it hedges" if "Maybe" in reply else "PASS: plain")
    return _reply(call)


def test_judge_rules_take_part_in_the_cascade_when_a_judge_is_set(tmp_path):
    import training

    datagen.init_workspace(tmp_path)
    with (tmp_path / "engrain.toml").open("a", encoding="utf-8") as f:
        f.write(JUDGE_RULE)
    with hosted_server(_judged_reply) as fake:
        cfg = {"models": [{"name": n, "provider": "openai", "model": f"fake-{n}", "api_base": fake.url + "/v1"}
                          for n in ("weak", "strong")],
               "tiers": [{"name": "local", "models": ["weak"]}, {"name": "hosted", "models": ["strong"]}],
               "threshold": 1.01, "cascade": ["plain"]}
        apps: list = []
        with running_router(cfg, app_out=apps) as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            verdicts = []
            for judge_model in ("grader", "mute"):
                judge = router.ModelConfig(name="judge", provider="openai", model=judge_model,
                                           api_base=fake.url + "/v1")
                apps[0].state.reply_check = WorkspaceRules(tmp_path, training.router_judge(judge), only=["plain"])
                for prompt in ("How do I reverse a list?", "Is this thread-safe?"):
                    raw = client.chat.completions.with_raw_response.create(
                        model="auto", messages=[{"role": "user", "content": prompt}])
                    verdicts.append((raw.headers["x-engrain-cascade"], raw.headers["x-engrain-model"]))
        asked = [r.body["model"] for r in fake.requests]
    assert verdicts == [("local-passed", "weak"), ("local-failed:plain", "strong"),
                        ("local-passed", "weak"), ("local-passed", "weak")]   # no verdict: the local reply stands
    assert asked.count("grader") == 2 and asked.count("fake-strong") == 1


def test_serve_refuses_judge_rules_in_the_cascade_without_a_judge(tmp_path):
    result = _serve(tmp_path / "a", JUDGE_RULE + '\n[router]\ncascade = ["plain"]\n')
    assert result.exit_code != 0 and "judge rules need --judge" in result.output and "['plain']" in result.output
    result = _serve(tmp_path / "b", JUDGE_RULE + '\n[router]\ncascade = ["plain"]\n', "--judge", "nobody")
    assert result.exit_code != 0 and "no router deployment named 'nobody'" in result.output
