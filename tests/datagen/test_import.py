"""Acceptance 3: a mixed file — every malformed example gets a specific reason, nothing valid is lost, and the exit
status says whether anything was rejected. Also: every supported input format is detected."""
from __future__ import annotations

import json

import datagen
from tests.datagen.conftest import GREP_TOOL, both_backends, chat, tool_example, write_jsonl


def _bad_tool_example(**changes) -> dict:
    example = tool_example()
    for key, value in changes.items():
        if key == "call":
            example["messages"][1]["tool_calls"][0]["function"].update(value)
        elif key == "tool_call_id":
            example["messages"][2]["tool_call_id"] = value
    return example


VALID = {
    0: chat("Why does `round(2.5)` give 2 in Python?", "Python rounds half to even (banker's rounding)."),
    1: tool_example(),
    2: {"instruction": "Explain the single-responsibility principle in one sentence.", "input": "",
        "output": "A module should have one reason to change.", "category": "craftsmanship"},
    3: {"conversations": [{"from": "human", "value": "Review: `except Exception: pass` in the retry loop."},
                          {"from": "gpt", "value": "That swallows every error, including bugs; catch the "
                                                   "specific timeout error and log it."}],
        "category": "code-review"},
    4: {"messages": [{"role": "user", "content": "Should I ask before deleting the old migrations?"},
                     {"role": "assistant", "content": "Yes: deleting them rewrites shared history, so ask first."}]},
}

# index -> (record, a phrase its reason must contain)
MALFORMED = {
    5: ('{"messages": [ this is not json', "not valid JSON"),
    6: ({"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "hello"}],
         "category": "collaboration"}, "role 'robot'"),
    7: (chat("   ", "An answer to nothing."), "message 1 (user) is empty"),
    8: (_bad_tool_example(call={"name": "Search"}), "undeclared tool 'Search'"),
    9: (_bad_tool_example(call={"arguments": "{pattern: def load_config"}), "arguments are not JSON"),
    10: (_bad_tool_example(call={"arguments": json.dumps({"pattern": 42})}), "42 is not of type 'string'"),
    11: (_bad_tool_example(tool_call_id="call_9"), "answers tool_call_id 'call_9'"),
    12: (chat("Write a helper that doubles a number.", "```python\ndef double(x)\n    return 2 * x\n```"),
         "```python block 1 does not parse"),
    13: (chat("Show the config as JSON.", "```json\n{\"timeout\": 30,}\n```"), "```json block 1 does not parse"),
    14: (chat("Explain everything.", "word " * 6000), "too long"),
    15: (chat("What is a race condition?", "Two threads touching shared state.", category="poetry"),
         "unknown category 'poetry'"),
    16: ({"prompt": "completion-style record", "completion": "is not a supported format"}, "unrecognized record"),
    17: (chat("Why does `round(2.5)` give 2 in Python?", "Python rounds half to even (banker's rounding)."),
         "exact duplicate of"),
    18: ({"messages": [{"role": "user", "content": "Fix it."}], "category": "problem-solving"},
         "must end with an assistant message"),
}


def _mixed_file(tmp_path):
    records = [VALID.get(i, MALFORMED.get(i, (None,))[0]) for i in range(19)]
    return write_jsonl(tmp_path / "mixed.jsonl", records)


@both_backends
def test_mixed_file_reports_every_malformed_example_and_keeps_every_valid_one(ws, cli, tmp_path):
    result = cli("import", _mixed_file(tmp_path), "--json", "--category", "problem-solving", "-w", ws.root)

    assert result.exit_code == 1
    verdicts = {v["index"]: v for v in map(json.loads, result.stdout.splitlines())}
    assert sorted(verdicts) == list(range(19))
    for index, (_, phrase) in MALFORMED.items():
        assert not verdicts[index]["accepted"], index
        assert any(phrase in reason for reason in verdicts[index]["reasons"]), (index, verdicts[index]["reasons"])
    stored = {s.id for s in datagen.list_examples(ws, limit=100).items}
    for index in VALID:
        assert verdicts[index]["accepted"], verdicts[index]
        assert verdicts[index]["id"] in stored
    assert verdicts[17]["duplicate_of"] == verdicts[0]["id"]
    # --category fills in only records without one
    assert datagen.get_example(ws, verdicts[4]["id"]).example.category == "problem-solving"
    assert datagen.get_example(ws, verdicts[2]["id"]).example.category == "craftsmanship"


@both_backends
def test_a_malformed_example_reports_all_its_problems_at_once(ws):
    example = tool_example()
    example["messages"][0]["content"] = ""
    example["messages"][1]["tool_calls"][0]["function"] = {"name": "Search", "arguments": "{oops"}
    example["messages"][3]["content"] = "```python\nif True print('x')\n```"
    example["category"] = "nope"

    [verdict] = datagen.submit(ws, [example])

    reasons = " | ".join(verdict.reasons)
    for phrase in ("(user) is empty", "undeclared tool 'Search'", "arguments are not JSON", "does not parse",
                   "unknown category 'nope'"):
        assert phrase in reasons


@both_backends
def test_human_output_names_each_rejection_and_the_exit_status_is_zero_when_all_pass(ws, cli, tmp_path):
    bad = cli("import", _mixed_file(tmp_path), "--category", "problem-solving", "-w", ws.root)
    assert bad.exit_code == 1
    assert "#12" in bad.stdout and "does not parse" in bad.stdout
    assert "5 accepted (pending), 14 rejected" in bad.stdout

    good = write_jsonl(tmp_path / "good.jsonl", [chat("What does `git bisect` do?", "It binary-searches history "
                                                      "for the commit that introduced a bug.")])
    ok = cli("import", good, "--approve", "-w", ws.root)
    assert ok.exit_code == 0, ok.stdout
    assert "1 accepted (approved), 0 rejected" in ok.stdout
    assert next(c for c in datagen.coverage(ws).categories if c.name == "problem-solving").approved == 1


def test_alpaca_json_array_and_rule_failures(tmp_path, cli):
    root = tmp_path / "ruled"
    rule = ('[[rules]]\nname = "no-force-push"\nkind = "not_name"\nterms = ["push --force"]\n'
            'categories = ["collaboration"]\n')
    datagen.init_workspace(root, extra_toml=[rule])
    records = [
        {"instruction": "How do I undo my last pushed commit?", "input": "",
         "output": "Just git push --force the branch.", "category": "collaboration"},
        {"instruction": "How do I undo my last pushed commit?", "input": "on a shared branch",
         "output": "Use git revert so shared history stays intact.", "category": "collaboration"},
    ]
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(records), encoding="utf-8")

    result = cli("import", path, "--json", "-w", root)

    first, second = map(json.loads, result.stdout.splitlines())
    assert result.exit_code == 1
    assert first["reasons"] == ["rule 'no-force-push' failed: names 'push --force'"]
    assert second["accepted"]
    stored = datagen.get_example(datagen.find_workspace(root), second["id"]).example
    assert stored.messages[0].content == "How do I undo my last pushed commit?\n\non a shared branch"


@both_backends
def test_tool_schema_declared_in_sharegpt_is_converted_and_checked(ws):
    record = {"conversations": [
        {"from": "human", "value": "Find the retry loop."},
        {"from": "function_call", "value": json.dumps({"name": "Grep", "arguments": {"pattern": "retry"}})},
        {"from": "observation", "value": "src/net.py:40: for attempt in range(retries):"},
        {"from": "gpt", "value": "The retry loop is in src/net.py:40."}],
        "tools": json.dumps([GREP_TOOL["function"]]), "category": "tool-use"}

    [verdict] = datagen.submit(ws, [record])

    assert verdict.accepted, verdict.reasons
    example = datagen.get_example(ws, verdict.id).example
    assert [m.role for m in example.messages] == ["user", "assistant", "tool", "assistant"]
    assert example.messages[2].tool_call_id == example.messages[1].tool_calls[0].id
