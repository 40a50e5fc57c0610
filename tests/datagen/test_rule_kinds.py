"""The rule kinds a regex cannot check: tool-use rules over the reply's tool calls, and `judge` rules graded by a
model — here datagen's own litellm client against a loopback OpenAI-protocol judge, as validation uses it."""
from __future__ import annotations

import json

import pytest

import datagen
from datagen import Rule
from tests.fakes import Call, Reply, hosted_server

PREFER = Rule(name="prefer", kind="tool_preferred", tool="FindSymbol", instead_of=["Grep"])
PARALLEL = Rule(name="parallel", kind="parallel_tool_calls")
LOOK = Rule(name="look", kind="tool_before_answer", when_user="(?i)where")
LOOK_READ = Rule(name="look-read", kind="tool_before_answer", tool="Read")


def _call(n: int, name: str) -> dict:
    return {"id": f"c{n}", "type": "function", "function": {"name": name, "arguments": "{}"}}


def _turns(user: str, *turns: list[str] | str) -> list[dict]:
    """A reply made of assistant turns: a list of tool names (each answered by a tool result) or a text."""
    messages, n = [{"role": "user", "content": user}], 0
    for turn in turns:
        if isinstance(turn, str):
            messages.append({"role": "assistant", "content": turn})
            continue
        calls = [_call(n + i, name) for i, name in enumerate(turn)]
        n += len(turn)
        messages.append({"role": "assistant", "content": "", "tool_calls": calls})
        messages += [{"role": "tool", "tool_call_id": c["id"], "content": "ok"} for c in calls]
    return messages


CASES = [
    # (rule, conversation, expected (applicable, passed), detail starts with)
    (PREFER, _turns("where is x?", ["FindSymbol"], ["Grep"], "x.py:3"), (True, True), "passed"),
    (PREFER, _turns("where is x?", ["Grep"], ["FindSymbol"], "x.py:3"), (True, False), "called Grep before FindSymbol"),
    (PREFER, _turns("where is x?", ["Read"], "x.py:3"), (False, True), "no reply it applies to"),
    (PREFER, _turns("where is x?", "x.py:3"), (False, True), "no reply it applies to"),
    (PARALLEL, _turns("read a and b", ["Read", "Read"], "both read"), (True, True), "passed"),
    (PARALLEL, _turns("read a and b", ["Read"], ["Read"], "both read"), (True, False), "2 tool call(s) spread over 2"),
    (PARALLEL, _turns("hello", "hi"), (False, True), "no reply it applies to"),
    (LOOK, _turns("where is x?", ["Grep"], "x.py:3"), (True, True), "passed"),
    (LOOK, _turns("where is x?", "Probably in x.py."), (True, False), "answered without calling any tool first"),
    (LOOK, _turns("where is x?", "Let me look.", ["Grep"], "x.py"), (True, False), "answered without calling"),
    (LOOK, _turns("hello", "hi"), (False, True), "no reply it applies to"),
    (LOOK_READ, _turns("fix x", ["Grep"], "done"), (True, False), "answered without calling Read first"),
    (LOOK_READ, _turns("fix x", ["Grep", "Read"], "done"), (True, True), "passed"),
]


@pytest.mark.parametrize("rule, messages, expected, detail", CASES)
def test_tool_rules_read_the_replys_tool_calls(rule, messages, expected, detail):
    [result] = datagen.check_rules([rule], messages, "tool-use")
    assert (result.applicable, result.passed) == expected
    assert result.detail.startswith(detail), result.detail


def test_tool_rules_need_their_fields():
    with pytest.raises(ValueError, match="needs tool and instead_of"):
        Rule(name="x", kind="tool_preferred", tool="FindSymbol")
    with pytest.raises(ValueError, match="needs a description"):
        Rule(name="x", kind="judge")


JUDGE_RULES = '''
[[rules]]
name = "no-blame"
description = "The reply does not blame the user."
kind = "judge"
categories = ["problem-solving"]
'''


def _judge(call: Call) -> Reply:
    reply = call.messages[-1]["content"].split("Assistant reply:\n", 1)[1]
    return Reply(text="FAIL: it blames the user." if "your fault" in reply else "PASS: states the cause plainly.")


def _ws(tmp_path, judge_url: str | None):
    root = tmp_path / "proj"
    datagen.init_workspace(root)
    text = (root / "engrain.toml").read_text()
    if judge_url:
        text = text.replace("[dataset]\n", f'[dataset]\njudge_model = "openai/grader"\njudge_api_base = "{judge_url}"\n', 1)
    (root / "engrain.toml").write_text(text + JUDGE_RULES)
    return datagen.find_workspace(root)


def _example(answer: str) -> dict:
    return {"messages": [{"role": "user", "content": "Why does the import crash on empty rows?"},
                         {"role": "assistant", "content": answer}], "category": "problem-solving"}


def test_validation_asks_the_configured_judge_and_rejects_with_its_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with hosted_server(_judge) as judge:
        ws = _ws(tmp_path, judge.url + "/v1")
        fine = _example("The parser indexes row[0] before checking the row is empty; guard it and add a test.")
        assert datagen.validate_example(ws, fine) == []
        blaming = _example("It is your fault: you fed it an empty file.")
        assert datagen.validate_example(ws, blaming) == [
            "rule 'no-blame' failed: the judge (openai/grader) says: it blames the user."]
        assert {r.body["model"] for r in judge.requests} == {"grader"}
        asked = len(judge.requests)
        # The same reply again is answered from the cache (content hash), not by a new request.
        assert datagen.validate_example(ws, blaming) == [
            "rule 'no-blame' failed: the judge (openai/grader) says: it blames the user."]
        assert len(judge.requests) == asked


def test_a_judge_rule_without_a_judge_or_with_a_failing_one_is_not_accepted(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    ws = _ws(tmp_path, None)
    [reason] = datagen.validate_example(ws, _example("The guard is missing."))
    assert "no judge model is set" in reason and "judge_model" in reason
    with hosted_server(_judge) as judge:
        judge.fail("status", status=500, times=None)
        other = _ws(tmp_path / "b", judge.url + "/v1")
        [reason] = datagen.validate_example(other, _example("The guard is missing, again."))
        assert reason.startswith("not judged, so not accepted: the judge model openai/grader failed")
        assert len(judge.requests) >= 2   # litellm retried before giving up
    json.dumps(reason)
