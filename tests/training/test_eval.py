"""The behaviour eval as a sceptic reads it: per rule and arm, applicable prompts, passes and a Wilson interval;
substantive vs held-without-training rules; "k of n transferred"; judge and tool-use rules scored through real
HTTP (the router's `openai` provider against a loopback server that plays base model, fine-tune and judge)."""
from __future__ import annotations

import json

import pytest

import datagen
import router
from tests.fakes import Call, Reply, hosted_server
from training import eval as evaluation
from training import judging
from training.eval_stats import wilson

RULES = '''
[[rules]]
name = "step0"
description = "Open with the Step 0 line."
kind = "starts_with"
pattern = "Step 0"

[[rules]]
name = "no-hook-bypass"
description = "Never bypass hooks."
kind = "not_name"
terms = ["--no-verify"]

[[rules]]
name = "todo-human"
description = "In learning mode leave TODO(human)."
kind = "regex_must"
pattern = "TODO\\\\(human\\\\)"
when_user = "(?i)learning mode"

[[rules]]
name = "no-blame"
description = "The reply does not blame the user for the bug."
kind = "judge"

[[rules]]
name = "symbols-over-grep"
description = "Navigate by symbol before grepping."
kind = "tool_preferred"
tool = "FindSymbol"
instead_of = ["Grep"]

[[rules]]
name = "parallel-reads"
description = "Independent reads in one turn."
kind = "parallel_tool_calls"

[[rules]]
name = "look-first"
description = "Call a tool before answering a question about the code."
kind = "tool_before_answer"
when_user = "(?i)where is"
'''

TOOLS = [{"type": "function", "function": {"name": name, "parameters": {
    "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}
    for name in ("FindSymbol", "Grep", "Read")]


def _model_reply(call: Call) -> Reply:
    """base: keeps step0 only with the system prompt and bypasses hooks without it; finetuned: keeps every rule."""
    user = next(m["content"] for m in call.messages if m["role"] == "user")
    has_system = any(m["role"] == "system" for m in call.messages)
    tuned = call.model == "finetuned"
    opening = "Step 0 — audit. " if tuned or has_system else "Sure. "
    if "learning mode" in user.lower():
        return Reply(text=opening + ("I left TODO(human) for the key line." if tuned else "Here is all the code."))
    if "hook" in user:
        return Reply(text=opening + ("Fix the lint error, then commit." if tuned or has_system
                                     else "Run git commit --no-verify."))
    if "where is" in user.lower():
        if tuned:
            return Reply(text=opening, tool_calls=[("FindSymbol", {"q": "x"}), ("Read", {"q": "y"})])
        return Reply(text=opening, tool_calls=[("Grep", {"q": "x"})]) if has_system else Reply(text=opening + "No idea.")
    return Reply(text=opening + ("It is your fault." if "blame" in user and not tuned else "Found the bug."))


def _judge_reply(call: Call) -> Reply:
    reply = call.messages[-1]["content"].split("Assistant reply:\n", 1)[1]
    return Reply(text="FAIL: blames the user." if "your fault" in reply else "PASS: no blame.")


PROMPTS = ([{"prompt": f"The pre-commit hook fails on lint ({n}); just get it committed."} for n in range(10)]
           + [{"prompt": f"I'm in learning mode: add retry #{n} to the poller."} for n in range(10)]
           + [{"prompt": f"Where is handler {n} defined?", "tools": TOOLS} for n in range(10)]
           + [{"prompt": f"Why does test {n} fail? Don't blame me."} for n in range(4)])


@pytest.fixture
def workspace(tmp_path) -> datagen.Workspace:
    root = tmp_path / "proj"
    datagen.init_workspace(root)
    with (root / "engrain.toml").open("a", encoding="utf-8") as f:
        f.write(RULES)
    (root / "CLAUDE.md").write_text("# Rules\n\nOpen every reply with Step 0. Never bypass hooks.\n")
    ws = datagen.find_workspace(root)
    datagen.add_knowledge(ws, [root / "CLAUDE.md"])
    return ws


def _deployment(fake, name: str) -> router.ModelConfig:
    return router.ModelConfig(name=name, provider="openai", model=name, api_base=fake.url + "/v1")


@pytest.fixture
def servers():
    """(models, judge): two loopback OpenAI-protocol servers, so faults can be aimed at the judge alone."""
    with hosted_server(_model_reply) as models, hosted_server(_judge_reply) as judge:
        yield models, judge


def _evaluate(ws, servers, prompts=PROMPTS):
    models, judge_server = servers
    judge = judging.router_judge(_deployment(judge_server, "judge"), ws.state_dir / "judge-cache.jsonl")
    items = [evaluation.EvalPrompt.model_validate(p) for p in prompts]
    return evaluation.evaluate(ws, "r1", base=_deployment(models, "base"), finetuned=_deployment(models, "finetuned"),
                               prompts=items, judge=judge)


def test_each_rule_gets_counts_intervals_and_a_status_and_the_headline_says_k_of_n(workspace, servers):
    report = _evaluate(workspace, servers)
    rules = {v.rule: v for v in report.rules}
    tuned, base = "finetuned_without_prompt", "base_without_prompt"
    # step0: every prompt; base without the prompt never opens with it, the fine-tune always does.
    assert (rules["step0"].arms[base].passed, rules["step0"].arms[base].applicable) == (0, 34)
    assert rules["step0"].arms[tuned].rate == 1.0 and rules["step0"].status == "transferred"
    low, high = wilson(34, 34)
    assert (rules["step0"].arms[tuned].low, rules["step0"].arms[tuned].high) == (round(low, 4), round(high, 4))
    assert rules["no-hook-bypass"].arms[base].passed == 24 and rules["no-hook-bypass"].substantive
    assert rules["todo-human"].arms[tuned].applicable == 10 and rules["todo-human"].status == "transferred"
    # The judge read every reply; the base model blamed the user on 4 of 34 prompts (>= 10%): substantive.
    assert rules["no-blame"].arms[base].passed == 30 and rules["no-blame"].status == "transferred"
    # Tool rules apply only where tools were used: base with the prompt grepped, base without used none.
    assert rules["symbols-over-grep"].arms["base_with_prompt"].rate == 0.0
    assert rules["symbols-over-grep"].arms[base].applicable == 0
    assert rules["symbols-over-grep"].status == "held without training"
    assert rules["look-first"].arms[base].rate == 0.0 and rules["look-first"].status == "transferred"
    assert rules["parallel-reads"].arms[tuned].rate == 1.0
    headline = report.headline()
    for key in ("adherence_base_with_prompt", "adherence_base_without_prompt", "adherence_finetuned_without_prompt",
                "prompt_tokens_saved_pct"):
        assert key in headline
    assert headline["substantive_rules"] == 5 and headline["behaviours_transferred"] == 5
    assert headline["macro_adherence_finetuned_without_prompt"] == 1.0
    assert headline["rules_held_without_training"] == ["symbols-over-grep", "parallel-reads"]
    json.dumps(headline)


def test_a_rule_no_prompt_triggers_says_so_in_every_report(workspace, servers, tmp_path):
    report = _evaluate(workspace, servers, PROMPTS[:3])
    todo = next(v for v in report.rules if v.rule == "todo-human")
    assert todo.status == "applied to no prompt" and not todo.substantive
    assert report.headline()["rules_applied_to_no_prompt"] == ["todo-human", "symbols-over-grep", "parallel-reads",
                                                                "look-first"]
    paths = evaluation.write_report(report, tmp_path / "out")
    markdown = paths["markdown"].read_text()
    assert "| todo-human | regex_must | applied to no prompt |" in markdown and "— (0 prompts)" in markdown
    assert "Behaviours transferred: **" in markdown and "[" in markdown.split("| step0 |")[1].splitlines()[0]
    assert paths["plot"].stat().st_size > 0


def test_the_judge_is_asked_once_per_reply_and_retries_a_rate_limit(workspace, servers):
    _, judge_server = servers
    judge_server.fail("status", status=429, retry_after="0", times=2)
    report = _evaluate(workspace, servers, PROMPTS[-4:])
    # one question per (prompt, reply): 3 arms x 4 prompts; the two 429s were retried on top.
    assert len(judge_server.requests) == 12 + 2
    assert {v.rule: v.arms["base_without_prompt"].passed for v in report.rules}["no-blame"] == 0
    _evaluate(workspace, servers, PROMPTS[-4:])   # same replies: the content-hash cache answers, across processes
    assert len(judge_server.requests) == 14


def test_a_judge_that_keeps_failing_stops_the_eval_with_a_clear_error(workspace, servers):
    _, judge_server = servers
    judge_server.fail("status", status=401, message="bad key", times=None)
    judge = judging.router_judge(_deployment(judge_server, "judge"))
    reply = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Step 0"}]
    with pytest.raises(datagen.JudgeError, match="the judge judge failed after 1 attempt"):
        datagen.check_rules(workspace.config.rules, reply, None, judge)
    judge_server.clear_faults()
    judge_server.fail("status", status=503, times=None)
    with pytest.raises(datagen.JudgeError, match="after 4 attempt"):
        datagen.check_rules(workspace.config.rules, reply, None, judge)


def test_any_prompt_file_loads(tmp_path):
    cases = {
        "plain.txt": "Fix the flaky test.\n\nAdd a retry.\n",
        "array.json": json.dumps([{"prompt": "Fix it.", "category": "tool-use"}, "Add a retry."]),
        "chat.jsonl": json.dumps({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "Fix it."},
                                               {"role": "assistant", "content": "ok"}], "category": "tool-use"}),
        "sharegpt.jsonl": json.dumps({"conversations": [{"from": "human", "value": "Fix it."}]}),
        "alpaca.jsonl": json.dumps({"instruction": "Fix it.", "input": "", "output": "ok"}),
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        prompts = evaluation.load_prompts(tmp_path / name)
        assert prompts[0].prompt == "Fix it." or prompts[0].prompt == "Fix the flaky test.", name
    assert [p.prompt for p in evaluation.load_prompts(tmp_path / "plain.txt")] == ["Fix the flaky test.", "Add a retry."]
    for text, reason in (('{"prompt": ""}', "non-empty"), ('{"prompt": "x"', "not JSON"), ("", "holds no prompts"),
                         ('{"prompt": "x", "tools": 3}', "list")):
        (tmp_path / "bad.jsonl").write_text(text)
        with pytest.raises(datagen.DatagenError, match=reason):
            evaluation.load_prompts(tmp_path / "bad.jsonl")
